"""RCM: reparameterised convolutions with a frozen filter bank and per-task modulators, task id given.

Kanakis et al., "Reparameterizing Convolutions for Incremental Multi-Task Learning without
Task Interference" (ECCV 2020): each convolution of a pretrained network is split into a
non-trainable shared *filter bank* and a small task-specific *modulator*, so a new task
trains only its modulators (plus BN and head) and cannot disturb earlier tasks. (An
earlier version of this suite offered it as our reading of the CLR paper's "Confit";
that baseline is ConFiT, Jie et al. 2022, now in ``cl_lab.methods.confit``.)

The method. For a conv with weight W (c_out x c_in x k x k), flatten it to
``W = U S V^T`` (SVD, ``bank="svd"``, the paper's initialisation): the filter bank is the
r = min(c_out, c_in*k*k) orthonormal filters V^T, frozen and shared, and each task's
modulator is an r -> c_out 1x1 convolution initialised to U S, so a fresh task computes
exactly the pretrained conv: ``conv(x; W) = M_t * (bank * x)`` with ``M_t = U S`` at the
start. ``bank="weights"`` keeps W itself as the bank and starts the modulator at the
identity (same function, a non-orthogonal bank). Every conv is reparameterised; BN and
head are per task. The backbone is the runner's (the shipped source-pretrained ResNet-8
by default) and is frozen from the first task on.

Cost per task: ``c_out * r`` modulator parameters per conv (at most 1/k^2 of the conv
for k x k convs), plus BN and head.

Tuned defaults, each the best of an 8-trial Optuna study, the budget every method gets
(``benchmarks/tune_defaults.py``: synth-10's first 3 tasks, 4 epochs, seed 0, final average accuracy
on their validation splits, never test; other parameters keep the papers' values):

- ``rcm``: ``lr`` 0.0017 (was 0.001); 0.916 validation accuracy, study in
  ``benchmarks/results/tuning/rcm/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import param
from ._adapters import ConvAdapterMethod, PerTask
from .base import LR_RANGE, OptimConfig
from .registry import register


@dataclass
class RCMConfig(OptimConfig):
    lr: float = param(0.0017, "learning rate", gt=0, le=10)
    optimizer: Literal["sgd", "adam"] = param("adam", "optimiser")
    bank: Literal["svd", "weights"] = param("svd", "filter bank: orthonormal SVD filters (paper) or the conv weights")


class ReparamConv(PerTask):
    """A conv split into a frozen filter bank and per-task 1x1 modulators (``tasks[t]``)."""

    def __init__(self, conv: nn.Conv2d, bank: str = "svd"):
        super().__init__()
        if conv.groups != 1:
            raise ValueError("rcm: grouped convolutions cannot be reparameterised (groups must be 1)")
        w = conv.weight.detach()
        flat = w.reshape(w.shape[0], -1)
        if bank == "svd":
            u, s, vh = torch.linalg.svd(flat.double(), full_matrices=False)
            filters, modulator = vh.float().reshape(-1, *w.shape[1:]), (u * s).float()
        else:
            filters, modulator = w.clone(), torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
        self.bank = nn.Conv2d(conv.in_channels, filters.shape[0], conv.kernel_size, conv.stride, conv.padding,
                              conv.dilation, bias=False).to(w.device)
        with torch.no_grad():
            self.bank.weight.copy_(filters)
        self.bank.weight.requires_grad_(False)
        self.register_buffer("init_modulator", modulator[:, :, None, None].contiguous())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self.out_channels = conv.out_channels

    def add(self, task_id: int) -> nn.Module:
        m = nn.Conv2d(self.bank.out_channels, self.out_channels, 1, bias=False).to(self.init_modulator.device)
        with torch.no_grad():
            m.weight.copy_(self.init_modulator)
        self.tasks[str(task_id)] = m
        return m

    def forward(self, x: Tensor) -> Tensor:
        z = self.bank(x)
        weight = self.init_modulator if self.active is None else self.tasks[str(self.active)].weight
        return F.conv2d(z, weight, self.bias)


@register
class RCM(ConvAdapterMethod):
    """Frozen filter banks shared by all tasks; per task, 1x1 modulators, BN and head."""

    name = "rcm"
    Config = RCMConfig
    search_space = {**ConvAdapterMethod.search_space, "lr": LR_RANGE["adam"]}
    base_task = False

    def adapts(self, conv: nn.Conv2d) -> bool:
        return conv.groups == 1

    def wrap_conv(self, conv: nn.Conv2d) -> ReparamConv:
        return ReparamConv(conv, self.cfg.bank)
