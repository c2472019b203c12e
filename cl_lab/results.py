"""The on-disk results format: one directory per run, tidy CSVs, atomic writes.

A run directory holds ``config.json`` (the fully resolved config), ``accuracy.csv`` (the
accuracy matrix in long form), ``metrics.csv`` (per-task summary metrics), ``costs.csv``
(parameter, compute and time cost per task), ``summary.json`` (status and final metrics)
and ``checkpoint.pt`` (resume point). ``load(root)`` reads every run under ``root``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

FILES = ("config.json", "accuracy.csv", "metrics.csv", "costs.csv", "summary.json")


def read_config(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "config.json").read_text())


def accuracy_matrix(run_dir: str | Path) -> np.ndarray:
    """The accuracy matrix R of one run (NaN above the diagonal)."""
    import pandas as pd

    df = pd.read_csv(Path(run_dir) / "accuracy.csv")
    n_rows = int(df.after_task.max()) + 1
    n_tasks = len(read_config(run_dir)["stream"]["tasks"])
    R = np.full((n_rows, n_tasks), np.nan)
    R[df.after_task.to_numpy(), df.task.to_numpy()] = df.accuracy.to_numpy()
    return R


def run_dirs(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"results root {str(root)!r} does not exist")
    if (root / "config.json").exists():
        return [root]
    return sorted(p.parent for p in root.rglob("config.json") if (p.parent / "accuracy.csv").exists())


def _load(root: str | Path, filename: str):
    import pandas as pd

    frames = []
    for d in run_dirs(root):
        if not (d / filename).exists():
            continue
        cfg = read_config(d)
        df = pd.read_csv(d / filename)
        summary = json.loads((d / "summary.json").read_text()) if (d / "summary.json").exists() else {}
        df.insert(0, "run", d.name)
        df.insert(1, "method", cfg["method"])
        df.insert(2, "stream", cfg["stream"]["name"])
        df.insert(3, "seed", cfg["seed"])
        df.insert(4, "backbone", cfg["backbone"])
        df.insert(5, "status", summary.get("status", "unknown"))
        frames.append(df)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def load(root: str | Path):
    """One tidy DataFrame of accuracy rows across every run under ``root``."""
    return _load(root, "accuracy.csv")


def load_metrics(root: str | Path):
    """Per-task summary metrics (avg accuracy, BWT, forgetting, ...) across runs."""
    return _load(root, "metrics.csv")


def load_costs(root: str | Path):
    """Per-task cost records (parameters, MACs, wall time) across runs."""
    return _load(root, "costs.csv")


def load_mdl(run_dir: str | Path) -> dict[str, Any]:
    """Read an MDL run directory back: config, results, summary, paths, blocks, Jaccard matrix."""
    import pandas as pd

    p = Path(run_dir)
    if not (p / "summary.json").exists():
        raise FileNotFoundError(f"{p} holds no finished MDL run (summary.json missing)")
    return {
        "config": json.loads((p / "config.json").read_text()),
        "results": pd.read_csv(p / "results.csv"),
        "summary": pd.read_csv(p / "summary.csv"),
        "paths": json.loads((p / "paths.json").read_text()),
        "blocks": pd.read_csv(p / "blocks.csv"),
        "jaccard": pd.read_csv(p / "jaccard.csv", index_col=0),
    }

