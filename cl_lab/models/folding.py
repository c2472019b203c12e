"""Network surgery for residual combination and folding (ResCL, Lee et al., AAAI 2020).

Two networks of one architecture are combined unit by unit (a unit: a conv, a BatchNorm or a
per-channel affine) as ``(1 + alpha_s) * source(x) + alpha_t * target(x)`` with per-channel
alphas (``Combined``); after training the combination is folded back into one network of the
original shape (``fold_network``), exactly, because every unit is affine per output channel:
a conv's weights and bias combine linearly, a BatchNorm in eval mode is a per-channel affine.
General network surgery, so it lives with the models; ``cl_lab.methods.rescl`` uses it.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .backbones import freeze
from .graph import conv_bn_pairs, set_submodule


class ConvBN(nn.Module):
    """A conv followed by its own BatchNorm: the target branch's unit (ResCL: each branch has its BN).

    ``calibrate(x)`` sets the BN so that, on that batch, the unit returns the conv's output
    unchanged (gamma = batch std, beta = batch mean, running statistics likewise): the
    target then starts fine-tuning from the source's function and scale.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(conv.out_channels).to(conv.weight.device)
        self.calibrating = False

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        if self.calibrating:
            with torch.no_grad():
                mean, var = y.mean((0, 2, 3)), y.var((0, 2, 3), unbiased=False)
                self.bn.running_mean.copy_(mean)
                self.bn.running_var.copy_(var)
                self.bn.weight.copy_((var + self.bn.eps).sqrt())
                self.bn.bias.copy_(mean)
        return self.bn(y)


