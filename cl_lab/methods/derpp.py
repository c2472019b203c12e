"""DER++: dark experience replay (Buzzega et al., NeurIPS 2020), task-incremental.

A reservoir buffer stores inputs, labels, task ids and the logits the model produced
for them when they were inserted (computed before that step's update). The loss is

    CE(current) + alpha * MSE(h_t(x'), z') + beta * CE(h_t(x''), y'')

with (x', z') and (x'', y'') two independent buffer samples, each scored on its own
task's head. Defaults are the authors' Seq-CIFAR-10 settings for a 200-example buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from ..config import param
from ._buffer import ReplayMethod, ReservoirBuffer, per_task_loss
from .base import OptimConfig


@dataclass
class DERPPConfig(OptimConfig):
    lr: float = param(0.03, "learning rate (authors: 0.03 with SGD)", gt=0)
    momentum: float = param(0.0, "SGD momentum (authors: none)", ge=0, lt=1)
    buffer_size: int = param(200, "examples kept in the buffer", ge=1)
    replay_batch_size: int = param(32, "size of each of the two buffer samples per step", ge=1)
    alpha: float = param(0.1, "weight of the logit-matching (MSE) term", ge=0)
    beta: float = param(0.5, "weight of the buffer cross-entropy term", ge=0)


class DERPP(ReplayMethod):
    """Shared backbone, a head per task, logit replay plus label replay."""

    name = "derpp"
    Config = DERPPConfig

    def __init__(self, backbone, config, stream):
        super().__init__(backbone, config, stream)
        self.buffer = ReservoirBuffer(config.buffer_size, logit_width=max(stream.num_classes))

    def observe(self, x: Tensor, y: Tensor, task_id: int) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        logits = self(x, task_id)
        loss = F.cross_entropy(logits, y)
        if len(self.buffer):
            b = self.buffer.sample(self.cfg.replay_batch_size, x.device)
            width = [self.task_classes[t] for t in range(len(self.task_classes))]
            loss = loss + self.cfg.alpha * per_task_loss(
                self, b["x"], b["task"],
                lambda out, m: F.mse_loss(out, b["logits"][m][:, : width[int(b["task"][m][0])]]))
            c = self.buffer.sample(self.cfg.replay_batch_size, x.device)
            loss = loss + self.cfg.beta * per_task_loss(
                self, c["x"], c["task"], lambda out, m: F.cross_entropy(out, c["y"][m]))
        loss.backward()
        self.optimizer.step()
        self.buffer.add(x, y, task_id, logits.detach())
        return float(loss.detach())
