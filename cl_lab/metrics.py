"""Pure functions over the accuracy matrix R and cost records (no torch modules here).

``R[i, j]`` is the test accuracy on task j after training task i; entries with j > i
are NaN (a task's head does not exist before the task is trained).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _check(R: np.ndarray) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] > R.shape[1]:
        raise ValueError(f"R must be a (tasks trained) x (tasks) matrix with rows <= columns; got shape {R.shape}")
    return R


def average_accuracy(R: np.ndarray) -> np.ndarray:
    """A_i = mean_{j<=i} R[i, j]: average accuracy over the tasks seen after each task."""
    R = _check(R)
    return np.array([np.mean(R[i, : i + 1]) for i in range(R.shape[0])])


def first_task_accuracy(R: np.ndarray) -> np.ndarray:
    """R[i, 0] for every i: how task 1 fares as later tasks are learnt."""
    return _check(R)[:, 0].copy()


def bwt(R: np.ndarray, after: int | None = None) -> float:
    """Backward transfer (Lopez-Paz & Ranzato 2017): mean_{j<i} (R[i, j] - R[j, j]) at row i=after."""
    R = _check(R)
    i = R.shape[0] - 1 if after is None else after
    if i == 0:
        return 0.0
    return float(np.mean([R[i, j] - R[j, j] for j in range(i)]))


def forgetting(R: np.ndarray, after: int | None = None) -> float:
    """Average forgetting (Chaudhry et al. 2018): mean_{j<i} max_{l in [j, i)} R[l, j] - R[i, j]."""
    R = _check(R)
    i = R.shape[0] - 1 if after is None else after
    if i == 0:
        return 0.0
    return float(np.mean([np.max(R[j:i, j]) - R[i, j] for j in range(i)]))


def fwt(R: np.ndarray, reference: Sequence[float]) -> float:
    """Forward transfer against a reference: mean_{i>=1} (R[i, i] - ref[i]).

    With a head per task, R[i-1, i] (GEM's definition) does not exist, so we use the
    diagonal form of Diaz-Rodriguez et al. (2018): accuracy on task i right after training
    it, minus a reference accuracy for task i (e.g. a model trained on task i alone).
    """
    R = _check(R)
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (R.shape[1],):
        raise ValueError(f"reference needs one accuracy per task ({R.shape[1]}); got shape {ref.shape}")
    if R.shape[0] < 2:
        return 0.0
    return float(np.mean([R[i, i] - ref[i] for i in range(1, R.shape[0])]))


def per_task_table(R: np.ndarray) -> list[dict[str, float]]:
    """One row per trained task: average accuracy, BWT, forgetting, first-task accuracy."""
    R = _check(R)
    return [
        {
            "after_task": i,
            "avg_accuracy": float(np.mean(R[i, : i + 1])),
            "bwt": bwt(R, i),
            "forgetting": forgetting(R, i),
            "first_task_accuracy": float(R[i, 0]),
            "current_task_accuracy": float(R[i, i]),
        }
        for i in range(R.shape[0])
    ]


def chance_level(tasks) -> float:
    """Mean accuracy of guessing uniformly over each task's classes (``tasks``: anything with ``num_classes``)."""
    tasks = list(tasks)
    return sum(1 / t.num_classes for t in tasks) / len(tasks)


def percent_of_backbone(params: int | Sequence[int], backbone_params: int) -> np.ndarray:
    """Parameter counts as a percentage of the backbone's parameter count."""
    if backbone_params <= 0:
        raise ValueError(f"backbone_params must be positive; got {backbone_params}")
    return 100.0 * np.asarray(params, dtype=float) / backbone_params


def relative_cost(values: Sequence[float], baseline: float) -> np.ndarray:
    """Costs normalised to a baseline (e.g. SGD = 1), as in the CLR paper's compute table."""
    if baseline <= 0:
        raise ValueError(f"baseline must be positive; got {baseline}")
    return np.asarray(values, dtype=float) / baseline


def pareto_front(source: Sequence[float], target: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Points of a (source acc, target acc) sweep that no other point beats on both; sorted by target."""
    s, t = np.asarray(source, dtype=float), np.asarray(target, dtype=float)
    if s.shape != t.shape or s.ndim != 1 or len(s) == 0:
        raise ValueError(f"source and target must be equal-length 1-D sequences; got {s.shape} and {t.shape}")
    keep = [i for i in range(len(s))
            if not np.any((s >= s[i]) & (t >= t[i]) & ((s > s[i]) | (t > t[i])))]
    order = sorted(set(keep), key=lambda i: (t[i], -s[i]))
    return s[order], t[order]


def max_average_accuracy(source: Sequence[float], target: Sequence[float]) -> float:
    """ResCL's 'maximum achievable average accuracy': max over the sweep of (source + target) / 2."""
    s, t = np.asarray(source, dtype=float), np.asarray(target, dtype=float)
    return float(np.max((s + t) / 2))


def source_at_target(source: Sequence[float], target: Sequence[float], desired: float) -> float:
    """ResCL's 'source accuracy at a desired target accuracy', read off the sweep's Pareto front.

    The front is linearly interpolated in target accuracy; below its lowest target
    accuracy the front's best source accuracy holds; above its highest the desired target
    accuracy is not achievable and the result is NaN.
    """
    fs, ft = pareto_front(source, target)
    if desired > ft[-1]:
        return float("nan")
    if desired <= ft[0]:
        return float(fs[0])
    return float(np.interp(desired, ft, fs))


def jaccard(a, b) -> float:
    """|A & B| / |A | B| of two sets (1 for two empty sets)."""
    a, b = set(a), set(b)
    union = a | b
    return 1.0 if not union else len(a & b) / len(union)


def jaccard_matrix(sets: dict):
    """Name x name DataFrame of the Jaccard similarity of every pair of sets (MPNAS path similarity)."""
    import pandas as pd

    names = list(sets)
    return pd.DataFrame([[jaccard(sets[a], sets[b]) for b in names] for a in names], index=names, columns=names)
