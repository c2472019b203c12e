"""Task and TaskStream: the one data type every method, stream and loader speaks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

OBJECTIVES = (
    "object recognition",
    "style classification",
    "scene classification",
    "counting",
    "medical diagnosis",
    "custom",
)


@dataclass(frozen=True)
class Split:
    """Images ``x`` (N, C, H, W; uint8 in 0..255 or float in 0..1) and integer labels ``y`` (N,)."""

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.x, Tensor) or not isinstance(self.y, Tensor):
            raise TypeError(
                f"Split needs torch tensors, got x={type(self.x).__name__}, y={type(self.y).__name__}"
            )
        if self.x.ndim != 4:
            raise ValueError(f"Split.x must be 4-D (N, C, H, W); got shape {tuple(self.x.shape)}")
        if self.y.ndim != 1 or self.y.shape[0] != self.x.shape[0]:
            raise ValueError(
                f"Split.y must be 1-D with one label per image; got y shape {tuple(self.y.shape)} "
                f"for {self.x.shape[0]} images"
            )
        if self.x.dtype not in (torch.uint8, torch.float32, torch.float16, torch.float64):
            raise TypeError(f"Split.x must be uint8 or float; got {self.x.dtype}")
        if self.y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError(f"Split.y must hold integer labels; got {self.y.dtype}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def float_images(self) -> Tensor:
        """Images as float32 in [0, 1]."""
        if self.x.dtype == torch.uint8:
            return self.x.float().div_(255.0)
        return self.x.float()

    def labels(self) -> Tensor:
        return self.y.long()


@dataclass
class Task:
    """One classification task: its own label space, with train/val/test splits."""

    name: str
    class_names: tuple[str, ...]
    train: Split
    test: Split
    val: Split | None = None
    objective: str = "custom"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Task.name must be a non-empty string; got {self.name!r}")
        self.class_names = tuple(str(c) for c in self.class_names)
        if len(self.class_names) < 2:
            raise ValueError(
                f"Task {self.name!r} needs at least 2 classes; got {len(self.class_names)}"
            )
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"Task {self.name!r}: objective {self.objective!r} is not one of {OBJECTIVES}"
            )
        shapes = set()
        for split_name in ("train", "val", "test"):
            split = getattr(self, split_name)
            if split is None:
                continue
            if not isinstance(split, Split):
                raise TypeError(f"Task {self.name!r}: {split_name} must be a Split")
            if len(split) == 0:
                raise ValueError(f"Task {self.name!r}: the {split_name} split is empty")
            if split.x.is_floating_point() and not bool(torch.isfinite(split.x).all()):
                bad = int((~torch.isfinite(split.x)).flatten(1).any(1).sum())
                raise ValueError(f"Task {self.name!r}: {bad} {split_name} image(s) hold NaN or infinite pixel "
                                 "values; allowed: finite values in [0, 1] (float) or 0..255 (uint8)")
            lo, hi = int(split.y.min()), int(split.y.max())
            if lo < 0 or hi >= self.num_classes:
                raise ValueError(
                    f"Task {self.name!r}: {split_name} labels span {lo}..{hi}, "
                    f"but there are {self.num_classes} classes (allowed 0..{self.num_classes - 1})"
                )
            shapes.add(tuple(split.x.shape[1:]))
        if len(shapes) > 1:
            raise ValueError(f"Task {self.name!r}: splits have different image shapes {shapes}")
        if len(self.train) < 2:
            raise ValueError(f"Task {self.name!r}: the train split has {len(self.train)} image; at least 2 are "
                             "needed (a batch-norm step needs two)")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]

    def split(self, which: str) -> Split:
        if which not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test'; got {which!r}")
        s = getattr(self, which)
        if s is None:
            raise ValueError(f"Task {self.name!r} has no {which} split")
        return s

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "objective": self.objective,
            "classes": self.num_classes,
            "train": len(self.train),
            "val": len(self.val) if self.val is not None else 0,
            "test": len(self.test),
            "image_shape": list(self.image_shape),
        }

    def update_hash(self, h: hashlib._Hash) -> None:
        h.update(self.name.encode())
        h.update(self.objective.encode())
        h.update("\x1f".join(self.class_names).encode())
        for split in (self.train, self.val, self.test):
            if split is None:
                h.update(b"<none>")
                continue
            h.update(str(split.x.dtype).encode() + str(tuple(split.x.shape)).encode())
            h.update(split.x.contiguous().numpy().tobytes())
            h.update(split.y.long().contiguous().numpy().tobytes())

    @classmethod
    def from_tensors(
        cls,
        name: str,
        x_train: Tensor | np.ndarray,
        y_train: Tensor | np.ndarray | Sequence[int],
        x_test: Tensor | np.ndarray,
        y_test: Tensor | np.ndarray | Sequence[int],
        *,
        class_names: Sequence[str] | None = None,
        x_val: Tensor | np.ndarray | None = None,
        y_val: Tensor | np.ndarray | Sequence[int] | None = None,
        val_fraction: float = 0.0,
        objective: str = "custom",
        seed: int = 0,
    ) -> Task:
        """Build a task from your own arrays (N, C, H, W; or N, H, W, C when C is 1 or 3)."""
        xtr, ytr = _as_images(x_train, f"Task {name!r}: x_train"), _as_labels(y_train, f"Task {name!r}: y_train")
        xte, yte = _as_images(x_test, f"Task {name!r}: x_test"), _as_labels(y_test, f"Task {name!r}: y_test")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1); got {val_fraction}")
        for split, y in (("train", ytr), ("test", yte)):
            if len(y) == 0:
                raise ValueError(f"Task {name!r}: the {split} split is empty; give it at least one image")
        val = None
        if x_val is not None or y_val is not None:
            if x_val is None or y_val is None:
                raise ValueError("give both x_val and y_val, or neither")
            val = Split(_as_images(x_val, f"Task {name!r}: x_val"), _as_labels(y_val, f"Task {name!r}: y_val"))
        elif val_fraction > 0:
            g = torch.Generator().manual_seed(seed)
            perm = torch.randperm(len(ytr), generator=g)
            n_val = max(1, int(round(val_fraction * len(ytr))))
            vi, ti = perm[:n_val], perm[n_val:]
            val = Split(xtr[vi], ytr[vi])
            xtr, ytr = xtr[ti], ytr[ti]
        if class_names is None:
            n = int(max(int(ytr.max()), int(yte.max()))) + 1
            class_names = [str(i) for i in range(n)]
        return cls(
            name=name,
            class_names=tuple(class_names),
            train=Split(xtr, ytr),
            val=val,
            test=Split(xte, yte),
            objective=objective,
        )

    @classmethod
    def from_datasets(
        cls,
        name: str,
        train: Iterable,
        test: Iterable,
        *,
        class_names: Sequence[str] | None = None,
        image_size: int | None = 32,
        val_fraction: float = 0.1,
        objective: str = "custom",
        seed: int = 0,
        max_per_split: int | None = None,
    ) -> Task:
        """Build a task from any torchvision-style dataset yielding ``(image, label)`` pairs."""
        xtr, ytr = _materialize(train, image_size, max_per_split, "train")
        xte, yte = _materialize(test, image_size, max_per_split, "test")
        if class_names is None:
            class_names = getattr(train, "classes", None)
        return cls.from_tensors(
            name,
            xtr,
            ytr,
            xte,
            yte,
            class_names=class_names,
            val_fraction=val_fraction,
            objective=objective,
            seed=seed,
        )


def _as_images(x: Any, what: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor or numpy array; got {type(x).__name__}")
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(f"{what} must have shape (N, C, H, W); got {tuple(x.shape)}")
    if x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(0, 3, 1, 2)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.dtype != torch.uint8:
        x = x.float()
        if x.numel() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{what}: {int((~torch.isfinite(x)).flatten(1).any(1).sum())} image(s) hold NaN or "
                             "infinite pixel values; allowed: finite values in [0, 1] (float) or 0..255 (uint8)")
        if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
            raise ValueError(
                f"{what}: float images must lie in [0, 1] (got {float(x.min()):.3g}..{float(x.max()):.3g}); "
                "pass uint8 0..255 or scale them"
            )
    return x.contiguous()


def _as_labels(y: Any, what: str) -> Tensor:
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(y)
    elif not isinstance(y, Tensor):
        y = torch.as_tensor(list(y))
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"{what} must hold integer class labels; got {y.dtype}")
    return y.long().reshape(-1)


def _materialize(ds: Iterable, image_size: int | None, limit: int | None, what: str) -> tuple[Tensor, Tensor]:
    import torch.nn.functional as F
    from torchvision.transforms.functional import pil_to_tensor

    xs, ys = [], []
    for i, item in enumerate(ds):
        if limit is not None and i >= limit:
            break
        img, label = item[0], item[1]
        if not isinstance(img, Tensor):
            img = pil_to_tensor(img.convert("RGB"))
        if img.ndim == 2:
            img = img.unsqueeze(0)
        if img.shape[0] == 1:
            img = img.expand(3, -1, -1)
        img = img.float() / 255.0 if img.dtype == torch.uint8 else img.float()
        if image_size is not None and tuple(img.shape[-2:]) != (image_size, image_size):
            img = F.interpolate(img[None], size=(image_size, image_size), mode="bilinear",
                                antialias=True, align_corners=False)[0]
        xs.append((img.clamp(0, 1) * 255).round().to(torch.uint8))
        ys.append(int(label))
    if not xs:
        raise ValueError(f"the {what} dataset yielded no examples")
    return torch.stack(xs), torch.tensor(ys)


def task_choice_problem(names: Sequence[str], known: Sequence[str] | None) -> str | None:
    """What is wrong with choosing tasks ``names`` among ``known`` (unknown ones, none, repeats), or
    None; ``known=None`` (a stream not generated yet) checks only emptiness and repeats."""
    bad = [n for n in names if known is not None and n not in known]
    if bad:
        return f"unknown task(s) {bad}"
    if not names:
        return "no tasks named"
    return f"repeated tasks in {list(names)}" if len(set(names)) != len(names) else None


class TaskStream:
    """An ordered sequence of tasks with metadata and a stable content hash."""

    def __init__(self, name: str, tasks: Sequence[Task], meta: dict[str, Any] | None = None):
        if not isinstance(name, str) or not name:
            raise ValueError(f"TaskStream name must be a non-empty string; got {name!r}")
        tasks = list(tasks)
        if not tasks:
            raise ValueError(f"TaskStream {name!r} is empty: give at least one Task")
        for i, t in enumerate(tasks):
            if not isinstance(t, Task):
                raise TypeError(f"TaskStream {name!r}: item {i} is a {type(t).__name__}, not a Task")
        names = [t.name for t in tasks]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"TaskStream {name!r}: task names must be unique; repeated: {sorted(dup)}")
        channels = {t.image_shape[0] for t in tasks}
        if len(channels) > 1:
            raise ValueError(f"TaskStream {name!r}: tasks have different channel counts {channels}")
        self.name = name
        self.tasks = tasks
        self.meta = dict(meta or {})
        self._hash: str | None = None

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, i: int) -> Task:
        return self.tasks[i]

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __repr__(self) -> str:
        return f"TaskStream({self.name!r}, {len(self)} tasks, hash={self.content_hash()[:12]})"

    def content_hash(self) -> str:
        """SHA-256 over every task's name, classes and tensors: equal streams, equal hash."""
        if self._hash is None:
            h = hashlib.sha256()
            h.update(self.name.encode())
            for t in self.tasks:
                t.update_hash(h)
            self._hash = h.hexdigest()
        return self._hash

    def subset(self, n_tasks: int) -> TaskStream:
        """The first ``n_tasks`` tasks as a new stream."""
        if not 1 <= n_tasks <= len(self):
            raise ValueError(f"n_tasks must be in 1..{len(self)}; got {n_tasks}")
        return TaskStream(f"{self.name}[:{n_tasks}]", self.tasks[:n_tasks], self.meta)

    def select(self, names: Sequence[str]) -> TaskStream:
        """The named tasks, in the order given, as a new stream named ``<stream>[a,b,...]``."""
        names = list(names)
        known = [t.name for t in self.tasks]
        problem = task_choice_problem(names, known)
        if problem:
            raise ValueError(f"select: {problem}; allowed: distinct names among {known}")
        by_name = {t.name: t for t in self.tasks}
        return TaskStream(f"{self.name}[{','.join(names)}]", [by_name[n] for n in names], self.meta)

    def describe(self):
        import pandas as pd

        return pd.DataFrame([t.describe() for t in self.tasks])
