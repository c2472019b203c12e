"""Shortcut probes: how much of a task simple features already solve.

A benchmark discriminates between methods only where a method must learn something. Three
probes per task, each a multinomial logistic regression fitted on the train split, its inverse
regularisation ``C`` chosen on the validation split, scored once on the test split:

* ``colour``: 21 global colour statistics per image (per-channel mean and standard deviation,
  and a 5-bin histogram per channel). Near chance means colour alone does not give the label away.
* ``random``: global-pooled features of a randomly initialised, frozen backbone (eval mode).
  High means a fixed random network plus a head already solves the task.
* ``backbone``: the same on a given (e.g. the shipped, pretrained) backbone.

``benchmarks/shortcut_probe.py`` prints the three per task; ``tests/test_probes.py`` checks
synth-10's bounds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .data.task import Split, Task

C_GRID = (0.01, 0.1, 1.0, 10.0)
HIST_BINS = 5


def colour_statistics(x: torch.Tensor) -> np.ndarray:
    """(N, 21) features of images (N, 3, H, W) in [0, 1] or uint8: per-channel mean and standard
    deviation, and the fraction of each channel's pixels in 5 equal-width intensity bins."""
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"colour_statistics needs RGB images (N, 3, H, W); got shape {tuple(x.shape)}")
    flat = x.flatten(2)
    bins = (flat.clamp(0, 1 - 1e-6) * HIST_BINS).long()
    hist = torch.nn.functional.one_hot(bins, HIST_BINS).float().mean(2).flatten(1)
    return torch.cat([flat.mean(2), flat.std(2), hist], 1).numpy()


@torch.inference_mode()
def backbone_features(backbone: torch.nn.Module, x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """Global-pooled features of a frozen backbone in eval mode."""
    backbone.eval()
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    return torch.cat([backbone(x[b: b + batch_size]) for b in range(0, len(x), batch_size)]).numpy()


@dataclass(frozen=True)
class ProbeResult:
    val: float
    test: float
    C: float


def fit_probe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> ProbeResult:
    """Logistic regression on standardised features: fitted on ``train``, ``C`` chosen on ``val``
    from ``C_GRID``, the test split scored once with the chosen ``C``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    missing = {"train", "val", "test"} - set(features)
    if missing:
        raise ValueError(f"a probe needs train, val and test splits; missing {sorted(missing)}")
    scaler = StandardScaler().fit(features["train"])
    f = {s: scaler.transform(v) for s, v in features.items()}
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in C_GRID:
            clf = LogisticRegression(C=c, max_iter=2000).fit(f["train"], labels["train"])
            acc = float((clf.predict(f["val"]) == labels["val"]).mean())
            if best is None or acc > best[0]:
                best = (acc, c, clf)
    val, c, clf = best
    return ProbeResult(val, float((clf.predict(f["test"]) == labels["test"]).mean()), c)


def _splits(task: Task) -> dict[str, Split]:
    if task.val is None:
        raise ValueError(f"task {task.name!r} has no validation split; a probe chooses C on it")
    return {s: task.split(s) for s in ("train", "val", "test")}


def colour_probe(task: Task) -> ProbeResult:
    """Test accuracy of a logistic regression on 21 colour statistics."""
    splits = _splits(task)
    return fit_probe({s: colour_statistics(v.x) for s, v in splits.items()},
                     {s: v.labels().numpy() for s, v in splits.items()})


def linear_probe(backbone: torch.nn.Module, task: Task) -> ProbeResult:
    """Test accuracy of a logistic regression on a frozen backbone's pooled features."""
    splits = _splits(task)
    return fit_probe({s: backbone_features(backbone, v.x) for s, v in splits.items()},
                     {s: v.labels().numpy() for s, v in splits.items()})


def random_backbone_probe(task: Task, arch: str = "resnet8", seed: int = 0) -> ProbeResult:
    """``linear_probe`` on a randomly initialised backbone (the architecture's own init, ``seed``)."""
    from .models import build_backbone

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        bb = build_backbone(arch, task.image_shape)
    finally:
        torch.random.set_rng_state(state)
    return linear_probe(bb, task)


def chance(task: Task) -> float:
    """Accuracy of always predicting the test split's most frequent class."""
    y = task.split("test").labels()
    return float(torch.bincount(y).max()) / len(y)
