"""The presentation layer for notebooks: parameters (``params``), display (``display``), runs (``runs``) and
the "what you should see" texts (``lessons``).

    from cl_lab.lab import check_parameters, show, run_methods, record_run
"""

from .display import PLOTLY_JS, STATIC_ENV, show, show_dashboard, static
from .lessons import (
    what_you_should_see_00,
    what_you_should_see_01,
    what_you_should_see_02,
    what_you_should_see_02_ablation,
    what_you_should_see_03,
    what_you_should_see_04,
    what_you_should_see_05,
    what_you_should_see_05_bn,
    what_you_should_see_05_scratch,
)
from .params import NotebookParameterError, check_parameters, defaults, describe_notebook
from .runs import comparison_methods, record_run, recorded_runs, report_missing, resolve_methods, run_methods

__all__ = ["PLOTLY_JS", "STATIC_ENV", "NotebookParameterError", "check_parameters", "defaults", "describe_notebook",
           "comparison_methods", "record_run", "recorded_runs", "report_missing", "resolve_methods", "run_methods", "show",
           "show_dashboard", "static", "what_you_should_see_00", "what_you_should_see_01", "what_you_should_see_02",
           "what_you_should_see_02_ablation",
           "what_you_should_see_03", "what_you_should_see_04", "what_you_should_see_05",
           "what_you_should_see_05_bn", "what_you_should_see_05_scratch"]
