"""Plotly figures as pure functions of results, and ipywidgets dashboards built on them."""

from .figures import (
    accuracy_heatmap,
    chosen_paths,
    cost_vs_accuracy,
    export,
    jaccard_heatmap,
    mdl_comparison,
    path_similarity,
    search_entropy,
    task_accuracy_over_time,
)

__all__ = ["accuracy_heatmap", "chosen_paths", "cost_vs_accuracy", "export", "jaccard_heatmap", "mdl_comparison",
           "path_similarity", "search_entropy", "task_accuracy_over_time"]
