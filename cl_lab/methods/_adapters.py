"""Per-task module switches shared by the parameter-isolation methods (CLR, CCLL, EFTs, ...).

A switch wraps one frozen module of the backbone and keeps one small trainable module per
task; ``active`` selects the task whose module runs. Swapping switches into a backbone
leaves the backbone's own tensors untouched.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from ..data.task import Task
from ..models.backbones import Backbone, count_params
from .base import Cost, IsolatedMethod, StreamInfo, freeze


class PerTask(nn.Module):
    """Base switch: ``tasks[str(t)]`` holds task t's module; ``active`` picks one (None: bypass)."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks = nn.ModuleDict()
        self.active: int | None = None

    def add(self, task_id: int) -> nn.Module:
        raise NotImplementedError

    def task_module(self, task_id: int) -> nn.Module:
        return self.tasks[str(task_id)]


class TaskBatchNorm(PerTask):
    """Per-task copies of a BatchNorm layer (affine and running statistics), seeded from the source."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.source = bn

    def add(self, task_id: int) -> nn.Module:
        bn = copy.deepcopy(self.source)
        for p in bn.parameters():
            p.requires_grad_(True)
        self.tasks[str(task_id)] = bn
        return bn

    def forward(self, x: Tensor) -> Tensor:
        if self.active is None:
            return self.source(x)
        return self.tasks[str(self.active)](x)


def replace_modules(root: nn.Module, predicate: Callable[[nn.Module], bool],
                    factory: Callable[[nn.Module], nn.Module]) -> list[nn.Module]:
    """Replace every submodule matching ``predicate`` by ``factory(module)``; return the new modules."""
    created = []
    for name, child in list(root.named_children()):
        if predicate(child):
            new = factory(child)
            setattr(root, name, new)
            created.append(new)
        else:
            created += replace_modules(child, predicate, factory)
    return created


def dirac_depthwise(channels: int, kernel_size: int = 3) -> nn.Conv2d:
    """A depthwise conv initialised to the identity: centre tap 1, every other tap 0."""
    conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, 0, kernel_size // 2, kernel_size // 2] = 1.0
    return conv


class AdaptedConv(PerTask):
    """A frozen conv whose output the active task's module transforms: ``tasks[t](conv(x))``."""

    def __init__(self, conv: nn.Conv2d, factory: Callable[[nn.Conv2d], nn.Module]):
        super().__init__()
        self.conv = conv
        self._factory = factory

    def add(self, task_id: int) -> nn.Module:
        module = self._factory(self.conv).to(self.conv.weight.device)
        self.tasks[str(task_id)] = module
        return module

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        if self.active is None:
            return y
        return self.tasks[str(self.active)](y)


