"""The three scenarios of incremental learning, and streams built for them.

van de Ven, Tuytelaars and Tolias (Nature Machine Intelligence 2022, "Three types of
incremental learning") tell the scenarios apart by what the model must infer at test time:

- ``task``: the task id is given at test; each task has its own head (cl_lab's default).
- ``domain``: every task has the same label space and one head answers for all of them;
  no task id at test (which rotation or permutation an image comes from is not told).
- ``class``: one head over every class seen so far (task t's labels are shifted past the
  earlier tasks' classes); no task id at test: a prediction ranges over every class seen.

``for_scenario(stream, scenario)`` is what the runner trains on: the stream itself, checked
(domain) or with global class labels (class: the splits' ``labels()`` add the task's offset).

Streams for the scenarios, built from any labelled data:

- ``split_by_classes(...)``: a class-incremental stream (``k`` classes per task, a seeded or
  the natural class order) from a ``Task``, tensors or a torchvision-style dataset;
- ``permuted(...)``, ``rotated(...)``: domain-incremental streams (one fixed pixel permutation,
  or one rotation angle, per task) from a ``Task``.

The registered ones run offline in seconds: ``split-digits`` (scikit-learn's 1,797 real
digits, 5 tasks of 2 classes), ``permuted-digits`` and ``rotated-digits`` (5 tasks of the 10
digits), and ``split-glyphs`` (synth-10's 20 real glyph classes, 5 tasks of 4).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from .task import Split, Task, TaskStream

SCENARIOS = ("task", "domain", "class")
"""The scenarios a run can be trained and tested in (``RunConfig.scenario``)."""


@dataclasses.dataclass(frozen=True)
class OffsetSplit(Split):
    """A split whose ``labels()`` are shifted by ``offset``: the global class indices of the
    class-incremental scenario (``y`` keeps the task's own labels, which ``Task`` checks)."""

    offset: int = 0

    def labels(self) -> Tensor:
        return self.y.long() + self.offset


def class_offsets(num_classes: Sequence[int]) -> list[int]:
    """Where each task's classes start in the class-incremental label space."""
    return [int(v) for v in np.concatenate([[0], np.cumsum(num_classes)[:-1]])] if len(num_classes) else []


def scenario_problem(stream: TaskStream, scenario: str) -> str | None:
    """Why ``stream`` cannot be trained in ``scenario`` (a one-line reason), or None."""
    if scenario not in SCENARIOS:
        return f"scenario={scenario!r} is not allowed; use one of {list(SCENARIOS)}"
    if scenario == "domain":
        counts = {t.name: t.num_classes for t in stream}
        if len(set(counts.values())) > 1:
            return (f"scenario='domain' needs one label space shared by every task, but the tasks of "
                    f"{stream.name!r} have different class counts {counts}; use scenario='task' or 'class'")
    return None


def for_scenario(stream: TaskStream, scenario: str) -> TaskStream:
    """The stream a run in ``scenario`` trains on: unchanged for ``task`` and ``domain`` (checked:
    equal class counts), with global class labels for ``class``."""
    problem = scenario_problem(stream, scenario)
    if problem:
        raise ValueError(problem)
    if scenario != "class":
        return stream
    tasks = []
    for task, offset in zip(stream, class_offsets([t.num_classes for t in stream])):
        splits = {s: None if getattr(task, s) is None else OffsetSplit(getattr(task, s).x, getattr(task, s).y, offset)
                  for s in ("train", "val", "test")}
        tasks.append(dataclasses.replace(task, **splits))
    return TaskStream(stream.name, tasks, stream.meta)


# ----------------------------------------------------------------------------- building streams

def _as_task(source: Any, name: str, class_names: Sequence[str] | None, val_fraction: float, seed: int) -> Task:
    if isinstance(source, Task):
        return source
    if isinstance(source, (tuple, list)) and len(source) == 4:
        x_train, y_train, x_test, y_test = source
        return Task.from_tensors(name, x_train, y_train, x_test, y_test, class_names=class_names,
                                 val_fraction=val_fraction, seed=seed)
    if isinstance(source, (tuple, list)) and len(source) == 2 and not isinstance(source[0], Tensor):
        return Task.from_datasets(name, source[0], source[1], class_names=class_names, val_fraction=val_fraction,
                                  seed=seed)
    raise TypeError(f"split_by_classes: source must be a Task, (x_train, y_train, x_test, y_test) or (train_dataset, "
                    f"test_dataset); got {type(source).__name__}")


def _keep(s: Split | None, lookup: Tensor) -> Split | None:
    """The images of ``s`` whose class ``lookup`` maps to a task label (>= 0), relabelled."""
    if s is None:
        return None
    keep = lookup[s.y.long()] >= 0
    return Split(s.x[keep], lookup[s.y.long()[keep]])


def split_task_name(stream: str, class_names: Sequence[str], i: int) -> str:
    """``split-digits-0-1``: the stream and the task's class names (``split-glyphs-3`` when they are long)."""
    label = "-".join(class_names)
    return f"{stream}-{label}" if len(label) <= 24 else f"{stream}-{i + 1}"


def split_by_classes(source: Any, classes_per_task: int, *, name: str = "split", class_order: str | Sequence[int] = "natural",
                     seed: int = 0, class_names: Sequence[str] | None = None, val_fraction: float = 0.1) -> TaskStream:
    """A class-incremental stream: the classes of ``source`` in ``class_order`` (``"natural"``,
    ``"seeded"``: a permutation drawn from ``seed``, or an explicit list), ``classes_per_task`` per
    task (every class used once; a remainder is an error). Task ``i`` keeps its own labels 0..k-1
    (the class scenario shifts them, ``for_scenario``) and records its original classes in
    ``meta["classes"]``.

    ``source`` is a ``Task``, ``(x_train, y_train, x_test, y_test)`` tensors or arrays, or
    ``(train_dataset, test_dataset)`` of a torchvision-style dataset (then ``val_fraction`` of the
    training images become the validation split)."""
    task = _as_task(source, name, class_names, val_fraction, seed)
    n = task.num_classes
    if isinstance(classes_per_task, bool) or not isinstance(classes_per_task, int) or not 2 <= classes_per_task <= n:
        raise ValueError(f"split_by_classes: classes_per_task={classes_per_task!r} is not allowed; use an integer from "
                         f"2 to {n} (the source has {n} classes)")
    if n % classes_per_task:
        raise ValueError(f"split_by_classes: {n} classes do not split into tasks of {classes_per_task}; use a divisor "
                         f"of {n}")
    if isinstance(class_order, str):
        if class_order not in ("natural", "seeded"):
            raise ValueError(f"split_by_classes: class_order={class_order!r} is not allowed; use 'natural', 'seeded' "
                             "or a list of every class index once")
        order = list(range(n)) if class_order == "natural" else \
            [int(c) for c in np.random.default_rng(seed).permutation(n)]
    else:
        order = [int(c) for c in class_order]
        if sorted(order) != list(range(n)):
            raise ValueError(f"split_by_classes: class_order must list every class index 0..{n - 1} once; got {order}")
    tasks = []
    for i in range(n // classes_per_task):
        classes = order[i * classes_per_task: (i + 1) * classes_per_task]
        lookup = torch.full((n,), -1, dtype=torch.long)
        lookup[torch.tensor(classes)] = torch.arange(len(classes))
        names = [task.class_names[c] for c in classes]
        tasks.append(Task(split_task_name(name, names, i), tuple(names), train=_keep(task.train, lookup),
                          test=_keep(task.test, lookup), val=_keep(task.val, lookup), objective=task.objective,
                          meta={**task.meta, "classes": classes}))
    return TaskStream(name, tasks, {"scenario": "class", "classes_per_task": classes_per_task, "class_order": order,
                                    "seed": seed})


def _map_images(task: Task, fn, name: str, meta: dict[str, Any]) -> Task:
    splits = {s: None if getattr(task, s) is None else Split(fn(getattr(task, s).x), getattr(task, s).y)
              for s in ("train", "val", "test")}
    return Task(name, task.class_names, objective=task.objective, meta={**task.meta, **meta}, **splits)


def permuted(source: Task, n_tasks: int = 5, *, seed: int = 0, name: str = "permuted",
             first_unpermuted: bool = True) -> TaskStream:
    """A domain-incremental stream: task ``i`` is ``source`` with one fixed random permutation of
    its pixel positions (the same for every channel), drawn from ``seed``; the first task keeps
    the original images when ``first_unpermuted`` (as in van de Ven et al.'s permuted MNIST)."""
    if isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or not 1 <= n_tasks <= 1000:
        raise ValueError(f"permuted: n_tasks={n_tasks!r} is not allowed; use an integer from 1 to 1000")
    _, _, h, w = source.train.x.shape
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n_tasks):
        perm = torch.arange(h * w) if (i == 0 and first_unpermuted) else torch.from_numpy(rng.permutation(h * w))

        def shuffle(x: Tensor, perm=perm) -> Tensor:
            return x.flatten(2)[:, :, perm].reshape(x.shape).contiguous()

        tasks.append(_map_images(source, shuffle, f"{name}-{i + 1}", {"permutation": i}))
    return TaskStream(name, tasks, {"scenario": "domain", "seed": seed})


def rotated(source: Task, angles: Sequence[float] = (0, 45, 90, 135, 180), *, name: str = "rotated") -> TaskStream:
    """A domain-incremental stream: task ``i`` is ``source`` rotated by ``angles[i]`` degrees
    (counter-clockwise, about the centre, corners filled with 0)."""
    from torchvision.transforms.functional import InterpolationMode, rotate

    angles = list(angles)
    if not angles or len(set(angles)) != len(angles):
        raise ValueError(f"rotated: angles must be distinct and at least one; got {angles}")
    tasks = []
    for a in angles:
        def turn(x: Tensor, a=a) -> Tensor:
            return rotate(x, float(a), interpolation=InterpolationMode.BILINEAR, fill=0)

        tasks.append(_map_images(source, turn, f"{name}-{a:g}", {"angle": float(a)}))
    return TaskStream(name, tasks, {"scenario": "domain", "angles": [float(a) for a in angles]})


def plain_digits_task(seed: int = 0, fractions: tuple[float, float] = (0.6, 0.1)) -> Task:
    """scikit-learn's 1,797 real 8x8 digits as MNIST-like images: white on black, upscaled to
    28x28 and centred on 32x32 (room to rotate), 3 identical channels; stratified splits drawn
    from ``seed`` (train 60%, validation 10%, test the rest)."""
    import torch.nn.functional as F

    from .packaged import DIGIT_CLASSES, load_digits_raw

    images, labels = load_digits_raw()
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)).reshape(-1, 1, 8, 8)
    x = x / max(float(x.max()), 1e-9)
    x = F.pad(F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False), (2, 2, 2, 2))
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    rng = np.random.default_rng([seed, 1797])
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a, b = int(len(idx) * fractions[0]), int(len(idx) * (fractions[0] + fractions[1]))
        parts["train"] += idx[:a].tolist()
        parts["val"] += idx[a:b].tolist()
        parts["test"] += idx[b:].tolist()
    splits = {s: Split(x[torch.tensor(sorted(i))], y[torch.tensor(sorted(i))]) for s, i in parts.items()}
    return Task("digits", DIGIT_CLASSES, objective="object recognition", meta={"source": "scikit-learn"}, **splits)
