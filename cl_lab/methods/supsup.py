"""SupSup: supermasks in superposition (Wortsman et al., NeurIPS 2020), task id given (GG).

The network's weights are fixed at initialisation and never trained. Each task learns a
binary supermask per layer with edge-popup (Ramanujan et al. 2020): real-valued scores,
the mask keeps the top ``density`` fraction of weights by |score| in each layer, and the
gradient passes straight through the top-k to the scores. Every conv and the output
layer are masked; the output layer is one fixed linear layer as wide as the largest task
and task t reads its first C_t outputs. BatchNorm is non-affine with running statistics
kept per task, so tasks do not share any state that changes.

Defaults: signed-constant weights (+/- the Kaiming-normal std, ``init="given"`` keeps what
the runner loaded, e.g. the shipped pretrained backbone); density 0.5; SGD lr 0.1 with
momentum 0.9 on the scores (edge-popup's settings). A task's storage is its mask, one bit
per masked weight: when a task ends its float32 scores are replaced by the mask they select,
packed 8 bits to a byte (``TaskMask.seal``), which is what the checkpoint holds; reported as
32-bit-parameter equivalents (each layer's bits in whole 32-bit words) plus the BN statistics in
``extra_bytes``.

Tuned defaults, each the best of an 8-trial Optuna study, the budget every method gets
(``benchmarks/tune_defaults.py``: synth-10's first 3 tasks, 4 epochs, seed 0, final average accuracy
on their validation splits, never test; other parameters keep the papers' values):

- ``supsup``: ``density`` 0.71 (was 0.5), ``lr`` 0.11 (was 0.1); 0.376 validation accuracy, study in
  ``benchmarks/results/tuning/supsup/``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import param
from ._adapters import PerTask, TaskBatchNorm, replace_modules
from .base import Cost, IsolatedMethod, OptimConfig, StreamInfo, freeze
from .registry import register


@dataclass
class SupSupConfig(OptimConfig):
    lr: float = param(0.11, "learning rate on the scores (edge-popup: SGD 0.1)", gt=0, le=10)
    density: float = param(0.71, "fraction of each layer's weights a task's mask keeps", gt=0, le=1)
    init: Literal["signed-constant", "given"] = param("signed-constant", "fixed weights: signed constant or as loaded")


class TopK(torch.autograd.Function):
    """Binary mask of the top ``density`` fraction of ``scores``; straight-through gradient."""

    @staticmethod
    def forward(ctx, scores: Tensor, density: float) -> Tensor:
        k = max(1, int(round(density * scores.numel())))
        mask = torch.zeros(scores.numel(), dtype=scores.dtype, device=scores.device)
        mask[scores.flatten().topk(k, sorted=False).indices] = 1.0  # flatten() is in logical (NCHW) order
        return torch.empty_like(scores).copy_(mask.view(scores.shape))  # in the scores' own layout

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def init_scores(weight: Tensor) -> nn.Parameter:
    scores = torch.empty_like(weight)
    nn.init.kaiming_uniform_(scores, a=math.sqrt(5))
    return nn.Parameter(scores)


_BIT = 1 << torch.arange(8, dtype=torch.uint8)


def pack_bits(mask: Tensor) -> Tensor:
    """A 0/1 tensor as bits, 8 per uint8 in its logical (NCHW) order, padded to whole 32-bit words."""
    flat = (mask.detach().flatten() != 0).to(torch.uint8)
    flat = F.pad(flat, (0, -len(flat) % 32))
    return (flat.view(-1, 8) * _BIT.to(flat.device)).sum(1, dtype=torch.uint8)


def unpack_bits(bits: Tensor, like: Tensor) -> Tensor:
    """The 0/1 tensor ``pack_bits`` packed, with the shape, dtype and memory layout of ``like``."""
    flat = (bits.unsqueeze(1) & _BIT.to(bits.device)).ne(0).flatten()[: like.numel()]
    return torch.empty_like(like).copy_(flat.view(like.shape))


class TaskMask(nn.Module):
    """One task's supermask of a layer: trainable ``scores`` while the task learns; after it, ``bits``,
    the binary mask itself (one bit per weight), which is all a finished task stores (``seal``)."""

    def __init__(self, weight: Tensor):
        super().__init__()
        self.scores = init_scores(weight)

    @property
    def sealed(self) -> bool:
        return "bits" in self._buffers

    def seal(self, density: float) -> None:
        """Replace the scores by the mask they select (the same mask, so every output stays bit for bit)."""
        if not self.sealed:
            bits = pack_bits(TopK.apply(self.scores.detach().abs(), density))
            del self.scores
            self.register_buffer("bits", bits)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "bits" in state_dict and not self.sealed:  # a finished task in a checkpoint: load its bits
            device = self.scores.device
            del self.scores
            self.register_buffer("bits", torch.empty_like(state_dict[prefix + "bits"], device=device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class MaskedLayer(PerTask):
    """A fixed conv or linear layer whose weight is multiplied by the active task's supermask."""

    def __init__(self, layer: nn.Conv2d | nn.Linear, density: float):
        super().__init__()
        self.layer = freeze(layer)
        self.density = density

    def add(self, task_id: int) -> nn.Module:
        holder = TaskMask(self.layer.weight)
        self.tasks[str(task_id)] = holder
        return holder

    def mask(self, task_id: int) -> Tensor:
        holder = self.tasks[str(task_id)]
        if holder.sealed:
            return unpack_bits(holder.bits, self.layer.weight)
        return TopK.apply(holder.scores.abs(), self.density)

    def forward(self, x: Tensor) -> Tensor:
        w = self.layer.weight * self.mask(self.active)
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, w, self.layer.bias)
        c = self.layer
        return F.conv2d(x, w, c.bias, c.stride, c.padding, c.dilation, c.groups)


