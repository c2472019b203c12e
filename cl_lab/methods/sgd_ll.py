"""SGD-LL: a frozen backbone and a trainable last layer.

As defined in the CLR paper: the pretrained backbone stays fixed and only the last layer
is trained, one layer shared by all tasks and as wide as the largest task's class count
(task t reads its first ``C_t`` outputs). Because that layer is shared and keeps
training, earlier tasks are still forgotten, only less. ``head="per-task"`` gives each
task its own linear head instead (then nothing is forgotten).

Tuned defaults, each the best of an 8-trial Optuna study, the budget every method gets
(``benchmarks/tune_defaults.py``: synth-10's first 3 tasks, 4 epochs, seed 0, final average accuracy
on their validation splits, never test; other parameters keep the papers' values):

- ``sgd-ll``: ``lr`` 0.012 (was 0.01); 0.478 validation accuracy, study in
  ``benchmarks/results/tuning/sgd-ll/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from ..config import param
from .base import Method, OptimConfig, freeze
from .registry import register


@dataclass
class SGDLLConfig(OptimConfig):
    lr: float = param(0.012, "learning rate (tuned: benchmarks/results/tuning/sgd-ll)", gt=0, le=10)
    head: Literal["shared", "per-task"] = param("shared", "one shared last layer (paper) or a head per task")


@register
class SGDLL(Method):
    """Frozen backbone (BN statistics frozen too); only the last layer learns."""

    name = "sgd-ll"
    Config = SGDLLConfig
    shared_backbone = False

    def __init__(self, backbone, config, stream):
        super().__init__(backbone, config, stream)
        freeze(self.backbone)
        self.shared = nn.Linear(backbone.out_dim, max(stream.num_classes)) if config.head == "shared" else None

    def train(self, mode: bool = True) -> SGDLL:
        super().train(mode)
        if not any(p.requires_grad for p in self.backbone.parameters()):  # frozen: its BN statistics too
            self.backbone.eval()
        return self

    def add_task(self, task_id: int, num_classes: int) -> None:
        if self.shared is None:
            super().add_task(task_id, num_classes)
        else:
            self.task_classes.append(num_classes)

    def forward(self, x: Tensor, task_id: int) -> Tensor:
        feats = self.backbone(x)
        if self.shared is None:
            return self.heads(feats, task_id)
        return self.shared(feats)[:, : self.task_classes[task_id]]

    def head_params(self, task_id: int) -> int:
        if self.shared is None:
            return super().head_params(task_id)
        per = self.shared.weight.numel() + self.shared.bias.numel()
        return per if task_id == 0 else 0
