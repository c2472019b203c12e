"""EWC: elastic weight consolidation (Kirkpatrick et al., PNAS 2017); task-, domain- or class-incremental.

After each task t, the diagonal Fisher information F_t of the shared backbone's
parameters is estimated at the task's optimum theta*_t, and every later step adds one
quadratic penalty per past task (Eq. 3 of the paper, summed over tasks):

    L = L_new + sum_t (lambda / 2) * sum_i F_t,i (theta_i - theta*_t,i)^2

``fisher="true"`` samples each example's label from the model's own predictive
distribution (the Fisher information proper); ``fisher="empirical"`` uses the data
labels (the common shortcut). The Fisher is the mean of per-example squared gradients of
the log-likelihood over ``fisher_samples`` training examples, with the network in eval
mode. In the task scenario heads are task-specific and receive no gradient from later
tasks, so only the backbone is penalised; in the domain and class scenarios the one shared
head is penalised too (``Method.consolidated_parameters``). Fisher matrices and anchors count in the cost record.

Gradient clipping (``max_grad_norm``) is off by default: at a stiff penalty it clips
nearly every step and the method becomes normalised-gradient descent, not EWC. When it is
set, the fraction of clipped steps is written per task to ``costs.csv``
(``clipped_fraction``), so a user sees when the guard acts.

SGD with momentum on the quadratic penalty is stable only while ``lr * lambda * F_i`` stays
below about ``2 (1 + momentum)``, and the Fisher of several past tasks adds up: in the study
below, 3 of 8 trials (lambda 187 at lr 0.012, lambda 4,400-4,500 at lr 0.008 and 0.23) diverged,
and the runner stopped them with a clear error. The best lambda sits at the low end of the
range: on these tasks' validation data a strong penalty did not pay.

Tuned defaults, each the best of an 8-trial Optuna study, the budget every method gets
(``benchmarks/tune_defaults.py``: synth-10's first 3 tasks, 4 epochs, seed 0, final average accuracy
on their validation splits, never test; other parameters keep the papers' values):

- ``ewc``: ``ewc_lambda`` 1.4 (was 100), ``lr`` 0.0013 (was 0.001); 0.608 validation accuracy, study
  in ``benchmarks/results/tuning/ewc/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import param
from ..data.incremental import SCENARIOS
from ..data.task import Task
from .base import Cost, Method, OptimConfig
from .registry import register


@dataclass
class EWCConfig(OptimConfig):
    lr: float = param(0.0013, "learning rate (tuned with lambda; see the module docstring)", gt=0, le=10)
    ewc_lambda: float = param(1.4, "strength lambda of the quadratic penalty", ge=0)
    fisher: Literal["empirical", "true"] = param("empirical", "labels for the Fisher: data ('empirical') or sampled")
    fisher_samples: int = param(256, "training examples used to estimate the Fisher", ge=1, le=1_000_000)


def fisher_diagonal(method: Method, task: Task, task_id: int, n: int, kind: str) -> dict[str, Tensor]:
    """Mean per-example squared gradient of log p(y|x) for the shared trainable parameters
    (``Method.consolidated_parameters``: the backbone's, and the one head's outside the task scenario)."""
    params = method.consolidated_parameters()
    fisher = {k: torch.zeros_like(p) for k, p in params.items()}
    device = next(iter(params.values())).device
    x_all = task.train.float_images()[:n].to(device)
    y_all = task.train.labels()[:n].to(device)
    was_training = method.training
    method.eval()
    for i in range(len(x_all)):
        logits = method(x_all[i: i + 1], task_id)
        if kind == "true":
            y = torch.multinomial(F.softmax(logits.detach(), 1), 1)[:, 0]
        else:
            y = y_all[i: i + 1]
        grads = torch.autograd.grad(F.log_softmax(logits, 1)[0, y[0]], list(params.values()))
        for k, g in zip(params, grads):
            fisher[k] += g.detach() ** 2
    method.train(was_training)
    return {k: f / len(x_all) for k, f in fisher.items()}


@register
class EWC(Method):
    """A separate quadratic penalty per past task, weighted by that task's Fisher."""

    name = "ewc"
    scenarios = SCENARIOS
    Config = EWCConfig
    search_space = {**Method.search_space, "ewc_lambda": ("log", 1.0, 1e4)}

    def __init__(self, backbone, config, stream):
        super().__init__(backbone, config, stream)
        self.fishers: list[dict[str, Tensor]] = []
        self.anchors: list[dict[str, Tensor]] = []

    def penalty(self) -> Tensor | float:
        if not self.fishers or self.cfg.ewc_lambda == 0:
            return 0.0
        params = self.consolidated_parameters()
        total = 0.0
        for fisher, anchor in zip(self.fishers, self.anchors):
            total = total + sum((fisher[k] * (params[k] - anchor[k]) ** 2).sum() for k in fisher)
        return self.cfg.ewc_lambda / 2 * total

    def end_task(self, task_id: int, task: Task) -> None:
        fisher = fisher_diagonal(self, task, task_id, self.cfg.fisher_samples, self.cfg.fisher)
        anchor = {k: p.detach().clone() for k, p in self.consolidated_parameters().items() if k in fisher}
        self.consolidate(fisher, anchor)
        super().end_task(task_id, task)

    def consolidate(self, fisher: dict[str, Tensor], anchor: dict[str, Tensor]) -> None:
        self.fishers.append(fisher)
        self.anchors.append(anchor)

    def cost(self) -> Cost:
        c = super().cost()
        c.extra_bytes += sum(t.numel() * t.element_size() for d in (*self.fishers, *self.anchors) for t in d.values())
        return c

    def get_extra_state(self) -> Any:
        return {"fishers": self.fishers, "anchors": self.anchors}

    def set_extra_state(self, state: Any) -> None:
        device = next(self.backbone.parameters()).device
        self.fishers = [{k: v.to(device) for k, v in d.items()} for d in state["fishers"]]
        self.anchors = [{k: v.to(device) for k, v in d.items()} for d in state["anchors"]]
