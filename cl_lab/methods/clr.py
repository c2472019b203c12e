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

``backbone_init`` (the paper's backbone ablation): ``"runner"`` keeps the weights the
runner loaded (``pretrained=``, the shipped source-pretrained checkpoint by default);
``"shipped"``; ``"random"`` re-initialises every layer (``reset_parameters``);
``"first-task"`` re-initialises, then trains the whole backbone with a temporary head on
the first task before freezing it; any other value is a weights-file path (torchvision
ImageNet, DINO or SwAV ResNet-50 state dicts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..config import ConfigError, param
from ..data.task import Task
from ..models.backbones import Backbone, count_params
from ..models.weights import load_weights
from ._adapters import AdaptedConv, PerTask, TaskBatchNorm, dirac_depthwise, replace_modules
from .base import Cost, IsolatedMethod, OptimConfig, StreamInfo, fit_on_task, freeze

BACKBONE_INITS = ("runner", "shipped", "random", "first-task")


@dataclass
class CLRConfig(OptimConfig):
    lr: float = param(1e-3, "learning rate (authors' code: Adam 1e-3)", gt=0)
    optimizer: Literal["sgd", "adam"] = param("adam", "optimiser (authors' code: Adam)")
    variant: Literal["clr", "full"] = param("clr", "'clr': CLR after convs with k > 1; 'full': after every conv")
    l2: float = param(1e-5, "L2 penalty on the task's CLR, BN and head parameters (authors' lambda)", ge=0)
    lr_gamma: float = param(0.1, "StepLR decay factor", gt=0, le=1)
    lr_step_fraction: float = param(1 / 3, "decay every ceil(epochs * this) epochs (authors: epochs // 3)", gt=0, le=1)
    train_bn: bool = param(True, "per-task BatchNorm affine parameters and statistics (paper); False freezes BN")
    backbone_init: str = param("runner", "'runner', 'shipped', 'random', 'first-task' or a weights file path")
    first_task_epochs: int = param(8, "epochs of full training on task 1 when backbone_init='first-task'", ge=1)
    first_task_lr: float = param(0.05, "SGD learning rate of that first-task training", gt=0)

    def validate(self) -> None:
        if self.backbone_init not in BACKBONE_INITS and not Path(self.backbone_init).expanduser().exists():
            raise ConfigError(f"clr: backbone_init={self.backbone_init!r} is neither one of {list(BACKBONE_INITS)} "
                              "nor an existing weights file")


class CLRConv(AdaptedConv):
    """A frozen conv followed by the active task's channel-wise 3x3 reprogramming kernel."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__(conv, _clr_kernel)


def _clr_kernel(conv: nn.Conv2d) -> nn.Conv2d:
    return dirac_depthwise(conv.out_channels, 3)


class CLR(IsolatedMethod):
    """Frozen backbone + per-task channel-wise reprogramming, BN and head."""

    name = "clr"
    Config = CLRConfig

    def __init__(self, backbone: Backbone, config: CLRConfig, stream: StreamInfo):
        super().__init__(backbone, config, stream)
        if config.backbone_init in ("random", "first-task"):
            for m in backbone.modules():
                if hasattr(m, "reset_parameters") and m is not backbone:
                    m.reset_parameters()
        elif config.backbone_init != "runner":
            load_weights(backbone, config.backbone_init)
        freeze(backbone)
        self.backbone_param_count = count_params(backbone)
        k_min = 1 if config.variant == "full" else 2
        self.clr_layers = replace_modules(
            backbone, lambda m: isinstance(m, nn.Conv2d) and max(m.kernel_size) >= k_min, CLRConv)
        self.bn_layers = replace_modules(
            backbone, lambda m: isinstance(m, nn.modules.batchnorm._BatchNorm), TaskBatchNorm) if config.train_bn else []
        if not self.clr_layers:
            raise ConfigError(f"clr: the backbone {backbone.arch!r} has no Conv2d layer to reprogram")
        self.register_buffer("first_task_trained", torch.tensor(False))

    @property
    def switches(self) -> list[PerTask]:
        return [*self.clr_layers, *self.bn_layers]

    def set_task(self, task_id: int | None) -> None:
        for s in self.switches:
            s.active = task_id

    def add_task(self, task_id: int, num_classes: int) -> None:
        super().add_task(task_id, num_classes)
        for s in self.switches:
            s.add(task_id)

    def train(self, mode: bool = True) -> CLR:
        super().train(mode)
        for bn in self.bn_layers:
            bn.source.eval()
        if not self.cfg.train_bn:
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def task_parameters(self, task_id: int) -> list[nn.Parameter]:
        params = [p for s in self.switches for p in s.task_module(task_id).parameters()]
        return params + list(self.heads.heads[str(task_id)].parameters())

    def begin_task(self, task_id: int, task: Task) -> None:
        if self.cfg.backbone_init == "first-task" and not bool(self.first_task_trained):
            self._train_backbone_on(task)
        super().begin_task(task_id, task)
        self.set_task(task_id)

    def penalty(self) -> Tensor | float:
        if self.cfg.l2 == 0:
            return 0.0
        return self.cfg.l2 * sum(p.pow(2).sum() for g in self.optimizer.param_groups for p in g["params"])

    def end_epoch(self, task_id: int, epoch: int, epochs: int) -> None:
        step = max(1, math.ceil(epochs * self.cfg.lr_step_fraction))
        lr = self.cfg.lr * self.cfg.lr_gamma ** ((epoch + 1) // step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    def forward(self, x: Tensor, task_id: int) -> Tensor:
        self.set_task(task_id)
        return self.heads(self.backbone(x), task_id)

    def _train_backbone_on(self, task: Task) -> None:
        """backbone_init='first-task': train the whole backbone on task 1, then freeze it again."""
        device = next(self.backbone.parameters()).device
        self.set_task(None)
        for p in self.backbone.parameters():
            p.requires_grad_(True)
        head = nn.Linear(self.backbone.out_dim, task.num_classes).to(device)
        fit_on_task(self.backbone, head, task, self.cfg.first_task_epochs, self.cfg.first_task_lr)
        freeze(self.backbone)
        self.first_task_trained.fill_(True)

    def cost_breakdown(self, task_id: int) -> dict[str, int]:
        """Parameters stored for one task: CLR kernels, BN affine, BN running statistics, head."""
        clr = sum(p.numel() for s in self.clr_layers for p in s.task_module(task_id).parameters())
        bn = sum(p.numel() for s in self.bn_layers for p in s.task_module(task_id).parameters())
        stats = sum(b.numel() for s in self.bn_layers for n, b in s.task_module(task_id).named_buffers()
                    if n in ("running_mean", "running_var"))
        head = self.head_params(task_id)
        return {"clr": clr, "bn": bn, "bn_stats": stats, "head": head, "total": clr + bn + head}

    def cost(self) -> Cost:
        rows = [self.cost_breakdown(t) for t in range(len(self.task_classes))]
        current = len(self.task_classes) - 1
        return Cost(
            backbone_params=self.backbone_param_count,
            task_params=[r["total"] for r in rows],
            trainable_params=rows[current]["total"] if rows else 0,
            extra_bytes=4 * sum(r["bn_stats"] for r in rows),
        )


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