class ConvAdapterMethod(IsolatedMethod):
    """Shared skeleton of the methods that keep a frozen backbone and add per-task modules at its convs.

    Subclasses give ``wrap_conv(conv)`` (a ``PerTask`` switch around one conv). Every task
    also keeps its own BatchNorm copies (affine parameters and running statistics) and head.

    ``base_task = True`` (CCLL, EFTs): task 0 trains the whole backbone (with its own BN and
    head, no adapters); the backbone is frozen for good when task 0 ends and later tasks add
    adapters. ``base_task = False`` (CLR, RCM): the backbone is frozen from the start and
    every task, the first included, gets adapters.
    """

    base_task: ClassVar[bool] = False
    base_adapters: bool = False
    """With ``base_task``: task 0 also has adapters, trained together with the backbone (EFTs as in
    its authors' code), and stores them like any later task."""
    adapter_key: ClassVar[str] = "adapter"
    """The name of the adapter column in ``cost_breakdown`` (CLR: ``"clr"``)."""

    def __init__(self, backbone: Backbone, config: Any, stream: StreamInfo):
        super().__init__(backbone, config, stream)
        self.backbone_param_count = count_params(backbone)
        self._base_params = list(backbone.parameters()) if self.base_task else []
        if not self.base_task:
            freeze(backbone)
        self.adapters = replace_modules(backbone, lambda m: isinstance(m, nn.Conv2d) and self.adapts(m), self.wrap_conv)
        self.bn_layers = replace_modules(backbone, lambda m: isinstance(m, nn.modules.batchnorm._BatchNorm),
                                         self.wrap_bn) if self.adapts_bn() else []
        if not self.adapters and not self.bn_layers:
            raise ValueError(f"{self.name}: the backbone {backbone.arch!r} has no Conv2d or BatchNorm layer to adapt")
        self.register_buffer("base_trained", torch.tensor(not self.base_task))

    def adapts(self, conv: nn.Conv2d) -> bool:
        """Which convs get per-task modules (all by default)."""
        return True

    def adapts_bn(self) -> bool:
        """Whether every task keeps its own BatchNorm copies (True by default)."""
        return True

    def wrap_conv(self, conv: nn.Conv2d) -> PerTask:
        raise NotImplementedError

    def wrap_bn(self, bn: nn.modules.batchnorm._BatchNorm) -> PerTask:
        """Per-task BatchNorm copies; a subclass may add its own modules after them."""
        return TaskBatchNorm(bn)

    @property
    def switches(self) -> list[PerTask]:
        return [*self.adapters, *self.bn_layers]

    def uses_base(self, task_id: int | None) -> bool:
        """True for the task that trains the backbone itself (task 0 of a ``base_task`` method)."""
        return self.base_task and task_id == 0

    def has_adapters(self, task_id: int | None) -> bool:
        """True for a task that owns adapters (every task but a plain backbone-training task 0)."""
        return not self.uses_base(task_id) or self.base_adapters

    def set_task(self, task_id: int | None) -> None:
        active = task_id if self.has_adapters(task_id) else None
        for s in self.switches:
            s.active = active

    def add_task(self, task_id: int, num_classes: int) -> None:
        super().add_task(task_id, num_classes)
        if self.has_adapters(task_id):
            for s in self.switches:
                s.add(task_id)

    def train(self, mode: bool = True):
        super().train(mode)
        if bool(self.base_trained):
            for bn in self.bn_layers:
                bn.source.eval()
        return self

    def task_parameters(self, task_id: int) -> list[nn.Parameter]:
        head = list(self.heads.heads[str(task_id)].parameters())
        own = [p for s in self.switches for p in s.task_module(task_id).parameters()] if self.has_adapters(task_id) else []
        return (self._base_params if self.uses_base(task_id) else []) + own + head

    def begin_task(self, task_id: int, task: Task) -> None:
        super().begin_task(task_id, task)
        self.set_task(task_id)

    def end_task(self, task_id: int, task: Task) -> None:
        super().end_task(task_id, task)
        if self.uses_base(task_id):
            self.base_trained.fill_(True)

    def forward(self, x: Tensor, task_id: int) -> Tensor:
        self.set_task(task_id)
        return self.heads(self.backbone(x), task_id)

    def cost_breakdown(self, task_id: int) -> dict[str, int]:
        """Parameters stored for one task: adapters, BN affine, BN running statistics, head.

        The task that trained the backbone (``base_task``) stores only its head: its
        convolutions and BN are the shared backbone every later task builds on.
        """
        head = self.head_params(task_id)
        if not self.has_adapters(task_id):
            return {self.adapter_key: 0, "bn": 0, "bn_stats": 0, "head": head, "total": head}
        modules = [s.task_module(task_id) for s in self.switches]
        bns = [m for mod in modules for m in mod.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        bn = sum(p.numel() for m in bns for p in m.parameters())
        adapter = sum(p.numel() for mod in modules for p in mod.parameters()) - bn
        stats = sum(m.running_mean.numel() + m.running_var.numel() for m in bns if m.running_mean is not None)
        return {self.adapter_key: adapter, "bn": bn, "bn_stats": stats, "head": head, "total": adapter + bn + head}

    def cost(self) -> Cost:
        rows = [self.cost_breakdown(t) for t in range(len(self.task_classes))]
        current = len(self.task_classes) - 1
        trainable = sum(p.numel() for p in self.task_parameters(current)) if rows else 0
        return Cost(
            backbone_params=self.backbone_param_count,
            task_params=[r["total"] for r in rows],
            trainable_params=trainable,
            extra_bytes=4 * sum(r["bn_stats"] for r in rows),
        )
