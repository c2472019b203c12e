"""Plotly figures as pure functions of results (dashboards build on them)."""

from .figures import accuracy_heatmap, cost_vs_accuracy, task_accuracy_over_time

__all__ = ["accuracy_heatmap", "cost_vs_accuracy", "task_accuracy_over_time"]