class NonAffineTaskBN(TaskBatchNorm):
    """Per-task BatchNorm without affine parameters (running statistics per task)."""

    def add(self, task_id: int) -> nn.Module:
        src = self.source
        bn = type(src)(src.num_features, eps=src.eps, momentum=src.momentum, affine=False).to(src.running_mean.device)
        self.tasks[str(task_id)] = bn
        return bn


def signed_constant_(weight: Tensor) -> None:
    """Every weight +/- gain / sqrt(fan_in), random sign (SupSup's 'signed constant' init)."""
    fan_in = nn.init._calculate_correct_fan(weight, "fan_in")
    std = nn.init.calculate_gain("relu") / math.sqrt(fan_in)
    with torch.no_grad():
        weight.copy_(torch.sign(torch.randn_like(weight)) * std)


@register
class SupSup(IsolatedMethod):
    """Fixed random network, one learnt binary supermask per task and layer."""

    name = "supsup"
    Config = SupSupConfig
    search_space = {**IsolatedMethod.search_space, "density": ("float", 0.1, 0.9)}
    pretrained_default = False

    def __init__(self, backbone, config: SupSupConfig, stream: StreamInfo):
        super().__init__(backbone, config, stream)
        if config.init == "signed-constant":
            for m in backbone.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    signed_constant_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        freeze(backbone)
        self.backbone_param_count = sum(p.numel() for p in backbone.parameters())
        self.masked = replace_modules(backbone, lambda m: isinstance(m, nn.Conv2d),
                                      lambda m: MaskedLayer(m, config.density))
        self.bns = replace_modules(backbone, lambda m: isinstance(m, nn.modules.batchnorm._BatchNorm), NonAffineTaskBN)
        out = nn.Linear(backbone.out_dim, max(stream.num_classes), bias=False)
        signed_constant_(out.weight)
        self.output = MaskedLayer(out, config.density)
        self.masked.append(self.output)

    def set_task(self, task_id: int | None) -> None:
        for s in (*self.masked, *self.bns):
            s.active = task_id

    def add_task(self, task_id: int, num_classes: int) -> None:
        self.task_classes.append(num_classes)
        for s in (*self.masked, *self.bns):
            s.add(task_id)

    def task_parameters(self, task_id: int) -> list[nn.Parameter]:
        return [s.tasks[str(task_id)].scores for s in self.masked if not s.tasks[str(task_id)].sealed]

    def freeze_task(self, task_id: int) -> None:
        """A finished task keeps its masks as bits, not its float32 scores (also when restoring a checkpoint
        written before masks were stored as bits)."""
        super().freeze_task(task_id)
        for s in self.masked:
            s.tasks[str(task_id)].seal(self.cfg.density)

    def forward(self, x: Tensor, task_id: int) -> Tensor:
        self.set_task(task_id)
        return self.output(self.backbone(x))[:, : self.task_classes[task_id]]

    def mask_bits(self) -> int:
        return sum(s.layer.weight.numel() for s in self.masked)

    def mask_words(self) -> int:
        """32-bit words a task's masks take as stored (each layer's bits padded to whole words)."""
        return sum(math.ceil(s.layer.weight.numel() / 32) for s in self.masked)

    def cost(self) -> Cost:
        n = len(self.task_classes)
        stats = sum(b.numel() for s in self.bns for name, b in s.tasks[str(0)].named_buffers()
                    if name in ("running_mean", "running_var")) if n else 0
        return Cost(
            backbone_params=self.backbone_param_count + self.output.layer.weight.numel(),
            task_params=[self.mask_words()] * n,
            trainable_params=self.mask_bits() if n else 0,
            extra_bytes=4 * stats * n,
        )
