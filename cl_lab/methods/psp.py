"""PSP: superposition of many models into one (Cheung et al., NeurIPS 2019), task id given.

One shared, trainable weight set. Each task k has a fixed random context c_k per layer,
and the layer computes ``W (c_k * x)``: the input is multiplied element-wise by the
context before the weights act, so every task sees its own "rotated" view of one set of
weights and the task models are stored in superposition. For a conv layer the context
has one entry per element of the receptive field the kernel reads (in_channels x kh x
kw), which is the same as multiplying each input patch before the dot product, i.e.
``conv(x; W * c_k)``.

Contexts: ``"binary"`` (+/-1, the default), ``"rotation"`` (a random orthogonal matrix
acting on the layer's flattened input dimension, for linear and 1x1 convs; other convs
fall back to binary), or ``"complex"`` (unit-modulus complex numbers; the real part of
the complex product is used, as in the paper's real-valued networks). Contexts are
regenerated from ``(context_seed, task, layer)``, so contexts cost no storage. The paper's
networks have no BatchNorm; in ours each task keeps its own BN (affine parameters and
running statistics, counted as that task's parameters together with its head), since
statistics pooled over differently-contexted tasks would undo the superposition.
Training starts from random initialisation, as in the paper (a context applied to
pretrained weights scrambles them). Because the weights are shared and keep training,
old tasks drift; the drift is smaller than plain fine-tuning's because the contexts
decorrelate the tasks' gradients.

Tuned defaults, each the best of an 8-trial Optuna study, the budget every method gets
(``benchmarks/tune_defaults.py``: synth-10's first 3 tasks, 4 epochs, seed 0, final average accuracy
on their validation splits, never test; other parameters keep the papers' values):

- ``psp``: ``lr`` 0.19 (was 0.01); 0.484 validation accuracy, study in
  ``benchmarks/results/tuning/psp/``.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import param
from ..models.backbones import count_params
from ._adapters import TaskBatchNorm, replace_modules
from .base import Cost, IsolatedMethod, OptimConfig, StreamInfo, freeze
from .registry import register


@dataclass
class PSPConfig(OptimConfig):
    lr: float = param(0.19, "learning rate (tuned: benchmarks/results/tuning/psp)", gt=0, le=10)
    context: Literal["binary", "rotation", "complex"] = param("binary", "kind of task context")
    context_seed: int = param(0, "seed the contexts are regenerated from", ge=0)


def make_context(kind: str, shape: tuple[int, ...], seed: int, task: int, layer: int) -> Tensor:
    """A fixed context for (task, layer); same arguments, same tensor."""
    g = torch.Generator().manual_seed(zlib.crc32(f"{seed}/{task}/{layer}".encode()))
    if kind == "complex":
        return torch.cos(2 * torch.pi * torch.rand(shape, generator=g))
    if kind == "rotation" and len(shape) == 2:
        q, r = torch.linalg.qr(torch.randn(shape[1], shape[1], generator=g))
        return q * torch.sign(torch.diagonal(r))
    return torch.randint(0, 2, shape, generator=g).float() * 2 - 1


class ContextLayer(nn.Module):
    """A shared conv or linear layer applied to the input multiplied by the active task's context."""

    def __init__(self, layer: nn.Conv2d | nn.Linear, kind: str, seed: int, index: int):
        super().__init__()
        self.layer = layer
        self.kind = kind if not (kind == "rotation" and isinstance(layer, nn.Conv2d) and layer.kernel_size != (1, 1)) \
            else "binary"
        self.seed, self.index = seed, index
        self.active = 0
        self._cache: dict[int, Tensor] = {}

    def _apply(self, fn, recurse: bool = True):
        out = super()._apply(fn, recurse)
        device = self.layer.weight.device  # the contexts follow the weights to their device
        self._cache = {t: c.to(device) for t, c in self._cache.items()}
        return out

    def context(self, task: int) -> Tensor:
        if task not in self._cache:
            w = self.layer.weight
            shape = (w.shape[0], w.shape[1]) if self.kind == "rotation" else (1, *w.shape[1:])
            with torch.inference_mode(False):  # a context first built during evaluation must also serve training
                self._cache[task] = make_context(self.kind, shape, self.seed, task, self.index).to(w.device)
        return self._cache[task]

    def effective_weight(self, task: int) -> Tensor:
        w, c = self.layer.weight, self.context(task)
        if self.kind == "rotation":
            flat = w.reshape(w.shape[0], -1) @ c
            return flat.reshape(w.shape)
        return w * c

    def forward(self, x: Tensor) -> Tensor:
        w = self.effective_weight(self.active)
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, w, self.layer.bias)
        c = self.layer
        return F.conv2d(x, w, c.bias, c.stride, c.padding, c.dilation, c.groups)


@register
class PSP(IsolatedMethod):
    """Shared weights, per-task fixed contexts on every conv, one head per task."""

    name = "psp"
    Config = PSPConfig
    pretrained_default = False

    def __init__(self, backbone, config: PSPConfig, stream: StreamInfo):
        super().__init__(backbone, config, stream)
        count = itertools.count()
        self.context_layers: list[ContextLayer] = replace_modules(
            backbone, lambda m: isinstance(m, nn.Conv2d),
            lambda conv: ContextLayer(conv, config.context, config.context_seed, next(count)))
        self.bns = replace_modules(backbone, lambda m: isinstance(m, nn.modules.batchnorm._BatchNorm), TaskBatchNorm)
        for bn in self.bns:
            freeze(bn.source)
        self.backbone_param_count = count_params(backbone)  # before any task's BN copy joins the module

    def add_task(self, task_id: int, num_classes: int) -> None:
        super().add_task(task_id, num_classes)
        for bn in self.bns:
            bn.add(task_id)
        for layer in self.context_layers:  # built now, so a compiled forward only looks them up
            layer.context(task_id)

    def task_parameters(self, task_id: int) -> list[nn.Parameter]:
        bn = [p for layer in self.bns for p in layer.task_module(task_id).parameters()]
        return bn + list(self.heads.heads[str(task_id)].parameters())

    def train(self, mode: bool = True) -> PSP:
        super().train(mode)
        for bn in getattr(self, "bns", []):
            bn.source.eval()
        return self

    def head_params(self, task_id: int) -> int:
        return sum(p.numel() for p in self.task_parameters(task_id))

    def cost(self) -> Cost:
        """The shared weights as the backbone (its size when built: the per-task BN copies that later sit
        inside the module are each task's, counted with its head in ``task_params``); trainable: the shared
        weights plus the latest task's BN and head, which trained and are frozen by now; stored apart:
        every task's BN running statistics (float32 means and variances; their 0-d step counters, like every
        counter, are not counted)."""
        tasks = range(len(self.task_classes))
        own = {id(p) for t in tasks for p in self.task_parameters(t)}
        shared = sum(p.numel() for p in self.parameters() if p.requires_grad and id(p) not in own)
        current = sum(p.numel() for p in self.task_parameters(tasks[-1])) if self.task_classes else 0
        stats = sum(b.numel() * b.element_size() for layer in self.bns for t in tasks
                    for b in layer.task_module(t).buffers() if b.dim() > 0)
        return Cost(backbone_params=self.backbone_param_count,
                    task_params=[self.head_params(t) for t in tasks],
                    trainable_params=shared + current, extra_bytes=stats + self.bn_stats_bytes())

    def forward(self, x: Tensor, task_id: int) -> Tensor:
        for layer in (*self.context_layers, *self.bns):
            layer.active = task_id
        return self.heads(self.backbone(x), task_id)

