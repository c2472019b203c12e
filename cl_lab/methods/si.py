"""SI: synaptic intelligence (Zenke, Poole & Ganguli, ICML 2017); task-, domain- or class-incremental.

During task mu each shared parameter (the backbone's; outside the task scenario also the one
head's) accumulates its contribution to the drop in the task loss along the optimisation
path, omega_i += -g_i * delta_theta_i, with g the
gradient of the task loss alone (the surrogate's own gradient is removed analytically)
and delta_theta the actual change made by the optimiser step. At the end of the task

    Omega_i += omega_i / (Delta_i^2 + xi),   Delta_i = theta_i(end of mu) - theta_i(start of mu)

and later tasks add the surrogate loss c * sum_i Omega_i (theta_i - theta~_i)^2 with
theta~ the parameters at the end of the previous task (Eq. 4-5 of the paper). With plain
SGD (no momentum) every omega is lr * g^2 >= 0; with momentum or Adam a step can move
against the gradient, and omega is then negative for that step, as in the paper.


Tuned defaults, each the best of an 8-trial Optuna study, the budget every method gets
(``benchmarks/tune_defaults.py``: synth-10's first 3 tasks, 4 epochs, seed 0, final average accuracy
on their validation splits, never test; other parameters keep the papers' values):

- ``si``: ``c`` 0.02 (was 10), ``lr`` 0.0015 (was 0.001); 0.579 validation accuracy, study in
  ``benchmarks/results/tuning/si/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from ..config import param
from ..data.incremental import SCENARIOS
from ..data.task import Task
from .base import LR_RANGE, Cost, Method, OptimConfig
from .registry import register


@dataclass
class SIConfig(OptimConfig):
    lr: float = param(0.0015, "learning rate (the paper: Adam 1e-3)", gt=0, le=10)
    optimizer: Literal["sgd", "adam"] = param("adam", "optimiser (the paper: Adam)")
    c: float = param(0.02, "strength c of the surrogate loss (paper: 0.1; chosen on validation data, see the "
                           "module docstring)", ge=0)
    xi: float = param(1e-3, "damping xi in Omega = omega / (Delta^2 + xi)", gt=0)


@register
class SI(Method):
    """Path-integral importance per parameter, quadratic surrogate anchored at the last task."""

    name = "si"
    scenarios = SCENARIOS
    Config = SIConfig
    search_space = {**Method.search_space, "lr": LR_RANGE["adam"], "c": ("log", 0.01, 100.0)}

    def __init__(self, backbone, config, stream):
        super().__init__(backbone, config, stream)
        self.importance: dict[str, Tensor] = {}
        self.anchor: dict[str, Tensor] = {}
        self.omega: dict[str, Tensor] = {}
        self.start: dict[str, Tensor] = {}
        self.before: dict[str, Tensor] = {}

    def _params(self) -> dict[str, Tensor]:
        return self.consolidated_parameters()

    def begin_task(self, task_id: int, task: Task) -> None:
        super().begin_task(task_id, task)
        self.start = {k: p.detach().clone() for k, p in self._params().items()}
        self.before = {k: p.detach().clone() for k, p in self._params().items()}  # parameters before each step
        self.omega = {k: torch.zeros_like(p) for k, p in self._params().items()}

    def penalty(self) -> Tensor | float:
        if not self.importance or self.cfg.c == 0:
            return 0.0
        params = self._params()
        return self.cfg.c * sum((self.importance[k] * (params[k] - self.anchor[k]) ** 2).sum() for k in self.importance)

    def after_step(self) -> None:
        """omega_i += -g_i * delta_theta_i for the step just taken (g: the task loss's gradient alone)."""
        params = self._params()
        for k, p in params.items():
            before = self.before[k]
            g = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
            if k in self.importance:  # (a class-incremental head's new outputs have none yet)
                g -= 2 * self.cfg.c * self.importance[k] * (before - self.anchor[k])
            self.omega[k] -= g * (p.detach() - before)
            before.copy_(p.detach())

    def end_task(self, task_id: int, task: Task) -> None:
        for k, p in self._params().items():
            delta = p.detach() - self.start[k]
            new = self.omega[k] / (delta ** 2 + self.cfg.xi)
            self.importance[k] = self.importance.get(k, torch.zeros_like(new)) + new
            self.anchor[k] = p.detach().clone()
        self.omega, self.start, self.before = {}, {}, {}
        super().end_task(task_id, task)

    def cost(self) -> Cost:
        c = super().cost()
        c.extra_bytes += sum(t.numel() * t.element_size() for d in (self.importance, self.anchor) for t in d.values())
        return c

    def get_extra_state(self) -> Any:
        return {"importance": self.importance, "anchor": self.anchor}

    def set_extra_state(self, state: Any) -> None:
        device = next(self.backbone.parameters()).device
        self.importance = {k: v.to(device) for k, v in state["importance"].items()}
        self.anchor = {k: v.to(device) for k, v in state["anchor"].items()}
