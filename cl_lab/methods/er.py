"""ER: experience replay with a reservoir buffer (Chaudhry et al. 2019, "On Tiny Episodic Memories").

Every step trains on the current batch plus a batch replayed from a reservoir-sampled
buffer of past examples; each replayed example is scored on its own task's head (the
task-incremental multi-head setting). The loss is the mean cross-entropy over the union
of both batches. The buffer's bytes count in the cost record.

Tuned defaults, each the best of an 8-trial Optuna study, the budget every method gets
(``benchmarks/tune_defaults.py``: synth-10's first 3 tasks, 4 epochs, seed 0, final average accuracy
on their validation splits, never test; other parameters keep the papers' values):

- ``er``: ``lr`` 0.012 (was 0.01), ``replay_batch_size`` 64 (was 32); 0.861 validation accuracy,
  study in ``benchmarks/results/tuning/er/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import param
from ..data.incremental import SCENARIOS
from ._buffer import ReplayMethod, per_task_loss
from .base import OptimConfig
from .registry import register


@dataclass
class ERConfig(OptimConfig):
    lr: float = param(0.012, "learning rate (tuned: benchmarks/results/tuning/er)", gt=0, le=10)
    buffer_size: int = param(200, "examples kept in the replay buffer", ge=1, le=1_000_000)
    replay_batch_size: int = param(64, "replayed examples per step", ge=1, le=65_536)


@register
class ER(ReplayMethod):
    """Shared backbone, a head per task, cross-entropy on current + replayed examples."""

    name = "er"
    scenarios = SCENARIOS
    Config = ERConfig
    search_space = {**ReplayMethod.search_space, "replay_batch_size": ("choice", [8, 16, 32, 64, 128])}

    def loss(self, x: Tensor, y: Tensor, task_id: int) -> Tensor:
        """Cross-entropy over the current batch and a replayed one, each example on its own head."""
        self.remember(x, y, task_id)
        if not len(self.buffer):
            return F.cross_entropy(self(x, task_id), y)
        b = self.buffer.sample(self.cfg.replay_batch_size, x)
        xs, ys = torch.cat([x, b["x"]]), torch.cat([y, b["y"]])
        ts = torch.cat([torch.full_like(y, task_id), b["task"]])
        return per_task_loss(self, xs, ts, lambda logits, m: F.cross_entropy(logits, ys[m]))
