"""Real task streams from torchvision datasets, read from disk after ``data_scripts/download.py``.

Formats read here: CIFAR-100's python pickles (``cifar-100-python/{train,test,meta}``),
SVHN's MATLAB files (``{train,test}_32x32.mat``) and, for the other Decathlon members, the
prepared image-folder layout that the download script writes
(``decathlon-lite/<dataset>/<split>/<class>/<image>.png``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .._paths import data_dir
from .streams import register_stream
from .task import Task, TaskStream

DECATHLON = ("cifar100", "svhn", "gtsrb", "dtd", "flowers102", "omniglot", "fgvc_aircraft")
OBJECTIVE = {
    "cifar100": "object recognition", "svhn": "object recognition", "gtsrb": "object recognition",
    "dtd": "style classification", "flowers102": "object recognition", "omniglot": "object recognition",
    "fgvc_aircraft": "object recognition",
}


class MissingDataError(FileNotFoundError):
    """A real dataset's files are not on disk; the message names the command that fetches them."""


def _root(root: str | Path | None) -> Path:
    return Path(root).expanduser() if root is not None else data_dir()


def _missing(stream: str, root: Path, what: Path) -> MissingDataError:
    return MissingDataError(
        f"{what} not found. Fetch it with: python data_scripts/download.py --stream {stream} --root {root}"
    )


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8)


def read_cifar100(root: Path, stream: str = "split-cifar100") -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], list[str]]:
    """CIFAR-100 from its python-pickle files: uint8 images (N, 3, 32, 32), fine labels, class names."""
    base = root / "cifar-100-python"
    out = {}
    for split in ("train", "test"):
        path = base / split
        if not path.exists():
            raise _missing(stream, root, path)
        try:
            with open(path, "rb") as fh:
                d = pickle.load(fh, encoding="bytes")
            x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            y = np.asarray(d[b"fine_labels"], dtype=np.int64)
        except Exception as e:
            raise ValueError(f"{path} is not a readable CIFAR-100 pickle ({type(e).__name__}: {e}); "
                             f"re-fetch it with: python data_scripts/download.py --stream {stream} --root {root}") from e
        out[split] = (torch.from_numpy(x.copy()), torch.from_numpy(y))
    meta = base / "meta"
    if not meta.exists():
        raise _missing(stream, root, meta)
    with open(meta, "rb") as fh:
        names = [n.decode() for n in pickle.load(fh, encoding="bytes")[b"fine_label_names"]]
    return out, names


@register_stream("split-cifar100", kind="real", download="python data_scripts/download.py --stream split-cifar100")
def split_cifar100(root: str | Path | None = None, seed: int = 0, n_tasks: int = 10, class_order: str = "natural",
                   val_fraction: float = 0.1) -> TaskStream:
    """Task-incremental Split CIFAR-100: ``n_tasks`` tasks of 100/n_tasks classes each.

    ``class_order='natural'`` uses label order (tasks 0-9, 10-19, ...); ``'shuffled'``
    permutes classes with ``seed`` first.
    """
    if n_tasks < 1 or 100 % n_tasks:
        raise ValueError(f"n_tasks must divide 100 (e.g. 5, 10, 20); got {n_tasks}")
    if class_order not in ("natural", "shuffled"):
        raise ValueError(f"class_order must be 'natural' or 'shuffled'; got {class_order!r}")
    r = _root(root)
    data, names = read_cifar100(r)
    order = np.arange(100) if class_order == "natural" else np.random.default_rng(seed).permutation(100)
    per = 100 // n_tasks
    tasks = []
    for t in range(n_tasks):
        classes = order[t * per: (t + 1) * per]
        remap = {int(c): i for i, c in enumerate(classes)}
        parts = {}
        for split, (x, y) in data.items():
            keep = torch.isin(y, torch.as_tensor(classes))
            parts[split] = (x[keep], torch.tensor([remap[int(v)] for v in y[keep]], dtype=torch.long))
        tasks.append(Task.from_tensors(
            f"cifar100-{t}", *parts["train"], *parts["test"], class_names=[names[c] for c in classes],
            val_fraction=val_fraction, objective="object recognition", seed=seed))
    return TaskStream("split-cifar100", tasks, {"kind": "real", "root": str(r), "class_order": class_order})


def read_svhn(root: Path, stream: str = "decathlon-lite") -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """SVHN cropped digits from ``{train,test}_32x32.mat`` (label 10 means digit 0)."""
    from scipy.io import loadmat

    out = {}
    for split in ("train", "test"):
        path = root / "svhn" / f"{split}_32x32.mat"
        if not path.exists():
            raise _missing(stream, root, path)
        m = loadmat(path)
        x = torch.from_numpy(np.ascontiguousarray(np.transpose(m["X"], (3, 2, 0, 1))).astype(np.uint8))
        y = torch.from_numpy(m["y"].astype(np.int64).reshape(-1) % 10)
        out[split] = (x, y)
    return out


def read_image_folder(base: Path, image_size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``base/<class>/<image>`` -> uint8 images resized to ``image_size``, labels, sorted class names."""
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    xs, ys = [], []
    for ci, c in enumerate(classes):
        for f in sorted((base / c).iterdir()):
            with Image.open(f) as im:
                t = pil_to_tensor(im.convert("RGB"))
            xs.append(_resize(t[None], image_size)[0])
            ys.append(ci)
    if not xs:
        raise ValueError(f"no images under {base}")
    return torch.stack(xs), torch.tensor(ys), classes


@register_stream("decathlon-lite", kind="real", download="python data_scripts/download.py --stream decathlon-lite")
def decathlon_lite(root: str | Path | None = None, seed: int = 0, datasets: Sequence[str] = DECATHLON,
                   image_size: int = 32, max_train_per_class: int | None = 100, val_fraction: float = 0.1) -> TaskStream:
    """A mini Visual Decathlon: one task per dataset, all resized to ``image_size``."""
    unknown = [d for d in datasets if d not in DECATHLON]
    if unknown or not datasets:
        raise ValueError(f"decathlon-lite datasets {unknown or list(datasets)} not allowed; choose from {DECATHLON}")
    r = _root(root)
    tasks = []
    for name in datasets:
        if name == "cifar100":
            data, classes = read_cifar100(r, "decathlon-lite")
        elif name == "svhn":
            data, classes = read_svhn(r), [str(i) for i in range(10)]
        else:
            base = r / "decathlon-lite" / name
            if not (base / "train").exists() or not (base / "test").exists():
                raise _missing("decathlon-lite", r, base)
            xtr, ytr, classes = read_image_folder(base / "train", image_size)
            xte, yte, _ = read_image_folder(base / "test", image_size)
            data = {"train": (xtr, ytr), "test": (xte, yte)}
        xtr, ytr = data["train"]
        if max_train_per_class is not None:
            g = np.random.default_rng(seed)
            keep = np.concatenate([g.permutation(np.nonzero(ytr.numpy() == c)[0])[:max_train_per_class]
                                   for c in range(len(classes))])
            keep = torch.from_numpy(np.sort(keep))
            xtr, ytr = xtr[keep], ytr[keep]
        xte, yte = data["test"]
        tasks.append(Task.from_tensors(name, _resize(xtr, image_size), ytr, _resize(xte, image_size), yte,
                                       class_names=classes, val_fraction=val_fraction, objective=OBJECTIVE[name],
                                       seed=seed))
    return TaskStream("decathlon-lite", tasks, {"kind": "real", "root": str(r), "image_size": image_size})
