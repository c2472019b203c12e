"""The MPNAS search space: a MobileNet-like supernet for 32x32 inputs, and the networks cut from it.

A network is a stem followed by searchable layers grouped in stages. Each layer chooses one
candidate block: an inverted bottleneck (1x1 expand, k x k depthwise, 1x1 project; residual
when shapes allow) for every kernel size x expansion ratio, and, for layers that are not
first in their stage, ``zero``, which skips the layer (output = input).

``MultiPathNet`` holds a *set* of blocks, each block once; a domain's path picks one block
per layer. The supernet holds every block; the heterogeneous model of phase 2 holds the
union of the domains' chosen blocks, so a block chosen by several domains is one module
whose weights all of them train. Each block keeps one BatchNorm per domain that uses it
(statistics of different domains and of ever-changing supernet paths must not mix); BN
parameters are a few hundred per block and are counted in the model size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ..metrics import jaccard  # noqa: F401  (re-exported)

ZERO = "zero"
BlockPath = tuple[int, ...]


@dataclass(frozen=True)
class Layer:
    name: str
    in_channels: int
    out_channels: int
    stride: int
    choices: tuple[str, ...]


@dataclass(frozen=True)
class SearchSpace:
    """Stem width and stride, stage widths (each stage downsamples by 2 in its first layer), candidates.

    The default stem halves 32x32 inputs to 16x16 (MobileNet's stem does the same), so the
    three stages run at 8x8, 4x4 and 2x2.
    """

    stem_channels: int = 16
    stem_stride: int = 2
    widths: tuple[int, ...] = (24, 40, 64)
    layers_per_stage: int = 2
    kernels: tuple[int, ...] = (3, 5, 7)
    expansions: tuple[int, ...] = (2, 4)
    allow_zero: bool = True

    def __post_init__(self) -> None:
        if not self.widths or self.layers_per_stage < 1 or not self.kernels or not self.expansions:
            raise ValueError("search space needs at least one stage, one layer per stage, one kernel and one expansion")
        if any(k % 2 == 0 or k < 1 for k in self.kernels):
            raise ValueError(f"kernel sizes must be odd and positive; got {self.kernels}")
        if any(e < 1 for e in self.expansions) or any(w < 1 for w in self.widths) or self.stem_channels < 1:
            raise ValueError("widths, stem channels and expansion ratios must be positive")

    @cached_property
    def layers(self) -> tuple[Layer, ...]:
        blocks = tuple(f"ib_k{k}_e{e}" for k in self.kernels for e in self.expansions)
        out, c_in = [], self.stem_channels
        for s, width in enumerate(self.widths):
            for i in range(self.layers_per_stage):
                first = i == 0
                choices = blocks if first or not self.allow_zero else (*blocks, ZERO)
                out.append(Layer(f"s{s + 1}.l{i + 1}", c_in, width, 2 if first else 1, choices))
                c_in = width
        return tuple(out)

    @property
    def num_choices(self) -> list[int]:
        return [len(layer.choices) for layer in self.layers]

    def names(self, path: Sequence[int]) -> list[str]:
        self.check(path)
        return [layer.choices[c] for layer, c in zip(self.layers, path)]

    def from_names(self, names: Sequence[str]) -> BlockPath:
        if len(names) != len(self.layers):
            raise ValueError(f"a path names one block per layer ({len(self.layers)}); got {len(names)}")
        out = []
        for layer, n in zip(self.layers, names):
            if n not in layer.choices:
                raise ValueError(f"layer {layer.name}: unknown block {n!r}; allowed: {list(layer.choices)}")
            out.append(layer.choices.index(n))
        return tuple(out)

    def check(self, path: Sequence[int]) -> None:
        if len(path) != len(self.layers) or any(not 0 <= c < n for c, n in zip(path, self.num_choices)):
            raise ValueError(f"path {tuple(path)} does not fit the space (choices per layer: {self.num_choices})")

    def blocks_of(self, path: Sequence[int]) -> set[tuple[int, str]]:
        """The (layer, block) pairs a path uses; ``zero`` uses no block."""
        return {(i, n) for i, n in enumerate(self.names(path)) if n != ZERO}

    def reference_path(self) -> BlockPath:
        """The fixed single-path architecture: kernel 3, largest expansion, no skipped layer."""
        name = f"ib_k{min(self.kernels)}_e{max(self.expansions)}"
        return self.from_names([name] * len(self.layers))

    def largest_path(self) -> BlockPath:
        name = f"ib_k{max(self.kernels)}_e{max(self.expansions)}"
        return self.from_names([name] * len(self.layers))


class DomainBN(nn.Module):
    """One BatchNorm2d per domain that uses the block."""

    def __init__(self, channels: int, domains: Iterable[int]):
        super().__init__()
        self.bns = nn.ModuleDict({str(d): nn.BatchNorm2d(channels) for d in sorted(set(domains))})

    def forward(self, x: Tensor, domain: int) -> Tensor:
        return self.bns[str(domain)](x)


class InvertedBottleneck(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: int, stride: int, domains: Iterable[int]):
        super().__init__()
        hidden = c_in * expansion
        domains = list(domains)
        self.expand = nn.Conv2d(c_in, hidden, 1, bias=False)
        self.bn1 = DomainBN(hidden, domains)
        self.depthwise = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        self.bn2 = DomainBN(hidden, domains)
        self.project = nn.Conv2d(hidden, c_out, 1, bias=False)
        self.bn3 = DomainBN(c_out, domains)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor, domain: int) -> Tensor:
        h = F.relu6(self.bn1(self.expand(x), domain))
        h = F.relu6(self.bn2(self.depthwise(h), domain))
        h = self.bn3(self.project(h), domain)
        return x + h if self.residual else h


def _block(layer: Layer, name: str, domains: Iterable[int]) -> InvertedBottleneck:
    k, e = (int(p[1:]) for p in name.split("_")[1:])
    return InvertedBottleneck(layer.in_channels, layer.out_channels, k, e, layer.stride, domains)


class MultiPathNet(nn.Module):
    """Shared stem, a set of blocks per layer, one head per domain; ``forward(x, path, domain)``.

    ``paths`` maps each domain to its path (phase 2: only those blocks are built); ``None``
    builds every block for every domain (the supernet).
    """

    def __init__(self, space: SearchSpace, num_classes: Sequence[int], paths: dict[int, BlockPath] | None = None):
        super().__init__()
        self.space = space
        self.num_classes = list(num_classes)
        domains = range(len(num_classes))
        users: dict[tuple[int, str], list[int]] = {}
        if paths is None:
            for i, layer in enumerate(space.layers):
                for n in layer.choices:
                    if n != ZERO:
                        users[(i, n)] = list(domains)
        else:
            for d, p in paths.items():
                for key in space.blocks_of(p):
                    users.setdefault(key, []).append(d)
        self.paths = None if paths is None else {int(d): tuple(p) for d, p in paths.items()}
        stem_users = list(domains) if paths is None else sorted(self.paths)
        self.stem = nn.Conv2d(3, space.stem_channels, 3, space.stem_stride, 1, bias=False)
        self.stem_bn = DomainBN(space.stem_channels, stem_users)
        self.layers = nn.ModuleList(
            nn.ModuleDict({n: _block(layer, n, users[(i, n)]) for n in layer.choices if (i, n) in users})
            for i, layer in enumerate(space.layers))
        last = space.widths[-1]
        self.heads = nn.ModuleDict({str(d): nn.Linear(last, num_classes[d]) for d in stem_users})
        self._macs: dict[BlockPath, int] = {}

    def block(self, layer: int, name: str) -> InvertedBottleneck:
        return self.layers[layer][name]

    def features(self, x: Tensor, path: Sequence[int], domain: int) -> Tensor:
        h = F.relu6(self.stem_bn(self.stem((x - 0.5) / 0.25), domain))
        for i, n in enumerate(self.space.names(path)):
            if n != ZERO:
                h = self.layers[i][n](h, domain)
        return h

    def forward(self, x: Tensor, path: Sequence[int], domain: int) -> Tensor:
        h = self.features(x, path, domain)
        return self.heads[str(domain)](F.adaptive_avg_pool2d(h, 1).flatten(1))

    def path_macs(self, path: Sequence[int], domain: int = 0, image_size: int = 32) -> int:
        """Multiply-accumulates of one image through ``path`` (convs and head; counted, not estimated)."""
        key = tuple(path)
        if key not in self._macs:
            was = self.training
            self.eval()
            x = torch.zeros(1, 3, image_size, image_size, device=self.stem.weight.device)
            with torch.no_grad(), FlopCounterMode(display=False) as fc:
                self(x, key, domain)
            self.train(was)
            self._macs[key] = fc.get_total_flops() // 2
        return self._macs[key]

    def path_params(self, path: Sequence[int]) -> int:
        """Conv weights of the blocks on ``path`` (the parameter-cost option of the reward)."""
        return sum(m.weight.numel() for i, n in self.space.blocks_of(path)
                   for m in self.layers[i][n].modules() if isinstance(m, nn.Conv2d))
