"""CLR: Channel-wise Lightweight Reprogramming (Ge et al., ICCV 2023, arXiv 2307.11386).

A task-agnostic pretrained CNN is frozen and shared. After each frozen convolution a CLR
layer re-maps every output channel with its own 3x3 kernel, ``y_c = k_c * conv(x)_c``
(a depthwise conv, Dirac-initialised so a fresh CLR model computes exactly what the
backbone computes). Per task, the CLR kernels, the BatchNorm affine parameters and
running statistics and a linear head are trained and stored; nothing shared changes, so
earlier tasks cannot be forgotten. The task id is given at test time.

Defaults follow the authors' code: Adam, lr 1e-3, StepLR decaying by 0.1 every third of
the epochs, an L2 penalty of 1e-5 on the trained parameters, BN trained per task, CLR
layers only after convs with kernel size > 1 (``variant="full"`` adds them after 1x1
convs too). With the runner's short schedules we round the step up: step =
ceil(epochs * lr_step_fraction), which equals the authors' epochs // 3 at their 60 epochs.

The paper's backbone ablation is a runner setting, since a method does not choose where
its weights come from: ``pretrained="auto"`` (the shipped source-pretrained checkpoint),
``pretrained=None`` (random initialisation), ``pretrained="first-task"`` (the whole
backbone trained on the stream's first task, then frozen) or a weights file (torchvision
ImageNet, DINO or SwAV ResNet-50 state dicts).

CLR is the per-task conv-adapter skeleton of ``_adapters.ConvAdapterMethod`` with CLR's
own adapter (the Dirac depthwise kernel), its choice of convs, its L2 penalty and its LR
schedule.

Tuned defaults, each the best of an 8-trial Optuna study, the budget every method gets
(``benchmarks/tune_defaults.py``: synth-10's first 3 tasks, 4 epochs, seed 0, final average accuracy
on their validation splits, never test; other parameters keep the papers' values):

- ``clr``: ``lr`` 0.016 (was 0.001), ``lr_gamma`` 0.022 (was 0.1), ``lr_step_fraction`` 0.42 (was
  0.333333); 0.914 validation accuracy, study in ``benchmarks/results/tuning/clr/``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..config import ConfigError, param
from ..models.backbones import Backbone
from ._adapters import AdaptedConv, ConvAdapterMethod, PerTask, dirac_depthwise
from .base import LR_RANGE, OptimConfig, StreamInfo
from .registry import register


@dataclass
class CLRConfig(OptimConfig):
    lr: float = param(0.016, "learning rate (authors' code: Adam 1e-3)", gt=0, le=10)
    optimizer: Literal["sgd", "adam"] = param("adam", "optimiser (authors' code: Adam)")
    variant: Literal["clr", "full"] = param("clr", "'clr': CLR after convs with k > 1; 'full': after every conv")
    l2: float = param(1e-5, "L2 penalty on the task's CLR, BN and head parameters (authors' lambda)", ge=0)
    lr_gamma: float = param(0.022, "StepLR decay factor", gt=0, le=1)
    lr_step_fraction: float = param(0.42, "decay every ceil(epochs * this) epochs (authors: epochs // 3)", gt=0, le=1)
    train_bn: bool = param(True, "per-task BatchNorm affine parameters and statistics (paper); False freezes BN")


class CLRConv(AdaptedConv):
    """A frozen conv followed by the active task's channel-wise 3x3 reprogramming kernel."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__(conv, lambda c: dirac_depthwise(c.out_channels, 3))


@register
class CLR(ConvAdapterMethod):
    """Frozen backbone + per-task channel-wise reprogramming, BN and head."""

    name = "clr"
    Config = CLRConfig
    search_space = {**ConvAdapterMethod.search_space, "lr": LR_RANGE["adam"], "lr_step_fraction": ("float", 0.2, 1.0),
                    "lr_gamma": ("log", 0.01, 1.0)}
    adapter_key = "clr"

    def __init__(self, backbone: Backbone, config: CLRConfig, stream: StreamInfo):
        super().__init__(backbone, config, stream)
        if not self.adapters:
            raise ConfigError(f"clr: the backbone {backbone.arch!r} has no Conv2d layer to reprogram")

    @property
    def clr_layers(self) -> list[PerTask]:
        return self.adapters

    def adapts(self, conv: nn.Conv2d) -> bool:
        return self.cfg.variant == "full" or max(conv.kernel_size) > 1

    def adapts_bn(self) -> bool:
        return self.cfg.train_bn

    def wrap_conv(self, conv: nn.Conv2d) -> CLRConv:
        return CLRConv(conv)

    def train(self, mode: bool = True) -> CLR:
        super().train(mode)
        if not self.cfg.train_bn:
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def penalty(self) -> Tensor | float:
        if self.cfg.l2 == 0:
            return 0.0
        return self.cfg.l2 * sum(p.pow(2).sum() for g in self.optimizer.param_groups for p in g["params"])

    def end_epoch(self, task_id: int, epoch: int, epochs: int) -> None:
        step = max(1, math.ceil(epochs * self.cfg.lr_step_fraction))
        lr = self.cfg.lr * self.cfg.lr_gamma ** ((epoch + 1) // step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr


def clr_parameter_table(backbone: Backbone, num_classes: int = 10, variant: str = "clr") -> dict[str, Any]:
    """Per-task CLR cost for a backbone: counts and % of the frozen backbone (the paper's '< 0.6%')."""
    info = StreamInfo((num_classes,), ("t",))
    m = CLR(backbone, CLRConfig(variant=variant), info)
    m.add_task(0, num_classes)
    row: dict[str, Any] = {"backbone": backbone.arch, "backbone_params": m.backbone_param_count}
    for key, value in m.cost_breakdown(0).items():
        row[key] = value
        row[f"{key}_pct"] = 100.0 * value / m.backbone_param_count
    return row


@torch.no_grad()
def identity_gap(x: Tensor, backbone: str = "resnet8", num_classes: int = 4) -> float:
    """Largest |CLR features - backbone features| on images ``x`` for a fresh CLR task on the shipped
    backbone: 0 up to float error, because every CLR kernel starts as the identity (Dirac)."""
    import copy

    from ..models.backbones import build_backbone
    from ..models.weights import load_weights

    bb = build_backbone(backbone)
    load_weights(bb, "shipped")
    bb.eval()
    m = CLR(copy.deepcopy(bb), CLRConfig(), StreamInfo((num_classes,), ("demo",)))
    m.add_task(0, num_classes)
    m.set_task(0)
    m.eval()
    return float((m.backbone(x) - bb(x)).abs().max())
