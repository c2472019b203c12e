"""Pretrained weights: the shipped synth-source checkpoint (SHA-256 checked) and user files.

User files may be torchvision ImageNet state dicts, DINO or SwAV ResNet-50 checkpoints, or
cl_lab's own backbone checkpoints. Prefixes (``module.``, ``backbone.``, ...) and
projection/classifier heads are stripped; anything else that does not fit is an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .._io import sha256_file
from .backbones import Backbone

CHECKPOINT_DIR = Path(__file__).with_name("checkpoints")
MANIFEST = CHECKPOINT_DIR / "manifest.json"

HOW_TO_GET = {
    "torchvision": (
        "save ImageNet weights on a machine with internet: python -c \"import torch, torchvision; "
        "torch.save(torchvision.models.resnet50(weights='IMAGENET1K_V2').state_dict(), 'resnet50_imagenet.pt')\""
    ),
    "dino": "download dino_resnet50_pretrain.pth from https://github.com/facebookresearch/dino (ResNet-50 backbone)",
    "swav": "download swav_800ep_pretrain.pth.tar from https://github.com/facebookresearch/swav",
}
DROP_PREFIXES = ("fc.", "head.", "heads.", "projection_head.", "prototypes.", "classifier.")
STRIP_PREFIXES = ("module.", "backbone.", "encoder.", "model.", "body.")


class WeightsError(ValueError):
    """A weights file is missing, corrupt or does not fit the backbone."""


def shipped_checkpoints() -> dict[str, dict[str, Any]]:
    if not MANIFEST.exists():
        return {}
    try:
        entries = json.loads(MANIFEST.read_text())
        if not isinstance(entries, dict) or not all(isinstance(e, dict) and {"arch", "file", "sha256"} <= set(e)
                                                    for e in entries.values()):
            raise ValueError("not a mapping of checkpoint name -> {arch, file, sha256, ...}")
    except (OSError, ValueError) as e:
        raise WeightsError(f"the shipped checkpoint manifest {MANIFEST} is invalid ({e}); reinstall cl_lab or "
                           "restore the file from the repository") from None
    return entries


def checkpoint_key(name: object) -> str | None:
    """The manifest's name (``arch.tag``, as timm names weights) for a shipped checkpoint's name or
    alias (a name it was first shipped under); None when ``name`` names no shipped checkpoint."""
    if not isinstance(name, str):
        return None
    entries = shipped_checkpoints()
    if name in entries:
        return name
    return next((k for k, e in entries.items() if name in e.get("aliases", ())), None)


def shipped_names() -> list[str]:
    """Every name a shipped checkpoint answers to: manifest names and their aliases."""
    return sorted({n for k, e in shipped_checkpoints().items() for n in (k, *e.get("aliases", ()))})


def recorded_name(name: str) -> str:
    """The name a run records (and is identified by) for a shipped checkpoint: the name it was first
    shipped under, so runs made before a checkpoint was renamed keep their directories."""
    key = checkpoint_key(name)
    if key is None:
        return name
    aliases = shipped_checkpoints()[key].get("aliases") or []
    return aliases[0] if aliases else key


def default_checkpoint(arch: str) -> str | None:
    """Name of the shipped checkpoint ``"shipped"`` means for ``arch`` (any of the architecture's names:
    ``resnet8`` or ``resnet8-w16``): the entry marked default, else the first one for that
    architecture; None when none is shipped."""
    from .backbones import BACKBONES

    def canonical(a: str) -> str:
        return BACKBONES.canonical(a) if a in BACKBONES else a

    entries = shipped_checkpoints()
    matches = sorted((n for n, e in entries.items() if canonical(e["arch"]) == canonical(arch)),
                     key=lambda n: not entries[n].get("default"))
    return matches[0] if matches else None


def shipped_for(source: object, arch: str, *, required: bool = True) -> str | None:
    """The one place ``"shipped"`` is resolved: the manifest name (``arch.tag``) of the shipped
    checkpoint ``source`` means for a backbone ``arch`` ('shipped': the architecture's default; a
    shipped name or alias: that checkpoint); None when ``source`` is no shipped name (a file path).
    'shipped' with none shipped for ``arch`` is a ``WeightsError`` (``required=False``: None)."""
    if source == "shipped":
        name = default_checkpoint(arch)
        if name is None and required:
            raise WeightsError(f"no shipped checkpoint for backbone {arch!r}; shipped: "
                               f"{ {n: e['arch'] for n, e in shipped_checkpoints().items()} }")
        return name
    return checkpoint_key(source)


def shipped_path(name: str) -> Path:
    """Path of a shipped checkpoint after verifying its SHA-256 against the manifest."""
    entries = shipped_checkpoints()
    key = checkpoint_key(name)
    if key is None:
        raise WeightsError(f"no shipped checkpoint named {name!r}; shipped: {shipped_names()}")
    entry = entries[key]
    path = CHECKPOINT_DIR / entry["file"]
    if not path.exists():
        raise WeightsError(f"shipped checkpoint {path} is missing; rebuild it with: {entry['reproduce']}")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise WeightsError(
            f"shipped checkpoint {path} is corrupt: SHA-256 {digest[:16]}... != manifest {entry['sha256'][:16]}...; "
            f"rebuild it with: {entry['reproduce']}"
        )
    return path


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model", "teacher", "student"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    out = {}
    for k, v in obj.items():
        changed = True
        while changed:
            changed = False
            for p in STRIP_PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p):], True
        if not k.startswith(DROP_PREFIXES):
            out[k] = v
    return out


def load_weights(backbone: Backbone, source: str | Path, *, kind: str = "auto") -> Backbone:
    """Load ``source`` ('shipped', a shipped name, or a file path) into ``backbone.body`` in place."""
    if kind not in ("auto", "torchvision", "dino", "swav", "cl_lab"):
        raise ValueError(f"weights kind must be one of auto/torchvision/dino/swav/cl_lab; got {kind!r}")
    name = shipped_for(source, backbone.arch)
    if name is not None:
        path = shipped_path(name)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            how = HOW_TO_GET.get(kind if kind != "auto" else "torchvision")
            raise WeightsError(f"weights file {str(path)!r} does not exist. To obtain ImageNet/DINO/SwAV weights: {how}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"weights file {str(path)!r} is not a readable torch checkpoint ({type(e).__name__}: {e})") from e
    state = _unwrap(obj, path)
    target = backbone.body.state_dict()
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    if missing or unexpected:
        raise WeightsError(
            f"{path.name} does not fit backbone {backbone.arch!r}: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    bad = [k for k in target if tuple(target[k].shape) != tuple(state[k].shape)]
    if bad:
        k = bad[0]
        raise WeightsError(f"{path.name}: {k} has shape {tuple(state[k].shape)}, backbone needs {tuple(target[k].shape)}")
    backbone.body.load_state_dict(state, strict=True)
    return backbone
