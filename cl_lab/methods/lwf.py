"""LwF: learning without forgetting (Li & Hoiem, ECCV 2016 / TPAMI 2017); task-, domain- or class-incremental.

Before a new task, the network's responses for the old tasks' heads are recorded; while
the new task is learnt, the old heads are distilled towards those responses with
temperature T (default 2, as in the paper) and weight ``alpha`` (lambda_o, default 1):

    L = CE(new head) + alpha * sum_{old j} KL(softmax(y_j^rec / T) || softmax(y_j / T))

The recorded responses come from a frozen copy of the network taken when the task begins
(a ``Teacher``: always in eval mode, so its BatchNorm layers use the running statistics
exactly as at test time); inputs are not augmented, so this equals recording them once up
front. We use the KL divergence, which differs from the paper's soft cross-entropy by the
teacher's entropy (a constant): the same gradients, and exactly zero when nothing has
changed. ``reduction="sum"`` adds one term per old task, as the paper does; ``"mean"``
averages.

The paper's two training details, both parameters here with the paper's values as
defaults: a *warm-up* (Sec. 3: the shared and old-task weights are frozen and the new head
alone is trained first; ``warmup_epochs`` epochs of the new head on frozen, eval-mode
features, 0 disables), and weight decay 5e-4 (``weight_decay``).


Tuned defaults, each the best of an 8-trial Optuna study, the budget every method gets
(``benchmarks/tune_defaults.py``: synth-10's first 3 tasks, 4 epochs, seed 0, final average accuracy
on their validation splits, never test; other parameters keep the papers' values):

- ``lwf``: ``alpha`` 1.4 (was 3), ``lr`` 0.012 (was 0.01); 0.665 validation accuracy, study in
  ``benchmarks/results/tuning/lwf/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import param
from ..data.incremental import SCENARIOS
from ..data.task import Task
from .base import NO_PLAN, Method, OptimConfig, Teacher, TrainPlan, fit_supervised
from .registry import register


@dataclass
class LwFConfig(OptimConfig):
    lr: float = param(0.012, "learning rate (tuned: benchmarks/results/tuning/lwf)", gt=0, le=10)
    weight_decay: float = param(5e-4, "L2 weight decay (paper: 5e-4)", ge=0)
    alpha: float = param(1.4, "weight lambda_o of the distillation loss (paper: 1; tuned, see the module docstring)", ge=0)
    temperature: float = param(2.0, "distillation temperature T", gt=0)
    reduction: Literal["sum", "mean"] = param("sum", "combine the old tasks' terms by sum (paper) or mean")
    warmup_epochs: int = param(2, "epochs of training the new head alone on frozen features first (paper's "
                                  "warm-up; 0 disables)", ge=0, le=1000)
    warmup_lr: float = param(0.05, "SGD learning rate of the warm-up", gt=0, le=10)


def distillation(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch."""
    return F.kl_div(F.log_softmax(student / temperature, 1), F.log_softmax(teacher / temperature, 1),
                    reduction="batchmean", log_target=True)


@torch.no_grad()
def features(backbone: torch.nn.Module, task: Task, batch_size: int = 256, plan: TrainPlan | None = None) -> Tensor:
    """Eval-mode features of a task's whole training split (float32), computed as the run's steps
    compute (``plan``: memory layout and autocast)."""
    device, plan = next(backbone.parameters()).device, plan or NO_PLAN
    was = backbone.training
    backbone.eval()
    x = task.train.float_images()
    out = []
    for b in range(0, len(x), batch_size):
        with plan.autocast(device.type):
            out.append(backbone(plan.layout(x[b: b + batch_size].to(device))).float())
    backbone.train(was)
    return torch.cat(out)


def warm_up_head(head: torch.nn.Linear, feats: Tensor, y: Tensor, epochs: int, lr: float,
                 batch_size: int = 32, outputs=None, plan: TrainPlan | None = None) -> None:
    """Train a linear head alone on fixed features (``fit_supervised``). ``outputs`` maps features to
    the logits the labels index (default: ``head`` itself; in the class scenario the whole growing
    head, of which only ``head``, the new task's outputs, is trained)."""
    fit_supervised(head.parameters(), outputs or head, feats, y, epochs, lr, batch_size=batch_size, plan=plan)


@register
class LwF(Method):
    """Shared backbone, a head per task, old heads distilled towards their recorded responses."""

    name = "lwf"
    scenarios = SCENARIOS
    Config = LwFConfig
    search_space = {**Method.search_space, "alpha": ("log", 0.1, 10.0)}

    def __init__(self, backbone, config, stream):
        super().__init__(backbone, config, stream)
        self.teacher: Teacher | None = None

    def begin_task(self, task_id: int, task: Task) -> None:
        self.teacher = Teacher(backbone=self.backbone, heads=self.heads) if task_id > 0 else None
        super().begin_task(task_id, task)
        new = self.heads.new_head(task_id)  # None in the domain scenario after the first task: no new head
        if task_id > 0 and self.cfg.warmup_epochs and new is not None:
            warm_up_head(new, features(self.backbone, task, plan=self.plan), task.train.labels(),
                         self.cfg.warmup_epochs, self.cfg.warmup_lr, outputs=lambda f: self.heads(f, task_id),
                         plan=self.plan)

    def distillation_loss(self, x: Tensor, feats: Tensor, task_id: int) -> Tensor:
        """The LwF term for the old heads (0 if there is no old task)."""
        if self.teacher is None or task_id == 0:
            return feats.new_zeros(())
        with torch.no_grad():
            t_feats = self.teacher["backbone"](x)
        if self.scenario != "task":  # one head: distil the outputs the teacher had (every old class)
            old = self.teacher["heads"](t_feats, None)
            return distillation(self.heads(feats, None)[:, : old.shape[1]], old, self.cfg.temperature)
        terms = [distillation(self.heads(feats, j), self.teacher["heads"](t_feats, j), self.cfg.temperature)
                 for j in range(task_id)]
        total = torch.stack(terms)
        return total.sum() if self.cfg.reduction == "sum" else total.mean()

    def loss(self, x: Tensor, y: Tensor, task_id: int) -> Tensor:
        feats = self.backbone(x)
        return (self.record("task_loss", F.cross_entropy(self.heads(feats, task_id), y))
                + self.cfg.alpha * self.record("distillation", self.distillation_loss(x, feats, task_id)))

    def end_task(self, task_id: int, task: Task) -> None:
        self.teacher = None
        super().end_task(task_id, task)
