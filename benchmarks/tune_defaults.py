"""Choose hyperparameter defaults on validation data, never on test.

Each candidate trains on the first five synth-10 tasks (4 epochs, seed 0, one thread) with
``eval_split="val"``: the accuracy matrix is measured on each task's validation split,
which is generated separately from its training and test splits. The candidate with the
best final average validation accuracy among those that did not diverge is the default;
the defaults in ``cl_lab/methods`` were set from this script's output (their docstrings
say so; ``benchmarks/results/tuning.jsonl`` holds every candidate's score from the run that
set them). The last line printed is JSON: the chosen value per method.

    python benchmarks/tune_defaults.py [--workers 2] [--methods ewc si]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GRIDS: dict[str, list[dict]] = {
    "confit": [{"lr": lr} for lr in (0.01, 0.03, 0.1)],
    "sgd": [{"lr": lr} for lr in (0.01, 0.003)],
    "ewc": [{"ewc_lambda": lam, "lr": lr} for lr in (0.01, 0.003, 0.001) for lam in (3.0, 10.0, 30.0, 100.0, 1000.0)],
    "online-ewc": [{"ewc_lambda": lam, "lr": lr} for lr in (0.003, 0.001) for lam in (10.0, 100.0, 1000.0)],
    "si": [{"c": c} for c in (0.1, 1.0, 10.0, 100.0)],
    "lwf": [{"alpha": a, "warmup_epochs": 2} for a in (0.3, 1.0, 3.0, 10.0)] + [{"alpha": 1.0, "warmup_epochs": 0}],
    "rescl": [{"rescl_lambda": lam} for lam in (0.25, 0.5, 1.0, 2.0, 4.0)],
}


def _work(method: str, kw: dict, out: str) -> dict:
    import torch

    torch.set_num_threads(1)
    import cl_lab

    name = method + "_" + "_".join(f"{k}{v:g}" for k, v in kw.items())
    t0 = time.perf_counter()
    try:
        r = cl_lab.run(method, "synth-10", n_tasks=5, epochs=4, seed=0, eval_split="val", out=out, run_name=name,
                       progress=False, **kw)
        acc = r.summary()["avg_accuracy"]
    except FloatingPointError as e:
        return {"method": method, **kw, "val_avg_accuracy": float("nan"), "note": f"diverged: {e}"[:80]}
    return {"method": method, **kw, "val_avg_accuracy": acc, "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "runs" / "tuning"))
    args = ap.parse_args(argv)
    import multiprocessing as mp

    import pandas as pd

    rows = []
    with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        futs = [pool.submit(_work, m, kw, args.out) for m in args.methods for kw in GRIDS[m]]
        for f in as_completed(futs):
            rows.append(f.result())
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    chosen = {}
    for m in args.methods:
        g = df[df.method == m].dropna(subset=["val_avg_accuracy"])
        print(df[df.method == m].dropna(axis=1, how="all").to_string(index=False))
        if len(g):
            best = g.loc[g.val_avg_accuracy.idxmax()]
            chosen[m] = {k: best[k] for k in GRIDS[m][0]} | {"val_avg_accuracy": round(float(best.val_avg_accuracy), 4)}
    print(json.dumps(chosen, default=float))


if __name__ == "__main__":
    main()
