"""LwF: learning without forgetting (Li & Hoiem, ECCV 2016 / TPAMI 2017), task-incremental.

Before a new task, the network's responses for the old tasks' heads are recorded; while
the new task is learnt, the old heads are distilled towards those responses with
temperature T (default 2, as in the paper) and weight ``alpha`` (lambda_o, default 1):

    L = CE(new head) + alpha * sum_{old j} KL(softmax(y_j^rec / T) || softmax(y_j / T))

The recorded responses come from a frozen eval-mode copy of the network taken when the
task begins; inputs are not augmented, so this equals recording them once up front. We
use the KL divergence, which differs from the paper's soft cross-entropy by the teacher's
entropy (a constant): the same gradients, and exactly zero when nothing has changed.
``reduction="sum"`` adds one term per old task, as the paper does; ``"mean"`` averages.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import param
from ..data.task import Task
from .base import Method, OptimConfig, freeze


@dataclass
class LwFConfig(OptimConfig):
    alpha: float = param(1.0, "weight lambda_o of the distillation loss", ge=0)
    temperature: float = param(2.0, "distillation temperature T", gt=0)
    reduction: Literal["sum", "mean"] = param("sum", "combine the old tasks' terms by sum (paper) or mean")


def distillation(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch."""
    return F.kl_div(F.log_softmax(student / temperature, 1), F.log_softmax(teacher / temperature, 1),
                    reduction="batchmean", log_target=True)


class LwF(Method):
    """Shared backbone, a head per task, old heads distilled towards their recorded responses."""

    name = "lwf"
    Config = LwFConfig

    def __init__(self, backbone, config, stream):
        super().__init__(backbone, config, stream)
        self.teacher: nn.Module | None = None

    def begin_task(self, task_id: int, task: Task) -> None:
        self.teacher = None
        if task_id > 0:
            self.teacher = freeze(copy.deepcopy(nn.ModuleDict({"backbone": self.backbone, "heads": self.heads})))
            self.teacher.eval()
        super().begin_task(task_id, task)

    def distillation_loss(self, x: Tensor, feats: Tensor, task_id: int) -> Tensor:
        """The LwF term for the old heads (0 if there is no old task)."""
        if self.teacher is None or task_id == 0:
            return feats.new_zeros(())
        with torch.no_grad():
            t_feats = self.teacher["backbone"](x)
        terms = [distillation(self.heads(feats, j), self.teacher["heads"](t_feats, j), self.cfg.temperature)
                 for j in range(task_id)]
        total = torch.stack(terms)
        return total.sum() if self.cfg.reduction == "sum" else total.mean()

    def observe(self, x: Tensor, y: Tensor, task_id: int) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        feats = self.backbone(x)
        loss = F.cross_entropy(self.heads(feats, task_id), y)
        loss = loss + self.cfg.alpha * self.distillation_loss(x, feats, task_id)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def end_task(self, task_id: int, task: Task) -> None:
        self.teacher = None
        super().end_task(task_id, task)
