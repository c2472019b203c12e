"""Choose every method's defaults with equal-budget Optuna studies on validation data, never on test.

One ``cl_lab.tune`` study per method (and per reference row), all with the same budget and
protocol: ``TRIALS`` trials (the first half random, then TPE; sampler seed 0), each an ordinary
run on synth-10's first ``K`` tasks (Chaudhry et al. 2019's first-k protocol), 4 epochs per
task, seed 0, one thread, scored by the final average accuracy on those tasks' *validation*
splits. Every method searches its declared ``search_space``: the learning rate over the same
range for every method with the same optimiser (``cl_lab.methods.base.LR_RANGE``), plus its own
strength and schedule (fractions of the epochs). A trial that diverges counts against the
budget like any other.

Each finished study is copied (``study.db``, ``best_config.json``, ``trials.csv``; not its run
directories) to ``benchmarks/results/tuning/<method>/``; ``cl-lab tune`` re-draws its report page
from the ``study.db`` (``cl_lab.tune.write_study_report``). The method defaults in
``cl_lab/methods`` cite these studies. The last line printed is JSON: the best parameters and
validation score per method.

    python benchmarks/tune_defaults.py [--workers 2] [--methods ewc si] [--trials 8] [--k 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "tuning"
STREAM = "synth-10"
TRIALS = 8
K = 3
EPOCHS = 4
# the most expensive studies first, so two workers finish together
ORDER = ["derpp", "rescl", "er", "supsup", "lwf", "psp", "clr", "efts", "efts-identity", "ewc", "si", "online-ewc",
         "ccll", "independent", "joint", "sgd", "rcm", "confit", "sgd-ll", "feature-extraction"]


def _study(method: str, trials: int, k: int, out: str) -> dict:
    import torch

    torch.set_num_threads(1)
    import cl_lab

    t0 = time.perf_counter()
    r = cl_lab.tune(method, STREAM, trials=trials, protocol="first-k", k=k, startup_trials=trials // 2,
                    sampler_seed=0, out=out, threads=1, report=False, seed=0, epochs=EPOCHS)
    keep = RESULTS / method
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy2(r.study_path, keep / "study.db")
    record = json.loads(r.config_file.read_text())
    record["study"] = f"benchmarks/results/tuning/{method}/study.db"
    record.pop("run_dir", None)  # a temporary folder: the runs are not kept
    (keep / "best_config.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    df = r.trials()
    cols = ["number", "state", "value"] + [c for c in df.columns if c.startswith("params_")] + \
        [c for c in df.columns if c == "user_attrs_error"]
    df[cols].to_csv(keep / "trials.csv", index=False)
    return {"method": method, "best": r.best_params, "val": round(r.best_value, 4), "completed": r.completed,
            "minutes": round((time.perf_counter() - t0) / 60, 1)}


def _study_job(job: tuple) -> dict:
    return _study(*job)


def main(argv: list[str] | None = None) -> None:
    from cl_lab.methods import method_names

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=ORDER, choices=method_names())
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--trials", type=int, default=TRIALS)
    ap.add_argument("--k", type=int, default=K)
    ap.add_argument("--out", default=str(ROOT / "runs" / "tuning"))
    args = ap.parse_args(argv)
    from cl_lab.parallel import run_points

    chosen = {}

    def finished(row: dict) -> None:
        chosen[row["method"]] = row
        print(json.dumps(row, default=str), flush=True)

    # one study's failure is a row with its error; the others go on
    run_points(_study_job, [(m, args.trials, args.k, args.out) for m in args.methods], workers=args.workers,
               failed=lambda job, error: {"method": job[0], "error": error[:300]}, on_result=finished)
    print(json.dumps({m: chosen[m] for m in args.methods if m in chosen}, default=str))


if __name__ == "__main__":
    main()
