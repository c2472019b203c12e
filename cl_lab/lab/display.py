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
    """Display a dashboard's widgets; in batch reports also its current figures as static HTML."""
    from IPython.display import display

    display(dashboard.widget)
    if static():
        import plotly.graph_objects as go

        for f in dashboard.figures:
            show(go.Figure(f))
