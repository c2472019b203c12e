"""The method interface: every CL method is a ``Method`` subclass with a learning rule.

The runner owns the loop, devices, evaluation and checkpoints; a method owns only
``begin_task`` / ``observe`` / ``end_task`` / ``predict`` / ``cost``. Its state round-trips
through ``checkpoint_state()`` / ``restore()`` so a run can resume after any task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import param
from ..data.task import Task
from ..models.backbones import Backbone, MultiHead, count_params


@dataclass
class OptimConfig:
    """Optimiser settings shared by methods that train with SGD or Adam."""

    lr: float = param(0.01, "learning rate", gt=0)
    optimizer: Literal["sgd", "adam"] = param("sgd", "optimiser")
    momentum: float = param(0.9, "SGD momentum", ge=0, lt=1)
    weight_decay: float = param(0.0, "L2 weight decay", ge=0)


@dataclass
class Cost:
    """Parameter and memory cost of a method after the tasks it has seen.

    ``task_params[i]`` counts the parameters stored for task i on top of the shared
    backbone (heads, adapters, masks as parameter-equivalents); ``extra_bytes`` counts
    other stored state (replay buffers, Fisher matrices, anchors).
    """

    backbone_params: int
    task_params: list[int] = field(default_factory=list)
    trainable_params: int = 0
    extra_bytes: int = 0

    @property
    def total_params(self) -> int:
        return self.backbone_params + sum(self.task_params)

    def percent(self, i: int) -> float:
        return 100.0 * self.task_params[i] / max(1, self.backbone_params)


@dataclass(frozen=True)
class StreamInfo:
    """What a method may know of the stream up front: the class count of each task."""

    num_classes: tuple[int, ...]
    task_names: tuple[str, ...]


class Method(nn.Module):
    """Base class: a shared backbone plus one linear head per task, trained by SGD on CE."""

    name: ClassVar[str] = "base"
    Config: ClassVar[type] = OptimConfig
    pretrained_default: ClassVar[bool] = True

    def __init__(self, backbone: Backbone, config: Any, stream: StreamInfo):
        super().__init__()
        self.backbone = backbone
        self.cfg = config
        self.stream = stream
        self.heads = MultiHead(backbone.out_dim)
        self.task_classes: list[int] = []
        self.optimizer: torch.optim.Optimizer | None = None

    def add_task(self, task_id: int, num_classes: int) -> None:
        """Grow the structure for a task (heads, adapters); also called when restoring."""
        self.heads.add(task_id, num_classes)
        self.task_classes.append(num_classes)

    def begin_task(self, task_id: int, task: Task) -> None:
        device = next(self.backbone.parameters()).device
        self.add_task(task_id, task.num_classes)
        self.to(device)
        self.optimizer = self.make_optimizer(self.trainable_parameters())

    def observe(self, x: Tensor, y: Tensor, task_id: int) -> float:
        """One optimisation step on a batch of the current task; returns the loss."""
        assert self.optimizer is not None
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self(x, task_id), y) + self.penalty()
        loss.backward()
        clip = getattr(self.cfg, "max_grad_norm", None)
        if clip:
            torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], clip)
        self.optimizer.step()
        return float(loss.detach())

    def penalty(self) -> Tensor | float:
        """Extra regularisation added to the task loss (EWC, SI, ...). Zero here."""
        return 0.0

    def end_epoch(self, task_id: int, epoch: int, epochs: int) -> None:
        """Called after each of the runner's ``epochs`` epochs (0-based ``epoch``): LR schedules."""

    def end_task(self, task_id: int, task: Task) -> None:
        self.optimizer = None

    def forward(self, x: Tensor, task_id: int) -> Tensor:
        return self.heads(self.backbone(x), task_id)

    @torch.no_grad()
    def predict(self, x: Tensor, task_id: int) -> Tensor:
        """Logits for task ``task_id`` (task identity given at test time)."""
        return self(x, task_id)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def make_optimizer(self, params: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
        c = self.cfg
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)

    def head_params(self, task_id: int) -> int:
        return count_params(self.heads.heads[str(task_id)])

    def cost(self) -> Cost:
        return Cost(
            backbone_params=count_params(self.backbone),
            task_params=[self.head_params(i) for i in range(len(self.task_classes))],
            trainable_params=sum(p.numel() for p in self.trainable_parameters()),
        )

    def checkpoint_state(self) -> dict[str, Any]:
        return {"name": self.name, "task_classes": list(self.task_classes), "module": self.state_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        """Rebuild per-task structure, then load every tensor (strict)."""
        if state.get("name") != self.name:
            raise ValueError(f"checkpoint holds method {state.get('name')!r}, not {self.name!r}")
        for i, k in enumerate(state["task_classes"]):
            self.add_task(i, k)
        self.load_state_dict(state["module"], strict=True)


class IsolatedMethod(Method):
    """Base of parameter-isolation methods: task t trains ``task_parameters(t)`` (plus any shared
    trainable weights), and those are frozen for good once the task ends."""

    def task_parameters(self, task_id: int) -> list[nn.Parameter]:
        raise NotImplementedError

    def freeze_task(self, task_id: int) -> None:
        for p in self.task_parameters(task_id):
            p.requires_grad_(False)
            p.grad = None

    def begin_task(self, task_id: int, task: Task) -> None:
        device = next(self.backbone.parameters()).device
        self.add_task(task_id, task.num_classes)
        self.to(device)
        for t in range(task_id):
            self.freeze_task(t)
        self.optimizer = self.make_optimizer(self.trainable_parameters())

    def end_task(self, task_id: int, task: Task) -> None:
        self.freeze_task(task_id)
        super().end_task(task_id, task)

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        for t in range(len(self.task_classes)):
            self.freeze_task(t)


def fit_on_task(model: nn.Module, head: nn.Module, task: Task, epochs: int, lr: float,
                weight_decay: float = 0.0, batch_size: int = 32) -> None:
    """Plain supervised training of ``head(model(x))`` on a task's training split (SGD, momentum 0.9).

    Used where a method trains a network of its own before its learning rule starts
    (CLR's first-task backbone, ResCL's fine-tuned target).
    """
    params = [*model.parameters(), *head.parameters()]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    device = next(model.parameters()).device
    x_all, y_all = task.train.float_images().to(device), task.train.labels().to(device)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y_all)).to(device)
        for b in range(0, len(y_all) - 1, batch_size):
            idx = perm[b: b + batch_size]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(head(model(x_all[idx])), y_all[idx]).backward()
            opt.step()


def freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module
