"""Which BatchNorm reads a convolution's output: found from the network's traced graph.

Folding a BN into the conv before it (ResCL) or recomputing a BN's statistics from the
conv before it (ConFiT) is only right when the BN reads that conv's output and nothing
else reads it. Module definition order cannot tell (a pre-activation block defines
``bn1`` before ``conv1``; a user may write conv -> ReLU -> BN), so the pairs come from a
``torch.fx`` trace of the forward pass. A network fx cannot trace yields no pairs, which
is always safe: every conv and every BN is then its own unit.
"""

from __future__ import annotations

from torch import nn


def conv_bn_pairs(root: nn.Module) -> dict[str, str]:
    """``{conv qualified name: bn qualified name}`` for each BN whose only input is a conv's only use."""
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(root).graph
    except Exception:  # noqa: BLE001 - untraceable user code: no pairs is the safe answer
        return {}
    modules = dict(root.named_modules())
    pairs: dict[str, str] = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.modules.batchnorm._BatchNorm):
            continue
        src = node.args[0] if node.args else None
        if (isinstance(src, torch.fx.Node) and src.op == "call_module"
                and isinstance(modules.get(src.target), nn.Conv2d) and len(src.users) == 1):
            pairs[src.target] = node.target
    return pairs


def set_submodule(root: nn.Module, qualname: str, module: nn.Module) -> None:
    """Replace the submodule at dotted path ``qualname``."""
    parent, _, name = qualname.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)
