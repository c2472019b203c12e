"""Per-task module switches shared by the parameter-isolation methods (CLR, CCLL, EFTs, ...).

A switch wraps one frozen module of the backbone and keeps one small trainable module per
task; ``active`` selects the task whose module runs. Swapping switches into a backbone
leaves the backbone's own tensors untouched.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import Tensor, nn


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
