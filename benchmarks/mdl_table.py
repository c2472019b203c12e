"""MPNAS over seeds: the five setups plus the cost-only control, and ABDP's readings against a uniform sum.

    python benchmarks/mdl_table.py --seeds 0 1 2 [--out runs/mdl-table] [--set key=value ...]
    python benchmarks/mdl_table.py --seeds 0 1 2 --set domains=10 --readings none   # the 10-domain table

Runs ``run_mdl`` with the default configuration per seed (all six setups), then the ``mpnas``
setup again with each other ABDP reading (``--readings``), and prints per setup mean +/- std over
seeds of mean accuracy, unique parameters, mean MACs per path, the ratios to domain-independent
NAS, the saving ceiling ``1 - 1/D`` and how many searches converged; the reward status per domain
(in how many seeds each searched setup's reward accuracy stayed at chance on it); the wall time
per seed; then the ABDP table (uniform vs each reading, with the difference to uniform per seed).
Finished setups are skipped on rerun. The last line is JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

from cl_lab.mdl import run_mdl
from cl_lab.mdl.controller import READINGS
from cl_lab.mdl.experiment import MDL_SETUPS, SETUPS, MDLConfig
from cl_lab.parallel import run_points
from cl_lab.results import load_mdl


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _mpnas_alone(job: tuple) -> dict:
    """The mpnas setup alone with one ABDP reading (a point of ``run_points``)."""
    out, seed, values, threads = job
    run = run_mdl(out=out, seed=seed, setups="mpnas", workers=1, threads=threads, progress=False, **values)
    return {"seed": seed, "reading": values["abdp_reading"],
            "accuracy": float(load_mdl(run)["summary"].mean_accuracy.iloc[0])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/mdl-table")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per setup (recorded; numbers depend on it)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--readings", nargs="+", default=None, metavar="READING",
                    help=f"ABDP readings run beside the main one (default: every other of {list(READINGS)}; 'none')")
    args = ap.parse_args(argv)
    text = {f.name for f in dataclasses.fields(MDLConfig) if f.type in ("str", str)}  # domains=10 stays '10'
    extra = {k: v if k in text else _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    rows, abdp, jaccard, chance, seconds = [], [], None, [], {}
    main_reading = extra.get("abdp_reading", "softmax")
    others = [r for r in READINGS if r != main_reading] if args.readings is None else \
        [r for r in args.readings if r != "none"]
    bad = [r for r in others if r not in READINGS]
    if bad:
        ap.error(f"--readings {bad} unknown; allowed: {list(READINGS)} or 'none'")
    for seed in args.seeds:
        t0 = time.perf_counter()
        run = run_mdl(out=args.out, seed=seed, setups=",".join(SETUPS), workers=args.workers, threads=args.threads,
                      progress=False, **extra)
        seconds[seed] = round(time.perf_counter() - t0)  # a rerun that skips finished setups measures less
        r = load_mdl(run)
        rows.append(r["summary"].assign(seed=seed, not_converged=len(r["not_converged"])))
        chance += [{"seed": seed, "setup": who.split("/", 1)[0], "at_chance": who.split("/", 1)[1]}
                   for who in r["chance_rewards"]]
        domains = r["config"]["domain_names"]
        if jaccard is None:
            jaccard = r["jaccard"]
        acc = r["summary"].set_index("setup").mean_accuracy
        abdp.append({"seed": seed, "reading": "uniform", "accuracy": acc["mpnas-uniform"]})
        abdp.append({"seed": seed, "reading": main_reading, "accuracy": acc["mpnas"]})
        print(f"seed {seed}: {run} ({seconds[seed]} s)", file=sys.stderr)
    # the other readings: the mpnas setup alone, every (seed, reading) side by side
    jobs = [(args.out, seed, {**extra, "abdp_reading": reading}, args.threads) for seed in args.seeds for reading in others]
    failed = []
    run_points(_mpnas_alone, jobs, workers=max(1, args.workers),
               failed=lambda job, error: failed.append(f"seed {job[1]} {job[2]['abdp_reading']}: {error}"),
               on_result=lambda row: row is not None and abdp.append(row))
    for line in failed:  # reported, in the JSON too, and the exit status says so
        print(f"FAILED {line}", file=sys.stderr)
    df = pd.concat(rows)
    cols = ["mean_accuracy", "unique_params", "mean_macs", "params_vs_independent", "macs_vs_independent"]
    table = df.groupby("setup", sort=False)[cols].agg(["mean", "std"])
    table[("converged_searches", "")] = df.groupby("setup", sort=False).converged.apply(
        lambda c: f"{int(c.fillna(False).astype(bool).sum())}/{len(c)}" if c.notna().any() else "-")
    pd.set_option("display.width", 200)
    print(table.round(3).to_string())
    print(f"saving ceiling 1 - 1/D at D = {len(domains)}: {1 - 1 / len(domains):.2f}")
    # reward status per domain: in how many seeds each searched setup's reward stayed at chance there
    searched = [c for c in table.index if MDL_SETUPS[c].search != "none" and MDL_SETUPS[c].reward == "accuracy"]
    status = pd.DataFrame(0, index=domains, columns=searched)
    for c in chance:
        if c["setup"] in status.columns:
            status.loc[c["at_chance"] if c["at_chance"] in status.index else domains, c["setup"]] += 1
    print(f"seeds (of {len(args.seeds)}) whose reward accuracy stayed at chance, per domain and setup "
          "(a one-controller search at chance counts on every domain):")
    print(status.to_string())
    print("wall time per seed (s):", seconds)
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
                                           | {"converged_searches": table.loc[s, ("converged_searches", "")]}
                                           for s in table.index}, "abdp": summary,
           "saving_ceiling": round(1 - 1 / len(domains), 4), "seconds_per_seed": seconds,
           "at_chance": {d: {c: int(status.loc[d, c]) for c in status.columns if status.loc[d, c]} for d in domains},
           "failed": failed}
    print(json.dumps(out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
