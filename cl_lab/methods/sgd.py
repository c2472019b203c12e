"""SGD: fine-tune the whole shared backbone on each task in turn, one head per task.

The lower bound of the CLR paper's comparison: nothing protects earlier tasks, so the
shared backbone drifts and old heads read features they were not trained on.
"""

from __future__ import annotations

from .base import Method, OptimConfig
from .registry import register


@register
class SGD(Method):
    """Plain fine-tuning with cross-entropy on the current task only."""

    name = "sgd"
    Config = OptimConfig
