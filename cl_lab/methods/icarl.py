"""iCaRL: incremental classifier and representation learning (Rebuffi et al., CVPR 2017), class-incremental.

The paper's three parts:

- **Exemplar memory** of at most ``memory_size`` images in all. After each task every seen
  class gets ``m = memory_size // classes seen`` exemplars: an old class keeps the first ``m``
  of its set (herding orders a set by priority, so cutting its tail is the paper's
  ReduceExemplarSet), and each new class's ``m`` are chosen by *herding* on L2-normalised
  features: one at a time, the image that brings the mean of the chosen features closest to
  the class mean (ConstructExemplarSet).
- **Representation learning** on the new task's images together with the exemplars, with a
  sigmoid binary cross-entropy over every class seen so far: one-hot targets for the new
  classes, and for the old classes the previous network's sigmoid outputs (distillation).
- **Nearest-mean-of-exemplars classification**: each class's mean of L2-normalised exemplar
  features (recomputed after every task), normalised; an image gets the class of the closest
  mean (``predict`` returns minus the distances, so argmax picks it).

Our reading where the paper leaves a choice to its setting (each a parameter):

- The runner feeds the new task's images in mini-batches; each step appends exemplars in the
  proportion they have in the paper's combined training set (``round(batch * memory /
  task images)``, at least one), drawn uniformly from the memory.
- The binary cross-entropy is averaged over outputs and images, as the authors' Theano code
  and Mammoth do (the paper's learning rate of 2.0 goes with that scale); the default learning
  rate is ours (``LR_RANGE`` covers it when tuning).
- ``memory_size`` 200, the budget of ER and DER++ here, so the three replay methods store as
  many images (the paper: 2,000 on CIFAR-100). Images are kept as stored by the task (uint8),
  and the class means are computed without the paper's flipped copies (no augmentation here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import ConfigError, param
from ..data.task import Task
from ._buffer import as_float, batch_like
from .base import Cost, Method, OptimConfig, Teacher
from .registry import register


@dataclass
class ICaRLConfig(OptimConfig):
    lr: float = param(0.1, "learning rate (our reading: SGD; the averaged binary cross-entropy has small gradients)",
                      gt=0, le=10)
    weight_decay: float = param(1e-5, "L2 weight decay (paper: 1e-5)", ge=0)
    memory_size: int = param(200, "exemplars kept in all (paper: 2,000 on CIFAR-100; 200 = ER's and DER++'s budget)",
                             ge=1, le=1_000_000)


def herding(feats: Tensor, m: int) -> list[int]:
    """Indices of ``m`` rows of ``feats`` (L2-normalised features of one class) chosen one at a time so
    that the mean of the chosen rows stays closest to the mean of all rows (iCaRL's herding)."""
    mu = feats.mean(0)
    chosen: list[int] = []
    running = torch.zeros_like(mu)
    taken = torch.zeros(len(feats), dtype=torch.bool)
    for k in range(1, min(m, len(feats)) + 1):
        scores = ((mu - (running + feats) / k) ** 2).sum(1)
        scores[taken] = float("inf")
        i = int(scores.argmin())
        chosen.append(i)
        taken[i] = True
        running += feats[i]
    return chosen


@register
class ICaRL(Method):
    """A growing head trained with sigmoid BCE and distillation on new images plus herded exemplars;
    nearest-mean-of-exemplars at test."""

    name = "icarl"
    Config = ICaRLConfig
    scenarios = ("class",)
    state_attributes = ("memory_x", "memory_y", "class_means")

    def __init__(self, backbone, config, stream):
        super().__init__(backbone, config, stream)
        if config.memory_size < sum(stream.num_classes):
            raise ConfigError(f"icarl: memory_size={config.memory_size} leaves some of the stream's "
                              f"{sum(stream.num_classes)} classes without an exemplar; use at least that many")
        self.memory_x: Tensor | None = None  # exemplar images, grouped by class, each class in herding order
        self.memory_y: Tensor | None = None  # their global class labels
        self.class_means: Tensor | None = None  # (classes seen, features), normalised
        self._teacher: Teacher | None = None
        self._task_images = 1

    # ------------------------------------------------------------------ training
    def begin_task(self, task_id: int, task: Task) -> None:
        self._teacher = Teacher(backbone=self.backbone, heads=self.heads) if task_id > 0 else None
        self._task_images = max(1, len(task.train))
        super().begin_task(task_id, task)

    def loss(self, x: Tensor, y: Tensor, task_id: int) -> Tensor:
        if self.memory_y is not None and len(self.memory_y):
            n = len(self.memory_y)
            k = min(n, max(1, round(len(x) * n / self._task_images)))
            idx = torch.randperm(n)[:k]
            x = torch.cat([x, batch_like(self.memory_x[idx], x)])
            y = torch.cat([y, self.memory_y[idx].to(y.device)])
        logits = self.heads(self.backbone(x), None)
        target = F.one_hot(y, logits.shape[1]).to(logits.dtype)
        if self._teacher is not None:
            with torch.no_grad():
                old = torch.sigmoid(self._teacher["heads"](self._teacher["backbone"](x), None))
            target[:, : old.shape[1]] = old
        return F.binary_cross_entropy_with_logits(logits, target) + self.penalty()

    def observe(self, x: Tensor, y: Tensor, task_id: int) -> Tensor:
        """The base step on one thread: with two, a step on new images plus exemplars crashed inside
        PyTorch's CPU kernels (torch 2.14, heap corruption; not yet narrowed to one operation)."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return super().observe(x, y, task_id)
        finally:
            torch.set_num_threads(threads)

    @torch.no_grad()
    def _features(self, x: Tensor, batch_size: int = 256) -> Tensor:
        """L2-normalised eval-mode features of stored images, on the host."""
        device = next(self.backbone.parameters()).device
        was = self.backbone.training
        self.backbone.eval()
        out = [F.normalize(self.backbone(as_float(x[b: b + batch_size].to(device))), dim=1).cpu()
               for b in range(0, len(x), batch_size)]
        self.backbone.train(was)
        return torch.cat(out)

    def end_task(self, task_id: int, task: Task) -> None:
        self._teacher = None
        seen = sum(self.task_classes)
        m = self.cfg.memory_size // seen
        xs, ys = [], []
        if self.memory_y is not None:  # ReduceExemplarSet: each old class keeps its first m
            for c in self.memory_y.unique().tolist():
                keep = (self.memory_y == c).nonzero()[:, 0][:m]
                xs.append(self.memory_x[keep])
                ys.append(self.memory_y[keep])
        x_all, y_all = task.train.x, task.train.labels()
        for c in y_all.unique().tolist():  # ConstructExemplarSet by herding
            idx = (y_all == c).nonzero()[:, 0]
            chosen = idx[herding(self._features(x_all[idx]), m)]
            xs.append(x_all[chosen].clone())
            ys.append(y_all[chosen].clone())
        self.memory_x, self.memory_y = torch.cat(xs), torch.cat(ys)
        feats = self._features(self.memory_x)
        means = torch.stack([feats[self.memory_y == c].mean(0) for c in range(seen)])
        self.class_means = F.normalize(means, dim=1)
        super().end_task(task_id, task)

    # ------------------------------------------------------------------ classification
    @torch.no_grad()
    def predict(self, x: Tensor, task_id: int | None) -> Tensor:
        """Minus the distance of each image's normalised feature to every class mean of exemplars.
        While a task trains (``eval_every`` probes) its new classes have no exemplars, hence no means,
        yet: then, as before the first task ends, the head's outputs over every class seen (our reading)."""
        if self.class_means is None or len(self.class_means) < sum(self.task_classes):
            return super().predict(x, task_id)
        feats = F.normalize(self.backbone(x), dim=1)
        return -torch.cdist(feats.float(), self.class_means.to(feats.device))

    # ------------------------------------------------------------------ bookkeeping
    def memory_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.memory_x, self.memory_y, self.class_means)
                   if t is not None)

    def cost(self) -> Cost:
        c = super().cost()
        c.extra_bytes += self.memory_bytes()
        return c

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        for k in ("memory_x", "memory_y", "class_means"):  # kept on the host, as during training
            v = getattr(self, k)
            if v is not None:
                setattr(self, k, v.cpu())
