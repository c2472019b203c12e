"""Rendering executed notebooks and index pages to offline HTML (no CDN scripts; plotly.js next to the pages)."""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING, Sequence

from .._io import atomic_write_text
from ..lab.display import PLOTLY_JS

if TYPE_CHECKING:
    from pathlib import Path

    from .execution import Outcome


def write_plotly_js(out: Path) -> Path:
    """plotly.js, once, next to the HTML reports (what the static figures load)."""
    from plotly.offline import get_plotlyjs

    path = out / PLOTLY_JS
    if not path.exists():
        atomic_write_text(path, get_plotlyjs())
    return path


def to_html(notebook_file: Path, html_file: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook_file, as_version=4)
    # static reports show figures, not widgets: the saved widget state (each plotly FigureWidget
    # carries its own 5 MB of JavaScript) and the widget manager it would fetch are left out
    nb.metadata.pop("widgets", None)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    # the template loads require.js from a CDN; with it present plotly.js registers as an AMD
    # module instead of ``window.Plotly`` and the static figures would not draw when online
    body = re.sub(r'<script[^>]*require(\.min)?\.js[^>]*>\s*</script>', "", body)
    body = offline(body).replace("</head>", f"<style>{WIDE_OUTPUTS}</style></head>", 1)
    atomic_write_text(html_file, body)


WIDE_OUTPUTS = (".jp-OutputArea-output table,.jp-RenderedHTMLCommon table.dataframe{display:block;max-width:100%;"
                "overflow-x:auto}")
"""A table wider than the page (04's comparison) scrolls inside its cell instead of running off the page."""


def offline(body: str) -> str:
    """Drop what the page would fetch from the network: scripts with a remote ``src`` (MathJax,
    the widget managers) and remote ES-module imports (mermaid). No report uses them: figures
    are static plotly, loaded from ``plotly.min.js`` next to the page."""
    body = re.sub(r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>', "", body)
    return re.sub(r'<script type="module">(?:(?!</script>).)*?https?://(?:(?!</script>).)*</script>', "", body,
                  flags=re.S)


def page(title: str, body: str) -> str:
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
             ".fail{color:#b00020}.ok{color:#1b5e20}pre{white-space:pre-wrap;background:#f6f6f6;padding:6px}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def outcome_rows(outcomes: Sequence[Outcome]) -> str:
    rows = []
    for o in outcomes:
        status = "<span class='ok'>ok</span>" if o.ok else "<span class='fail'>failed</span>"
        link = f"<a href='{html.escape(o.html)}'>{html.escape(o.name)}</a>" if o.html else html.escape(o.name)
        err = ""
        if not o.ok:
            err = (f"cell {o.error.get('cell', '?')}: <pre>{html.escape(str(o.error.get('error', '')))}</pre>")
        params = html.escape(json.dumps(o.params))
        rows.append(f"<tr><td>{link}</td><td>{status}</td><td>{o.seconds:.0f} s</td><td><code>{params}</code></td>"
                    f"<td>{err}</td></tr>")
    return ("<table><tr><th>report</th><th>status</th><th>time</th><th>parameters</th><th>error</th></tr>"
            + "".join(rows) + "</table>")