class ChannelAffine(nn.Module):
    """``weight[c] * x[c] + bias[c]``: a folded BN that reads no conv's output directly (trainable)."""

    def __init__(self, weight: Tensor, bias: Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


UNIT_TYPES = (nn.Conv2d, nn.modules.batchnorm._BatchNorm, ChannelAffine)


def unit_affine(unit: nn.Module) -> tuple[Tensor | None, Tensor, Tensor]:
    """(W, scale, shift) with unit(x) = scale * (W x) + shift per channel (W None for a BN-only unit)."""
    conv = bn = None
    if isinstance(unit, ChannelAffine):
        return None, unit.weight.detach(), unit.bias.detach()
    if isinstance(unit, nn.Conv2d):
        conv = unit
    elif isinstance(unit, nn.modules.batchnorm._BatchNorm):
        bn = unit
    elif isinstance(unit, ConvBN):
        conv, bn = unit.conv, unit.bn
    elif isinstance(unit, nn.Sequential) and len(unit) == 2:
        conv, bn = unit[0], unit[1]
    else:
        raise TypeError(f"a combination unit is a Conv2d, a BatchNorm2d, a ChannelAffine or Sequential(conv, bn); "
                        f"got {unit}")
    channels = conv.out_channels if conv is not None else bn.num_features
    ref = conv.weight if conv is not None else bn.running_mean
    scale = torch.ones(channels, dtype=ref.dtype, device=ref.device)
    shift = conv.bias.detach().clone() if conv is not None and conv.bias is not None else torch.zeros_like(scale)
    if bn is not None:
        a = bn.running_var.add(bn.eps).rsqrt()
        if bn.affine:
            a = a * bn.weight.detach()
        b = -bn.running_mean * a + (bn.bias.detach() if bn.affine else 0.0)
        shift = a * shift + b
        scale = scale * a
    return (conv.weight.detach() if conv is not None else None), scale, shift


def fold_unit(units: list[tuple[nn.Module, Tensor]]) -> nn.Module:
    """Fold sum_k coef_k[c] * unit_k(x) into one conv with bias (or a ``ChannelAffine`` for BN-only units)."""
    template = units[0][0]
    conv = template if isinstance(template, nn.Conv2d) else None
    if isinstance(template, nn.Sequential):
        conv = template[0]
    elif isinstance(template, ConvBN):
        conv = template.conv
    weight, bias = None, None
    for unit, coef in units:
        w, scale, shift = unit_affine(unit)
        s = coef * scale
        term_w = (s.view(-1, 1, 1, 1) * w) if w is not None else s
        weight = term_w if weight is None else weight + term_w
        bias = coef * shift if bias is None else bias + coef * shift
    if conv is None:
        return ChannelAffine(weight, bias)
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    out = out.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        out.weight.copy_(weight)
        out.bias.copy_(bias)
    return out


ALPHA_INIT = 0.5


class Combined(nn.Module):
    """``(1 + alpha_s) * source(x) + alpha_t * target(x)`` per output channel (ResCL Eq. 1)."""

    def __init__(self, source: nn.Module, target: nn.Module, init: float = ALPHA_INIT):
        super().__init__()
        self.source = freeze(source)
        self.target = target
        channels = unit_affine(source)[1].numel()
        self.alpha_s = nn.Parameter(torch.full((channels,), -init))
        self.alpha_t = nn.Parameter(torch.full((channels,), init))

    def forward(self, x: Tensor) -> Tensor:
        s, t = self.source(x), self.target(x)
        return (1 + self.alpha_s).view(1, -1, 1, 1) * s + self.alpha_t.view(1, -1, 1, 1) * t

    def train(self, mode: bool = True) -> Combined:
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def fold(self) -> nn.Module:
        return fold_unit([(self.source, 1 + self.alpha_s.detach()), (self.target, self.alpha_t.detach())])


def find_units(root: nn.Module) -> list[tuple[str, str | None]]:
    """(unit qualified name, qualified name of the BN folded into it or None), in definition order.

    Units are convs (with the BN that reads only their output, from the traced graph),
    ConvBN and Combined modules, and BNs / ChannelAffines that read no conv directly;
    the search does not descend into a unit.
    """
    pairs = conv_bn_pairs(root)
    paired = set(pairs.values())
    found: list[tuple[str, str | None]] = []

    def visit(prefix: str, parent: nn.Module) -> None:
        for name, m in parent.named_children():
            q = f"{prefix}{name}"
            if isinstance(m, (nn.Conv2d, Combined, ConvBN)):
                found.append((q, pairs.get(q) if isinstance(m, nn.Conv2d) else None))
            elif isinstance(m, (nn.modules.batchnorm._BatchNorm, ChannelAffine)):
                if q not in paired:
                    found.append((q, None))
            else:
                visit(q + ".", m)

    visit("", root)
    return found


def _unit(root: nn.Module, name: str, bn: str | None) -> nn.Module:
    m = root.get_submodule(name)
    return m if bn is None else nn.Sequential(m, root.get_submodule(bn))


def fold_network(root: nn.Module) -> nn.Module:
    """Fold every unit of ``root`` in place: BN into conv biases, combined units into single convs."""
    for name, bn_name in find_units(root):
        m = root.get_submodule(name)
        if isinstance(m, Combined):
            set_submodule(root, name, m.fold())
        elif isinstance(m, nn.Conv2d) and bn_name is not None:
            set_submodule(root, name, fold_unit([(_unit(root, name, bn_name), torch.ones(m.out_channels))]))
            set_submodule(root, bn_name, nn.Identity())
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            set_submodule(root, name, fold_unit([(m, torch.ones(m.num_features))]))
    return root


def combine_networks(source: nn.Module, target: nn.Module, init: float = 0.5) -> nn.Module:
    """A network with the source's structure whose every unit is Combined(source unit, target unit)."""
    combined = copy.deepcopy(source)
    s_units, t_units = find_units(source), find_units(target)
    if [n for n, _ in s_units] != [n for n, _ in t_units]:
        raise ValueError("source and target networks must have the same units")
    for (name, sb), (_, tb) in zip(s_units, t_units):
        unit = Combined(copy.deepcopy(_unit(source, name, sb)), copy.deepcopy(_unit(target, name, tb)), init)
        set_submodule(combined, name, unit)
        if sb is not None:
            set_submodule(combined, sb, nn.Identity())
    return combined


def alphas(root: nn.Module) -> list[nn.Parameter]:
    return [p for m in root.modules() if isinstance(m, Combined) for p in (m.alpha_s, m.alpha_t)]
