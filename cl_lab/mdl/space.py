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
from typing import Callable, Iterable, Sequence

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
    """One BatchNorm2d per domain that uses the block (``per_domain=False``: one shared by all)."""

    def __init__(self, channels: int, domains: Iterable[int], per_domain: bool = True):
        super().__init__()
        keys = [str(d) for d in sorted(set(domains))] if per_domain else ["shared"]
        self.per_domain = per_domain
        self.bns = nn.ModuleDict({k: nn.BatchNorm2d(channels) for k in keys})

    def forward(self, x: Tensor, domain: int) -> Tensor:
        return self.bns[str(domain) if self.per_domain else "shared"](x)


class InvertedBottleneck(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: int, stride: int, domains: Iterable[int],
                 domain_bn: bool = True):
        super().__init__()
        hidden = c_in * expansion
        domains = list(domains)
        self.expand = nn.Conv2d(c_in, hidden, 1, bias=False)
        self.bn1 = DomainBN(hidden, domains, domain_bn)
        self.depthwise = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        self.bn2 = DomainBN(hidden, domains, domain_bn)
        self.project = nn.Conv2d(hidden, c_out, 1, bias=False)
        self.bn3 = DomainBN(c_out, domains, domain_bn)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor, domain: int) -> Tensor:
        h = F.relu6(self.bn1(self.expand(x), domain))
        h = F.relu6(self.bn2(self.depthwise(h), domain))
        h = self.bn3(self.project(h), domain)
        return x + h if self.residual else h


def _block(layer: Layer, name: str, domains: Iterable[int], domain_bn: bool) -> InvertedBottleneck:
    k, e = (int(p[1:]) for p in name.split("_")[1:])
    return InvertedBottleneck(layer.in_channels, layer.out_channels, k, e, layer.stride, domains, domain_bn)


class MultiPathNet(nn.Module):
    """Shared stem, a set of blocks per layer, one head per domain; ``forward(x, path, domain)``.

    ``paths`` maps each domain to its path (phase 2: only those blocks are built); ``None``
    builds every block for every domain (the supernet). ``domain_bn=False`` gives each block
    one BatchNorm shared by the domains that use it instead of one per domain.
    """

    def __init__(self, space: SearchSpace, num_classes: Sequence[int], paths: dict[int, BlockPath] | None = None,
                 domain_bn: bool = True):
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
        self.stem_bn = DomainBN(space.stem_channels, stem_users, domain_bn)
        self.layers = nn.ModuleList(
            nn.ModuleDict({n: _block(layer, n, users[(i, n)], domain_bn) for n in layer.choices if (i, n) in users})
            for i, layer in enumerate(space.layers))
        last = space.widths[-1]
        self.heads = nn.ModuleDict({str(d): nn.Linear(last, num_classes[d]) for d in stem_users})
        self._macs: dict[tuple, int] = {}

    def block(self, layer: int, name: str) -> InvertedBottleneck:
        return self.layers[layer][name]

    def _stem(self, x: Tensor, domain: int) -> Tensor:
        return F.relu6(self.stem_bn(self.stem((x - 0.5) / 0.25), domain))

    def features(self, x: Tensor, path: Sequence[int], domain: int) -> Tensor:
        h = self._stem(x, domain)
        for i, n in enumerate(self.space.names(path)):
            if n != ZERO:
                h = self.layers[i][n](h, domain)
        return h

    def forward(self, x: Tensor, path: Sequence[int], domain: int) -> Tensor:
        h = self.features(x, path, domain)
        return self.heads[str(domain)](F.adaptive_avg_pool2d(h, 1).flatten(1))

    def path_macs(self, path: Sequence[int], domain: int = 0, image_size: int = 32) -> int:
        """Multiply-accumulates of one image through ``path`` and ``domain``'s head (convs and head;
        counted, not estimated). A path's count is the sum of its parts, so each part (stem, block
        at its layer, head of a given width) is counted once with the FLOP counter and cached by
        everything that changes its count; ``count_macs`` counts a whole forward pass instead."""
        total = self._part_macs(("stem", image_size), lambda x: self._stem(x, _any_domain(self)),
                                (3, image_size, image_size))
        res = self.layer_resolutions(image_size)
        for i, n in enumerate(self.space.names(path)):  # names() checks the path
            if n != ZERO:
                block = self.layers[i][n]
                total += self._part_macs(("block", i, n, res[i]), lambda x, b=block: b(x, _any_domain(b)),
                                         (self.space.layers[i].in_channels, res[i], res[i]))
        width = self.space.widths[-1]
        head = self.heads[str(domain)]
        return total + self._part_macs(("head", width, head.out_features), head, (width,))

    def layer_resolutions(self, image_size: int) -> list[int]:
        """Input height/width of every searchable layer (the same for every choice: odd kernels, 'same' padding)."""
        h = (image_size - 1) // self.space.stem_stride + 1
        out = []
        for layer in self.space.layers:
            out.append(h)
            h = (h - 1) // layer.stride + 1
        return out

    def _part_macs(self, key: tuple, fn: Callable[[Tensor], Tensor], shape: tuple[int, ...]) -> int:
        if key not in self._macs:
            self._macs[key] = _counted(self, fn, shape)
        return self._macs[key]

    def path_params(self, path: Sequence[int], domain: int = 0) -> int:
        """Conv weights of the blocks on ``path`` (the parameter-cost option of the reward; ``domain`` unused)."""
        return sum(m.weight.numel() for i, n in self.space.blocks_of(path)
                   for m in self.layers[i][n].modules() if isinstance(m, nn.Conv2d))


def _any_domain(module: nn.Module) -> int:
    """A domain whose BatchNorm ``module`` holds (MACs do not depend on which)."""
    for m in module.modules():
        if isinstance(m, DomainBN):
            return 0 if not m.per_domain else int(next(iter(m.bns)))
    return 0


def _counted(net: nn.Module, fn: Callable[[Tensor], Tensor], shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of ``fn`` on one zero input of ``shape`` (FLOP counter / 2), with
    ``net`` in inference mode meanwhile (BN must not update its statistics)."""
    was = net.training
    net.eval()
    x = torch.zeros(1, *shape, device=next(net.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        fn(x)
    net.train(was)
    return fc.get_total_flops() // 2


def count_macs(net: nn.Module, path: Sequence[int], domain: int, image_size: int = 32) -> int:
    """Multiply-accumulates of one image through ``net(x, path, domain)`` (FLOP counter / 2)."""
    return _counted(net, lambda x: net(x, path, domain), (3, image_size, image_size))


class SharedBackboneNet(nn.Module):
    """The single-path multi-head baseline: one backbone shared by every domain, a head per domain.

    ``forward(x, path, domain)`` ignores ``path`` (there is one). The paper starts it from a
    pretrained network; here ``backbone`` comes with the shipped synth-source weights or
    random ones (see ``experiment``). Its BatchNorm layers are shared by all domains: one
    shared network is what this baseline is.
    """

    def __init__(self, backbone: nn.Module, out_dim: int, num_classes: Sequence[int]):
        super().__init__()
        self.backbone = backbone
        self.num_classes = list(num_classes)
        self.heads = nn.ModuleDict({str(d): nn.Linear(out_dim, k) for d, k in enumerate(num_classes)})

    def forward(self, x: Tensor, path: Sequence[int], domain: int) -> Tensor:
        return self.heads[str(domain)](torch.flatten(self.backbone(x), 1))

    def path_macs(self, path: Sequence[int], domain: int = 0, image_size: int = 32) -> int:
        return count_macs(self, path, domain, image_size)
