"""Backbones: small CIFAR-style ResNets, torchvision ResNet-18/50, and any user CNN.

Every backbone maps images in [0, 1] to a feature vector of size ``out_dim``; input
normalisation lives inside the backbone so that pretrained weights see what they expect.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..registry import Registry


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` with fixed buffers."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class Backbone(nn.Module):
    """Wraps a feature extractor: ``normalize -> body -> flatten``; exposes ``out_dim``."""

    def __init__(self, body: nn.Module, out_dim: int, normalize: Normalize | None = None, arch: str = "custom"):
        super().__init__()
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.body = body
        self.out_dim = int(out_dim)
        self.arch = arch
        self.compiled = False

    def forward(self, x: Tensor) -> Tensor:
        if self.compiled:  # the runner's compile=True (cl_lab.models.compiled); copies compile for their own weights
            from . import compiled

            return compiled.forward(self, x)
        return self.eager_forward(x)

    def eager_forward(self, x: Tensor) -> Tensor:
        return torch.flatten(self.body(self.normalize(x)), 1)


class BasicBlock(nn.Module):
    """The two-3x3-conv residual block of He et al. (2016)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def _stages(block: type[nn.Module], depth: int, width: int) -> tuple[list[nn.Sequential], int]:
    """The three stages of a CIFAR ResNet-(6n+2) (widths w, 2w, 4w; stride 2 entering stages 2, 3)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, ...); got {depth}")
    if width < 1:
        raise ValueError(f"width must be a positive integer; got {width}")
    n = (depth - 2) // 6
    layers, cin = [], width
    for i, w in enumerate((width, 2 * width, 4 * width)):
        blocks = []
        for j in range(n):
            blocks.append(block(cin, w, 2 if (j == 0 and i > 0) else 1))
            cin = w
        layers.append(nn.Sequential(*blocks))
    return layers, cin


def _kaiming(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: 3x3 stem, three stages of widths w, 2w, 4w, global pool."""

    def __init__(self, depth: int = 8, width: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        (self.layer1, self.layer2, self.layer3), self.out_dim = _stages(BasicBlock, depth, width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        _kaiming(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.pool(self.layer3(self.layer2(self.layer1(x))))


class PreActBlock(nn.Module):
    """The pre-activation residual block of He et al. (ECCV 2016): BN-ReLU-conv, twice.

    ResCL's paper uses pre-activation ResNets; here a BN reads the block input (not a
    conv's output), so a BN can stand on its own as a linear unit.
    """

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(x))
        shortcut = self.shortcut(out) if not isinstance(self.shortcut, nn.Identity) else x
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + shortcut


class PreActCifarResNet(nn.Module):
    """Pre-activation ResNet-(6n+2) for 32x32 inputs: 3x3 stem, three stages, final BN-ReLU, global pool."""

    def __init__(self, depth: int = 8, width: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        (self.layer1, self.layer2, self.layer3), self.out_dim = _stages(PreActBlock, depth, width)
        self.bn = nn.BatchNorm2d(self.out_dim)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        _kaiming(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.pool(self.relu(self.bn(x)))


CIFAR_MEAN, CIFAR_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def cifar_resnet(depth: int = 8, width: int = 16) -> Backbone:
    body = CifarResNet(depth, width)
    return Backbone(body, body.out_dim, Normalize(CIFAR_MEAN, CIFAR_STD), arch=f"resnet{depth}-w{width}")


def preact_cifar_resnet(depth: int = 8, width: int = 16) -> Backbone:
    body = PreActCifarResNet(depth, width)
    return Backbone(body, body.out_dim, Normalize(CIFAR_MEAN, CIFAR_STD), arch=f"preact-resnet{depth}-w{width}")


def torchvision_resnet(arch: str) -> Backbone:
    """torchvision ResNet-18/50 with ``fc`` removed (random init; load weights with ``load_weights``)."""
    import torchvision

    if arch not in ("resnet18", "resnet50"):
        raise ValueError(f"torchvision arch must be 'resnet18' or 'resnet50'; got {arch!r}")
    model = getattr(torchvision.models, arch)(weights=None)
    out_dim = model.fc.in_features
    model.fc = nn.Identity()
    return Backbone(model, out_dim, Normalize(IMAGENET_MEAN, IMAGENET_STD), arch=arch)


def as_backbone(module: nn.Module, image_shape: tuple[int, int, int] = (3, 32, 32), out_dim: int | None = None) -> Backbone:
    """Use any ``nn.Module`` CNN as a backbone; its output is flattened and ``out_dim`` inferred."""
    if isinstance(module, Backbone):
        return module
    if not isinstance(module, nn.Module):
        raise TypeError(f"backbone must be a name or an nn.Module; got {type(module).__name__}")
    if out_dim is None:
        was = module.training
        module.eval()
        with torch.no_grad():
            probe = module(torch.zeros(2, *image_shape))
        module.train(was)
        out_dim = int(torch.flatten(probe, 1).shape[1])
    return Backbone(module, out_dim, None, arch=type(module).__name__)


BACKBONES = Registry("backbone")
"""Backbones by name; a new one registers where it is defined: ``@BACKBONES.register("name")``
on a function returning a ``Backbone``."""

BACKBONES.add("resnet8", lambda: cifar_resnet(8, 16), aliases=("resnet8-w16",))
BACKBONES.add("resnet14", lambda: cifar_resnet(14, 16), aliases=("resnet14-w16",))
BACKBONES.add("resnet20", lambda: cifar_resnet(20, 16), aliases=("resnet20-w16",))
BACKBONES.add("resnet8-w32", lambda: cifar_resnet(8, 32))
BACKBONES.add("preact-resnet8", lambda: preact_cifar_resnet(8, 16), aliases=("preact-resnet8-w16",))
BACKBONES.add("preact-resnet20", lambda: preact_cifar_resnet(20, 16), aliases=("preact-resnet20-w16",))
BACKBONES.add("resnet18", lambda: torchvision_resnet("resnet18"))
BACKBONES.add("resnet50", lambda: torchvision_resnet("resnet50"))


def build_backbone(name: str | nn.Module, image_shape: tuple[int, int, int] = (3, 32, 32)) -> Backbone:
    """A fresh backbone by name (see ``BACKBONES``), or wrap a user module."""
    if isinstance(name, nn.Module):
        return as_backbone(name, image_shape)
    if not isinstance(name, str) or name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; allowed: {sorted(BACKBONES)} or an nn.Module")
    return BACKBONES[name]()  # an architecture's full name (resnet8-w16, as in the manifest) is an alias


def module_digest(module: nn.Module) -> str:
    """SHA-256 of a module's structure (its ``repr``: layers, shapes, options) and of every tensor in
    its state dict (names, dtypes, shapes, values): two modules share it only if they compute the
    same function from the same weights."""
    import hashlib

    h = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}\n{module!r}".encode())
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        try:
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        except (RuntimeError, TypeError):  # dtypes without a byte view: their printed values
            h.update(repr(t.tolist()).encode())
    return h.hexdigest()


def freeze(module: nn.Module) -> nn.Module:
    """Turn off gradients of every parameter of ``module`` (in place); returns it."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class MultiHead(nn.Module):
    """Task-incremental heads: one linear classifier per task, created on demand
    (``heads[str(task_id)]``); the task id picks the head."""

    scenario = "task"

    def __init__(self, in_dim: int):
        super().__init__()
        self.in_dim = in_dim
        self.heads = nn.ModuleDict()

    def add(self, task_id: int, num_classes: int) -> nn.Linear:
        key = str(task_id)
        if key not in self.heads:
            self.heads[key] = nn.Linear(self.in_dim, num_classes)
        return self.heads[key]  # type: ignore[return-value]

    def forward(self, feats: Tensor, task_id: int) -> Tensor:
        return self.heads[str(task_id)](feats)

    def params_of(self, task_id: int) -> int:
        """Parameters added for task ``task_id``."""
        return count_params(self.heads[str(task_id)])

    def new_head(self, task_id: int) -> nn.Linear | None:
        """The classifier added for task ``task_id`` (None when the task added none)."""
        return self.heads[str(task_id)]  # type: ignore[return-value]


class GrowingHead(MultiHead):
    """Class-incremental head: one classifier over every class seen so far, grown by each task's
    classes (kept as one linear piece per task, whose outputs are concatenated in task order:
    the same function as one growing linear layer). The task id is not used."""

    scenario = "class"

    def forward(self, feats: Tensor, task_id: int | None = None) -> Tensor:
        return torch.cat([h(feats) for h in self.heads.values()], 1)


class SharedHead(MultiHead):
    """Domain-incremental head: one classifier for every task (``heads['0']``, made by the first
    task), over a label space all tasks share. The task id is not used."""

    scenario = "domain"

    def add(self, task_id: int, num_classes: int) -> nn.Linear:
        if "0" in self.heads:
            width = self.heads["0"].out_features
            if width != num_classes:
                raise ValueError(f"the domain scenario shares one head of {width} classes; task {task_id + 1} has "
                                 f"{num_classes}")
            return self.heads["0"]  # type: ignore[return-value]
        return super().add(0, num_classes)

    def forward(self, feats: Tensor, task_id: int | None = None) -> Tensor:
        return self.heads["0"](feats)

    def params_of(self, task_id: int) -> int:
        return count_params(self.heads["0"]) if task_id == 0 else 0

    def new_head(self, task_id: int) -> nn.Linear | None:
        return self.heads["0"] if task_id == 0 else None  # type: ignore[return-value]


HEADS = {"task": MultiHead, "domain": SharedHead, "class": GrowingHead}
"""The head of each scenario (``cl_lab.data.incremental.SCENARIOS``)."""
