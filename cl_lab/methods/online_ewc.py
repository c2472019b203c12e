"""Online EWC (Schwarz et al., ICML 2018, "Progress & Compress"), task-incremental.

One running Fisher, decayed by ``gamma`` before each new task's Fisher is added
(F~_t = gamma * F~_{t-1} + F_t), and one anchor, the parameters after the latest task:

    L = L_new + (lambda / 2) * sum_i F~_i (theta_i - theta*_i)^2

The Fisher estimate is EWC's (see ``cl_lab.methods.ewc``). Storage stays constant in
the number of tasks: one Fisher and one anchor. The defaults (lambda 100, lr 0.001) are
EWC's and were confirmed on validation data for online EWC too (``benchmarks/tune_defaults.py``:
0.348 average validation accuracy; lambda 10: 0.280, 1000: 0.303 at lr 0.001; lambda 1000
diverged at lr 0.003).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..config import param
from .ewc import EWC, EWCConfig
from .registry import register


@dataclass
class OnlineEWCConfig(EWCConfig):
    gamma: float = param(1.0, "decay of the running Fisher before each new task's Fisher is added", ge=0, le=1)


@register
class OnlineEWC(EWC):
    """EWC with a single decayed running Fisher anchored at the latest parameters."""

    name = "online-ewc"
    Config = OnlineEWCConfig
    search_space = {**EWC.search_space, "gamma": ("float", 0.5, 1.0)}

    def consolidate(self, fisher: dict[str, Tensor], anchor: dict[str, Tensor]) -> None:
        if self.fishers:
            running = self.fishers[0]
            fisher = {k: self.cfg.gamma * running[k] + fisher[k] for k in fisher}
        self.fishers = [fisher]
        self.anchors = [anchor]
