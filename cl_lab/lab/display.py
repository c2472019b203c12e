"""Showing figures and dashboards: interactive in JupyterLab, static offline HTML in batch reports."""

from __future__ import annotations

import os
from typing import Any

STATIC_ENV = "CL_LAB_STATIC"
PLOTLY_JS = "plotly.min.js"
_shown = {"js": False}


def static() -> bool:
    """True in batch reports (``CL_LAB_STATIC=1``): figures are written as static HTML."""
    return os.environ.get(STATIC_ENV, "") not in ("", "0")


def show(fig: Any) -> None:
    """Display a plotly figure: interactive in JupyterLab; in batch reports, HTML that renders offline
    (the first figure of a notebook loads ``plotly.min.js`` from next to the report)."""
    if not static():
        fig.show()
        return
    from IPython.display import HTML, display

    include: Any = False if _shown["js"] else PLOTLY_JS
    _shown["js"] = True
    display(HTML(fig.to_html(full_html=False, include_plotlyjs=include, config={"responsive": True})))


def show_dashboard(dashboard: Any) -> None:
    """Display a dashboard's widgets; in batch reports, instead, its figures with a dropdown over
    the dashboard's choices (``Dashboard.static_figures``): they work offline without a kernel,
    and the page carries one plotly.js (next to the report), not one per widget."""
    from IPython.display import Markdown, display

    if not static():
        display(dashboard.widget)
        return
    display(Markdown("*Static report: the dropdown above each figure replaces the dashboard's controls; "
                     "open the notebook in JupyterLab for the live widgets.*"))
    for fig in dashboard.static_figures():
        show(fig)
