"""EFTs: Efficient Feature Transformations (Verma et al., CVPR 2021), task id given.

The backbone is trained on the first task and frozen; every later task transforms the
feature map F (c channels) of each convolution with two cheap convolutions and keeps its
own BN and head:

- a group-wise k x k convolution (``spatial_group_size`` channels per group), the
  spatial ("global") transformation ``a = W_a * F``;
- a group-wise point-wise (1x1) convolution (``point_group_size`` channels per group),
  the channel ("local") transformation ``b = W_b * F``;
- the transformed map ``F_t = a + gamma * b`` (``gamma = 0`` drops the point-wise branch).

Defaults follow the authors' code (vkverma01/EFT, the CIFAR-100 notebook; each a parameter,
the earlier readings stay as options):
- ``reading="authors"``: the transforms already sit in the task-0 network, default-initialised
  (PyTorch's conv init) and trained together with the backbone, BN and head; the backbone is
  then frozen and task 0 keeps its transforms; weight decay 5e-3 (``weight_decay``).
  ``reading="identity"`` is our earlier reading: task 0 trains the plain backbone, and the
  first task with transforms starts them at the identity. It is registered on its own as
  ``efts-identity`` (with its weight decay of 0), so both appear in one table;
- 8 channels per group for the k x k group-wise conv and 16 for the point-wise conv
  (``spatial_group_size``, ``point_group_size``); a layer with fewer channels than a group
  uses one group;
- a transform after *every* conv, the stem and the 1x1 shortcut projections included
  (``all_convs=True``; False keeps them to convs with kernel > 1);
- both transform convs carry a bias (``bias=True``);
- each new task's transforms, BN and head start from the previous task's
  (``warm_start=True``; the head only when the class counts match, else a fresh head); under
  ``reading="identity"`` the first task with transforms starts them at the identity (W_a a
  per-group Dirac kernel, W_b and the biases zero), so it computes exactly the base network's
  features;
- both branches read F and are summed, as in the paper's figure;
- the first task starts from the runner's backbone weights (shipped source-pretrained
  by default; ``--pretrained none`` trains the base from scratch as in the paper).

Tuned defaults, each the best of an 8-trial Optuna study, the budget every method gets
(``benchmarks/tune_defaults.py``: synth-10's first 3 tasks, 4 epochs, seed 0, final average accuracy
on their validation splits, never test; other parameters keep the papers' values):

- ``efts``: ``gamma`` 0.15 (was 1), ``lr`` 0.015 (was 0.01); 0.738 validation accuracy, study in
  ``benchmarks/results/tuning/efts/``.
- ``efts-identity``: ``gamma`` 0.15 (was 1), ``lr`` 0.015 (was 0.01); 0.909 validation accuracy,
  study in ``benchmarks/results/tuning/efts-identity/``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..config import ConfigError, param
from ._adapters import AdaptedConv, ConvAdapterMethod
from .base import OptimConfig
from .registry import register


@dataclass
class EFTsConfig(OptimConfig):
    lr: float = param(0.015, "learning rate", gt=0, le=10)
    weight_decay: float = param(5e-3, "L2 weight decay (authors' code: 5e-3)", ge=0)
    reading: Literal["authors", "identity"] = param(
        "authors", "'authors': transforms in the task-0 network, default-initialised, trained with the backbone; "
                   "'identity': task 0 trains the plain backbone, later transforms start at the identity")
    spatial_group_size: int = param(8, "channels per group of the k x k group-wise conv (authors: 8)", ge=1, le=4096)
    point_group_size: int = param(16, "channels per group of the point-wise conv (authors: 16)", ge=1, le=4096)
    kernel: int = param(3, "kernel size of the group-wise conv (odd)", ge=1, le=31)
    gamma: float = param(0.15, "weight of the point-wise branch (0 drops it)", ge=0)
    all_convs: bool = param(True, "transform every conv, 1x1 shortcuts included (authors); False: only k > 1")
    bias: bool = param(True, "bias in both transform convs (authors)")
    warm_start: bool = param(True, "start each task's transforms, BN and head from the previous task's (authors)")

    def validate(self) -> None:
        if self.kernel % 2 == 0:
            raise ConfigError(f"efts: kernel={self.kernel} must be odd (allowed: 1, 3, 5, ...)")


def _groups(channels: int, group_size: int) -> int:
    """Number of groups: ``channels / group_size`` when it divides, else the largest divisor below."""
    g = max(1, channels // group_size)
    while channels % g:
        g -= 1
    return g


class FeatureTransform(nn.Module):
    """``W_a * F + gamma * W_b * F`` with group-wise W_a (k x k) and W_b (1x1); the identity at init."""

    def __init__(self, channels: int, spatial_group_size: int = 8, point_group_size: int = 16,
                 kernel: int = 3, gamma: float = 1.0, bias: bool = True, identity: bool = True):
        super().__init__()
        ga = _groups(channels, spatial_group_size)
        self.spatial = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=ga, bias=bias)
        self.point = nn.Conv2d(channels, channels, 1, groups=_groups(channels, point_group_size), bias=bias)
        self.gamma = gamma
        per_group = channels // ga
        if not identity:  # PyTorch's default conv initialisation (the authors' task-0 transforms)
            return
        with torch.no_grad():
            self.spatial.weight.zero_()
            idx = torch.arange(channels)
            self.spatial.weight[idx, idx % per_group, kernel // 2, kernel // 2] = 1.0
            self.point.weight.zero_()
            for conv in (self.spatial, self.point):
                if conv.bias is not None:
                    conv.bias.zero_()

    def forward(self, f: Tensor) -> Tensor:
        a = self.spatial(f)
        if self.gamma == 0:
            return a
        return a + self.gamma * self.point(f)


def _transform(conv: nn.Conv2d, cfg: EFTsConfig) -> FeatureTransform:
    return FeatureTransform(conv.out_channels, cfg.spatial_group_size, cfg.point_group_size, cfg.kernel, cfg.gamma,
                            cfg.bias, identity=cfg.reading == "identity")


@register
class EFTs(ConvAdapterMethod):
    """Backbone trained on task 1 and frozen; per later task, group-wise + point-wise feature transforms."""

    name = "efts"
    Config = EFTsConfig
    search_space = {**ConvAdapterMethod.search_space, "gamma": ("float", 0.0, 2.0)}
    base_task = True

    def __init__(self, backbone, config: EFTsConfig, stream):
        super().__init__(backbone, config, stream)
        self.base_adapters = config.reading == "authors"

    def adapts(self, conv: nn.Conv2d) -> bool:
        return self.cfg.all_convs or max(conv.kernel_size) > 1

    def wrap_conv(self, conv: nn.Conv2d) -> AdaptedConv:
        return AdaptedConv(conv, functools.partial(_transform, cfg=self.cfg))

    def add_task(self, task_id: int, num_classes: int) -> None:
        super().add_task(task_id, num_classes)
        if not self.cfg.warm_start or task_id == 0:
            return
        prev = task_id - 1
        if self.has_adapters(prev):
            for s in self.switches:
                s.task_module(task_id).load_state_dict(s.task_module(prev).state_dict())
        head, prev_head = self.heads.heads[str(task_id)], self.heads.heads[str(prev)]
        if head.weight.shape == prev_head.weight.shape:
            head.load_state_dict(prev_head.state_dict())



@dataclass
class EFTsIdentityConfig(EFTsConfig):
    weight_decay: float = param(0.0, "L2 weight decay", ge=0)
    reading: Literal["authors", "identity"] = param("identity", "see efts: 'identity' is this method's reading")


@register
class EFTsIdentity(EFTs):
    """EFTs as we first read it: task 0 trains the plain backbone; later transforms start at the identity."""

    name = "efts-identity"
    Config = EFTsIdentityConfig
