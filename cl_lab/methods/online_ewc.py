"""Online EWC (Schwarz et al., ICML 2018, "Progress & Compress"); task-, domain- or class-incremental.

One running Fisher, decayed by ``gamma`` before each new task's Fisher is added
(F~_t = gamma * F~_{t-1} + F_t), and one anchor, the parameters after the latest task:

    L = L_new + (lambda / 2) * sum_i F~_i (theta_i - theta*_i)^2

The Fisher estimate is EWC's (see ``cl_lab.methods.ewc``). Storage stays constant in
the number of tasks: one Fisher and one anchor.

Tuned defaults, each the best of an 8-trial Optuna study, the budget every method gets
(``benchmarks/tune_defaults.py``: synth-10's first 3 tasks, 4 epochs, seed 0, final average accuracy
on their validation splits, never test; other parameters keep the papers' values):

- ``online-ewc``: ``ewc_lambda`` 1.7 (was 100), ``gamma`` 0.82 (was 1), ``lr`` 0.0035 (was 0.001);
  0.621 validation accuracy, study in ``benchmarks/results/tuning/online-ewc/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..config import param
from .ewc import EWC, EWCConfig
from .registry import register


@dataclass
class OnlineEWCConfig(EWCConfig):
    lr: float = param(0.0035, "learning rate (tuned: benchmarks/results/tuning/online-ewc)", gt=0, le=10)
    ewc_lambda: float = param(1.7, "strength lambda of the quadratic penalty (tuned: benchmarks/results/tuning/online-ewc)", ge=0)
    gamma: float = param(0.82, "decay of the running Fisher before each new task's Fisher is added", ge=0, le=1)


@register
class OnlineEWC(EWC):
    """EWC with a single decayed running Fisher anchored at the latest parameters."""

    name = "online-ewc"
    Config = OnlineEWCConfig
    search_space = {**EWC.search_space, "gamma": ("float", 0.5, 1.0)}

    def consolidate(self, fisher: dict[str, Tensor], anchor: dict[str, Tensor]) -> None:
        if self.fishers:
            running = self.fishers[0]
            # (a class-incremental head's new outputs have no running Fisher yet)
            fisher = {k: self.cfg.gamma * running[k] + f if k in running else f for k, f in fisher.items()}
        self.fishers = [fisher]
        self.anchors = [anchor]
