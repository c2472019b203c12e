"""MPNAS over seeds: the five setups plus the cost-only control, and ABDP's readings against a uniform sum.

    python benchmarks/mdl_table.py --seeds 0 1 2 [--out runs/mdl-table] [--set key=value ...]

Runs ``run_mdl`` with the default configuration per seed (all six setups), then the ``mpnas``
setup again with each other ABDP reading, and prints per setup mean +/- std over seeds of
mean accuracy, unique parameters, mean MACs per path, the ratios to domain-independent NAS
and how many searches converged; then the ABDP table (uniform vs each reading, with the
difference to uniform per seed). Finished setups are skipped on rerun. The last line is JSON.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import sys
from pathlib import Path

import pandas as pd

from cl_lab.mdl import run_mdl
from cl_lab.mdl.controller import READINGS
from cl_lab.mdl.experiment import SETUPS
from cl_lab.results import load_mdl


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _mpnas_alone(out: str, seed: int, values: dict, threads: int) -> float:
    run = run_mdl(out=out, seed=seed, setups="mpnas", workers=1, threads=threads, progress=False, **values)
    return float(load_mdl(run)["summary"].mean_accuracy.iloc[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/mdl-table")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per setup (recorded; numbers depend on it)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    extra = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    rows, abdp, jaccard = [], [], None
    main_reading = extra.get("abdp_reading", "softmax")
    others = [r for r in READINGS if r != main_reading]
    for seed in args.seeds:
        run = run_mdl(out=args.out, seed=seed, setups=",".join(SETUPS), workers=args.workers, threads=args.threads,
                      progress=False, **extra)
        r = load_mdl(run)
        rows.append(r["summary"].assign(seed=seed, not_converged=len(r["not_converged"])))
        if jaccard is None:
            jaccard = r["jaccard"]
        acc = r["summary"].set_index("setup").mean_accuracy
        abdp.append({"seed": seed, "reading": "uniform", "accuracy": acc["mpnas-uniform"]})
        abdp.append({"seed": seed, "reading": main_reading, "accuracy": acc["mpnas"]})
        print(f"seed {seed}: {run}", file=sys.stderr)
    # the other readings: the mpnas setup alone, every (seed, reading) side by side
    jobs = [(seed, reading) for seed in args.seeds for reading in others]
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max(1, args.workers), mp_context=ctx) as pool:
        futures = {pool.submit(_mpnas_alone, args.out, seed, {**extra, "abdp_reading": reading}, args.threads):
                   (seed, reading) for seed, reading in jobs}
        for fut in cf.as_completed(futures):
            seed, reading = futures[fut]
            abdp.append({"seed": seed, "reading": reading, "accuracy": fut.result()})
    df = pd.concat(rows)
    cols = ["mean_accuracy", "unique_params", "mean_macs", "params_vs_independent", "macs_vs_independent"]
    table = df.groupby("setup", sort=False)[cols].agg(["mean", "std"])
    table["converged_searches"] = df.groupby("setup", sort=False).converged.apply(
        lambda c: f"{int(c.fillna(False).astype(bool).sum())}/{len(c)}" if c.notna().any() else "-")
    pd.set_option("display.width", 200)
    print(table.round(3).to_string())
    ab = pd.DataFrame(abdp)
    wide = ab.pivot(index="seed", columns="reading", values="accuracy")
    print(wide.round(3).to_string())
    summary = {}
    for reading in wide.columns:
        diff = wide[reading] - wide["uniform"]
        summary[reading] = {"mean": round(float(wide[reading].mean()), 4), "std": round(float(wide[reading].std()), 4),
                            "minus_uniform_mean": round(float(diff.mean()), 4),
                            "minus_uniform_std": round(float(diff.std()), 4)}
    print(pd.DataFrame(summary).T.to_string())
    print("Jaccard (first seed):")
    print(jaccard.round(2).to_string())
    Path(args.out).mkdir(parents=True, exist_ok=True)
    out = {"seeds": args.seeds, "setups": {s: {c: [round(float(table.loc[s, (c, "mean")]), 4),
                                                     round(float(table.loc[s, (c, "std")]), 4)] for c in cols}
                                           | {"converged_searches": table.loc[s, "converged_searches"]}
                                           for s in table.index}, "abdp": summary}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
