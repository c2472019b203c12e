"""Batch reports (execution, HTML, the report set, grids): execute the notebooks with papermill and render each to HTML, offline.

``run_report_set(out)`` executes the numbered notebooks in order on the embedded offline
default, writes ``<out>/<notebook>.ipynb`` and ``<out>/<notebook>.html`` and an
``index.html`` linking them. ``run_grid(grid_file, out)`` executes one notebook over a
parameter grid (e.g. methods x seeds x streams) in a local process pool, writes one HTML
per grid point and ``summary.html`` with the mean and spread across seeds. A failed
notebook is reported (its parameters, the failing cell and the error) and does not stop
the others; rerunning skips the points that finished.

Figures render offline: notebooks run with ``CL_LAB_STATIC=1``, so ``cl_lab.lab.show``
emits static plotly HTML that loads ``plotly.min.js``, written once next to the reports.
"""

from .execution import (
    NOTEBOOK_DIR,
    Outcome,
    check_params,
    clean_running,
    execute,
    fill_roles,
    kernel_start_failed,
    notebook_path,
    running_path,
)
from .grid import MAX_GRID_POINTS, grid_points, load_grid, point_name, run_grid
from .html import offline, to_html, write_plotly_js
from .reportset import REPORT_SET, run_report_set

__all__ = ["MAX_GRID_POINTS", "NOTEBOOK_DIR", "REPORT_SET", "Outcome", "check_params", "clean_running", "execute",
           "fill_roles", "grid_points", "kernel_start_failed", "load_grid", "notebook_path", "offline", "point_name",
           "run_grid", "run_report_set", "running_path", "to_html", "write_plotly_js"]
