"""SGD: fine-tune the whole shared backbone on each task in turn, one head per task.

The lower bound of the CLR paper's comparison: nothing protects earlier tasks, so the
shared backbone drifts and old heads read features they were not trained on.

Tuned defaults, each the best of an 8-trial Optuna study, the budget every method gets
(``benchmarks/tune_defaults.py``: synth-10's first 3 tasks, 4 epochs, seed 0, final average accuracy
on their validation splits, never test; other parameters keep the papers' values):

- ``sgd``: ``lr`` 0.0063 (was 0.01); 0.611 validation accuracy, study in
  ``benchmarks/results/tuning/sgd/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import param
from ..data.incremental import SCENARIOS
from .base import Method, OptimConfig
from .registry import register


@dataclass
class SGDConfig(OptimConfig):
    lr: float = param(0.0063, "learning rate (tuned: benchmarks/results/tuning/sgd)", gt=0, le=10)


@register
class SGD(Method):
    """Plain fine-tuning with cross-entropy on the current task only."""

    name = "sgd"
    scenarios = SCENARIOS
    Config = SGDConfig
