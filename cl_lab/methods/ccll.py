"""CCLL: Calibrating CNNs for Lifelong Learning (Singh et al., NeurIPS 2020), task id given.

The backbone is trained on the first task (all of it: convs, BN, head) and then frozen
for good. Every later task keeps its own BN and head and adds, after every conv block
(conv + BN) of the backbone, a calibration of the block's activation map M (c x h x w)
made of two modules:

- spatial calibration module (SCM): one k x k convolution with c input channels and a
  *single* output channel gives a spatial map S (1 x h x w) that is added to every
  channel: ``M_s = M + S``;
- channel-wise calibration module (CCM): global average pooling of M_s gives a c-vector,
  a channel-wise (depthwise 1x1) affine map and a sigmoid give one weight per channel:
  ``M_c = M_s * g(w * GAP(M_s) + b)``.

Readings we had to choose (each a parameter):
- where: on the output of every BN of the backbone (the task's own BN copy), before the
  activation; the paper places the modules "between consecutive layers". Calibrating the
  raw conv output instead would be undone by the BN that follows (BN normalises any
  per-channel scale away), which we measured: textures 0.15 vs 0.25 after 2 epochs.
- initialisation: the SCM conv starts at zero (so M_s = M) and the CCM gate is
  ``2 * sigmoid`` with w = b = 0 (``gate="2sigmoid"``), so a fresh calibration is the
  identity and task t starts from exactly the base network's features. The paper's plain
  ``sigmoid`` gate (``gate="sigmoid"``) halves every activation at initialisation; the
  following per-task BN absorbs a constant factor on plain paths but not across residual
  additions, which is why the identity start is our default.
- the paper's CCM has a BN on the pooled vector; we leave it out (a per-sample channel
  vector normalised over a small batch is noisy and the affine map already has a bias).
- optimiser: Adam, lr 1e-3 (SGD 0.01 trained the few calibration parameters too slowly).
- the first task starts from the runner's backbone weights (the shipped source-pretrained
  ResNet-8 by default; ``--pretrained none`` reproduces the paper's from-scratch base).

Cost per later task: SCM ``c*k*k + 1`` and CCM ``2c`` parameters per conv, plus BN and
head; the first task stores only its head (its network is the shared backbone).

Tuned defaults, each the best of an 8-trial Optuna study, the budget every method gets
(``benchmarks/tune_defaults.py``: synth-10's first 3 tasks, 4 epochs, seed 0, final average accuracy
on their validation splits, never test; other parameters keep the papers' values):

- ``ccll``: ``lr`` 0.0015 (was 0.001); 0.875 validation accuracy, study in
  ``benchmarks/results/tuning/ccll/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..config import ConfigError, param
from ._adapters import ConvAdapterMethod, TaskBatchNorm
from .base import LR_RANGE, OptimConfig
from .registry import register


@dataclass
class CCLLConfig(OptimConfig):
    lr: float = param(0.0015, "learning rate", gt=0, le=10)
    optimizer: Literal["sgd", "adam"] = param("adam", "optimiser")
    spatial_kernel: int = param(3, "kernel size of the spatial calibration conv (odd)", ge=1, le=31)
    gate: Literal["2sigmoid", "sigmoid"] = param("2sigmoid", "CCM gate: '2sigmoid' starts at the identity, "
                                                             "'sigmoid' is the paper's plain gate")

    def validate(self) -> None:
        if self.spatial_kernel % 2 == 0:
            raise ConfigError(f"ccll: spatial_kernel={self.spatial_kernel} must be odd (allowed: 1, 3, 5, ...)")


class Calibration(nn.Module):
    """SCM then CCM on one activation map; the identity at initialisation with ``gate='2sigmoid'``."""

    def __init__(self, channels: int, kernel: int = 3, gate: str = "2sigmoid"):
        super().__init__()
        self.spatial = nn.Conv2d(channels, 1, kernel, padding=kernel // 2, bias=True)
        nn.init.zeros_(self.spatial.weight)
        nn.init.zeros_(self.spatial.bias)
        self.channel_weight = nn.Parameter(torch.zeros(channels))
        self.channel_bias = nn.Parameter(torch.zeros(channels))
        self.scale = 2.0 if gate == "2sigmoid" else 1.0

    def forward(self, m: Tensor) -> Tensor:
        m = m + self.spatial(m)
        pooled = m.mean(dim=(2, 3))
        g = self.scale * torch.sigmoid(pooled * self.channel_weight + self.channel_bias)
        return m * g[:, :, None, None]


class CalibratedBN(TaskBatchNorm):
    """Per task: a copy of the frozen BN followed by that task's calibration."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, kernel: int, gate: str):
        super().__init__(bn)
        self.kernel, self.gate = kernel, gate

    def add(self, task_id: int) -> nn.Module:
        bn = super().add(task_id)
        cal = Calibration(bn.num_features, self.kernel, self.gate).to(bn.weight.device)
        self.tasks[str(task_id)] = nn.Sequential(bn, cal)
        return self.tasks[str(task_id)]


@register
class CCLL(ConvAdapterMethod):
    """Backbone trained on task 1 and frozen; per later task, BN + spatial and channel-wise calibration."""

    name = "ccll"
    Config = CCLLConfig
    search_space = {**ConvAdapterMethod.search_space, "lr": LR_RANGE["adam"]}
    base_task = True

    def adapts(self, conv: nn.Conv2d) -> bool:
        return False

    def wrap_bn(self, bn: nn.modules.batchnorm._BatchNorm) -> CalibratedBN:
        return CalibratedBN(bn, self.cfg.spatial_kernel, self.cfg.gate)
