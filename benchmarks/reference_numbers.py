"""Re-measure the README's reference tables over seeds and rewrite them (mean +/- std).

Every number the README states about method accuracy comes from this script:

- ``main``: the whole synth-10 stream (10 tasks) for every method and the three reference rows
  (joint training, an independent network per task, feature extraction), with forward transfer
  against the independent network of the same seed and everything each method stores per task;
- ``baselines``: the first five synth-10 tasks for the shared-backbone baselines, each
  with the papers' shared BatchNorm statistics and with per-task statistics
  (``bn_stats="per-task"``), which separates weight drift from statistics drift;
- ``tradeoff``: ResCL's fair comparison on shapes -> textures (``cl_lab.experiments.tradeoff``);
- ``backbone``: the methods that start from the shipped backbone, from the previous shipped
  checkpoint (``OLD_BACKBONE``) next to the default one (the ``main`` runs), so the table shows
  what the source pretraining is worth to each method;
- ``scratch``: the methods that start from random weights (PSP, SupSup) next to SGD from
  random weights, on the three synth-10 tasks notebook 05 compares them on, at its budget.

Each configuration runs once per seed as an ordinary run directory under ``--out`` (a
rerun skips what finished), in ``--workers`` processes of one thread each (results depend
on the thread count; it is recorded in the tables). Then the tables are written to
``benchmarks/results/reference.md`` and, with ``--readme``, replace the blocks between
``<!-- reference:NAME -->`` markers in README.md. The last line printed is JSON.

    python benchmarks/reference_numbers.py --part all --seeds 0 1 2 --workers 2 --readme
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from cl_lab.lab.params import defaults

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4

# (label, method, kwargs): labels are the README's row names
REFERENCES = [
    ("reference: joint training", "joint", {}),
    ("reference: independent network per task", "independent", {}),
    ("reference: feature extraction", "feature-extraction", {}),
]
MAIN = [
    *REFERENCES,
    ("SGD", "sgd", {}),
    ("SGD-LL (shared last layer)", "sgd-ll", {}),
    ("EWC", "ewc", {}),
    ("online EWC", "online-ewc", {}),
    ("SI", "si", {}),
    ("LwF", "lwf", {}),
    ("ER (200 examples)", "er", {}),
    ("DER++ (200 examples)", "derpp", {}),
    ("PSP (random weights)", "psp", {}),
    ("SupSup (random weights)", "supsup", {}),
    ("ResCL", "rescl", {}),
    ("CLR (shipped backbone)", "clr", {}),
    ("CLR, random frozen backbone", "clr", {"pretrained": None}),
    ("CLR, backbone trained on task 1", "clr", {"pretrained": "first-task"}),
    ("CCLL", "ccll", {}),
    ("EFTs (authors' code)", "efts", {}),
    ("EFTs (identity reading)", "efts-identity", {}),
    ("ConFiT", "confit", {}),
    ("RCM (reparameterised convs)", "rcm", {}),
]
BASELINES = [
    *REFERENCES,
    ("SGD", "sgd", {}),
    ("SI", "si", {}),
    ("LwF", "lwf", {}),
    ("ER (200 examples)", "er", {}),
    ("DER++ (200 examples)", "derpp", {}),
    ("EWC", "ewc", {}),
    ("online EWC", "online-ewc", {}),
]
BN_COMPARED = ("sgd", "ewc", "si", "lwf")
OLD_BACKBONE = "resnet8.synth-source-v2"
# the feature-extraction floor (what a frozen backbone's features are worth alone), fine-tuning and the two
# adapter methods on a frozen backbone; joint training and the independent networks (5.5 and 1 ten-task runs
# per seed and backbone) stay in the main table, EFTs and ConFiT in version 2's table
BACKBONE_ROWS = [("reference: feature extraction", "feature-extraction"), ("SGD", "sgd"), ("SGD-LL", "sgd-ll"),
                 ("CLR", "clr"), ("CCLL", "ccll")]
SCRATCH = [("reference: joint training, random weights", "joint", {"pretrained": None}),
           ("reference: independent network per task, random weights", "independent", {"pretrained": None}),
           ("reference: random frozen features + linear head", "feature-extraction", {"pretrained": None}),
           ("SGD, random weights", "sgd", {"pretrained": None}), ("PSP", "psp", {}), ("SupSup", "supsup", {})]
SCRATCH_TASKS = tuple(defaults("05_baselines")["scratch_tasks"])  # notebook 05's settings, declared there once
SCRATCH_EPOCHS = defaults("05_baselines")["scratch_epochs"]
TRADEOFF_SWEEPS = None  # cl_lab.experiments.tradeoff.DEFAULT_SWEEPS
# target-task accuracies at which the source accuracy is read, as fractions of the highest target accuracy that
# every method's sweep reaches in every seed (rounded down to 0.01): a rule, not values picked off the results,
# and one set of levels for all seeds so they average
TARGET_LEVELS = (0.75, 1.0)
TRADEOFF_EPOCHS = 2


def _name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower()


def jobs(part: str, seeds: list[int]) -> list[dict]:
    out = []
    if part in ("main", "all"):
        for label, method, kw in MAIN:
            for s in seeds:
                out.append({"table": "main", "label": label, "method": method, "seed": s,
                            "kwargs": {**kw, "epochs": EPOCHS}, "run_name": f"main_{_name(label)}_s{s}"})
    if part == "backbone":  # the new backbone's column is the main runs of the same rows (cached, shared)
        rows = {m for _, m in BACKBONE_ROWS}
        out += [j for j in jobs("main", seeds) if j["method"] in rows and "pretrained" not in j["kwargs"]]
    if part in ("backbone", "all"):
        for label, method in BACKBONE_ROWS:
            for s in seeds:
                out.append({"table": "backbone", "label": label, "method": method, "seed": s,
                            "kwargs": {"epochs": EPOCHS, "pretrained": OLD_BACKBONE},
                            "run_name": f"backbone_{OLD_BACKBONE}_{method}_s{s}"})
    if part in ("baselines", "all"):
        for label, method, kw in BASELINES:
            for bn in ("shared", "per-task") if method in BN_COMPARED else ("shared",):
                for s in seeds:
                    out.append({"table": "baselines", "label": label, "method": method, "seed": s, "bn_stats": bn,
                                "kwargs": {**kw, "epochs": EPOCHS, "n_tasks": 5, "bn_stats": bn},
                                "run_name": f"base_{_name(label)}_{bn}_s{s}"})
    if part in ("scratch", "all"):
        for label, method, kw in SCRATCH:
            for s in seeds:
                out.append({"table": "scratch", "label": label, "method": method, "seed": s,
                            "tasks": list(SCRATCH_TASKS), "kwargs": {**kw, "epochs": SCRATCH_EPOCHS},
                            "run_name": f"scratch_{_name(label)}_s{s}"})
    if part in ("tradeoff", "all"):
        for s in seeds:
            out.append({"table": "tradeoff", "label": "tradeoff", "method": "tradeoff", "seed": s, "kwargs": {},
                        "run_name": f"tradeoff_s{s}"})
    return out


def _work(job: dict, out: str) -> dict:
    import torch

    torch.set_num_threads(1)
    import cl_lab
    from cl_lab.experiments.tradeoff import tradeoff

    t0 = time.perf_counter()
    if job["method"] == "tradeoff":
        curve, table = tradeoff("synth-10", 0, 1, out=out, name=job["run_name"], epochs=TRADEOFF_EPOCHS,
                                seed=job["seed"], progress=False, sweeps=TRADEOFF_SWEEPS,
                                method_kwargs={"rescl": {"finetune_epochs": TRADEOFF_EPOCHS}})
        return {**job, "curve": curve.to_dict("records"), "metrics": table.to_dict("records"),
                "seconds": time.perf_counter() - t0}
    stream = cl_lab.load_stream("synth-10").select(job["tasks"]) if job.get("tasks") else "synth-10"
    r = cl_lab.run(job["method"], stream, out=out, run_name=job["run_name"], seed=job["seed"], progress=False,
                   **job["kwargs"])
    c = r.costs
    s = r.summary()
    return {**job, "avg_accuracy": s["avg_accuracy"], "bwt": s["bwt"], "forgetting": s["forgetting"],
            "first_task_final": float(r.R[-1, 0]), "first_task_learnt": float(r.R[0, 0]),
            "task_pct_min": float(c.task_params_pct.min()), "task_pct_max": float(c.task_params_pct.max()),
            "stored_pct": float(c.stored_pct.mean()), "params_pct": float(c.task_params_pct.mean()),
            "diag": [float(r.R[i, i]) for i in range(len(r.R))], "threads": r.config.get("threads"),
            "extra_mb": float(c.extra_bytes.iloc[-1]) / 1e6, "seconds": time.perf_counter() - t0}


def tuned(method: str) -> str:
    """The tuning budget behind a method's defaults: its study's trials (``benchmarks/tune_defaults.py``)."""
    f = ROOT / "benchmarks" / "results" / "tuning" / method / "best_config.json"
    return f"{json.loads(f.read_text())['finished']} trials" if f.exists() else "not tuned"


def _ms(values, digits: int = 3) -> str:
    import numpy as np

    v = np.asarray(list(values), dtype=float)
    return f"{v.mean():.{digits}f} +/- {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v.mean():.{digits}f}"


def tables(results: list[dict], seeds: list[int]) -> dict[str, str]:
    import pandas as pd

    out: dict[str, str] = {}
    from cl_lab.data.streams import STREAMS
    from cl_lab.models.weights import default_checkpoint

    what = f"synth-10 version {STREAMS.info('synth-10').get('version')}, {default_checkpoint('resnet8-w16')}"
    note = (f"{what}; " + (f"{len(seeds)} seeds ({', '.join(map(str, seeds))}), mean +/- std" if len(seeds) > 1
                           else f"seed {seeds[0]} only") + f", one thread per run, {EPOCHS} epochs per task")
    df = pd.DataFrame([r for r in results if r["table"] == "main"])
    if len(df):
        import numpy as np

        ind = {r.seed: np.asarray(r.diag) for r in df[df.method == "independent"].itertuples()} if "diag" in df else {}
        df["fwt"] = [float(np.mean(np.asarray(r.diag)[1:] - ind[r.seed][1:])) if r.seed in ind else float("nan")
                     for r in df.itertuples()] if "diag" in df else float("nan")
        rows = ["| synth-10, 10 tasks | avg accuracy | forgetting | FWT (vs independent) | stored per task, everything "
                "(% of backbone) | of which parameters | tuned |", "|---|---|---|---|---|---|---|"]
        for label, method, _ in MAIN:
            g = df[df.label == label]
            if not len(g):
                continue
            # two decimals: the last digit of three is noise at 1,000 test images per task
            fwt = _ms(g.fwt, 2) if g.fwt.notna().all() else "-"
            rows.append(f"| {label} | {_ms(g.avg_accuracy, 2)} | {_ms(g.forgetting, 2)} | {fwt} | "
                        f"{g.stored_pct.mean():.2f}% | {g.params_pct.mean():.2f}% | {tuned(method)} |")
            if label == REFERENCES[-1][0]:
                rows.append("| | | | | | | |")
        out["main"] = (f"{note}; FWT: accuracy on each task right after learning it minus the independent "
                       "network's, mean over tasks 2-10; stored per task: everything kept beyond the backbone "
                       "(parameters, buffers, Fisher and anchors, statistics, kept data) over the 10 tasks, per "
                       "task; tuned: the equal-budget study behind the defaults (benchmarks/tune_defaults.py):\n\n"
                       + "\n".join(rows))
    df = pd.DataFrame([r for r in results if r["table"] == "baselines"])
    if len(df):
        # forgetting only, as the main table (BWT beside it adds little and its values can collide with lab answers)
        rows = ["| synth-10 tasks 1-5 | BN statistics | avg accuracy | forgetting | task 1 at the end | "
                "extra memory at the end |", "|---|---|---|---|---|---|"]
        for label, _, _ in BASELINES:
            for bn in ("shared", "per-task"):
                g = df[(df.label == label) & (df.bn_stats == bn)]
                if not len(g):
                    continue
                rows.append(f"| {label} | {bn} | {_ms(g.avg_accuracy)} | {_ms(g.forgetting)} | "
                            f"{_ms(g.first_task_final)} | {g.extra_mb.mean():.2f} MB |")
        out["baselines"] = f"{note}:\n\n" + "\n".join(rows)
    old = pd.DataFrame([r for r in results if r["table"] == "backbone"])
    new = pd.DataFrame([r for r in results if r["table"] == "main" and "pretrained" not in r["kwargs"]])
    if len(old) and len(new):
        from cl_lab.models.weights import checkpoint_key, default_checkpoint, shipped_checkpoints

        entries, new_name = shipped_checkpoints(), default_checkpoint("resnet8-w16")
        domains = {n: len(entries[checkpoint_key(n)]["source_domains"]) for n in (OLD_BACKBONE, new_name)}
        rows = [f"| synth-10, 10 tasks | {OLD_BACKBONE} ({domains[OLD_BACKBONE]} source domains) | {new_name} "
                f"({domains[new_name]} source domains) | change | parameters per task (% of backbone) |",
                "|---|---|---|---|---|"]
        for label, method in BACKBONE_ROWS:
            a, b = old[old.method == method], new[new.method == method]
            if not len(a) or not len(b):
                continue
            pct = f"{b.task_pct_min.min():.2f}-{b.task_pct_max.max():.2f}%"
            rows.append(f"| {label} | {_ms(a.avg_accuracy)} | {_ms(b.avg_accuracy)} | "
                        f"{b.avg_accuracy.mean() - a.avg_accuracy.mean():+.3f} | {pct} |")
        out["backbone"] = f"{note}; average accuracy after the last task:\n\n" + "\n".join(rows)
    df = pd.DataFrame([r for r in results if r["table"] == "scratch"])
    if len(df):
        rows = [f"| synth-10 [{', '.join(SCRATCH_TASKS)}], from random weights | avg accuracy | forgetting | "
                "task 1 when learnt | task 1 at the end | stored per task (% of backbone) |", "|---|---|---|---|---|---|"]
        for label, _, _ in SCRATCH:
            g = df[df.label == label]
            if len(g):
                rows.append(f"| {label} | {_ms(g.avg_accuracy)} | {_ms(g.forgetting)} | {_ms(g.first_task_learnt)} | "
                            f"{_ms(g.first_task_final)} | {g.task_pct_min.min():.2f}-{g.task_pct_max.max():.2f}% |")
        from cl_lab import load_stream
        from cl_lab.metrics import chance_level

        chance = chance_level(load_stream("synth-10").select(SCRATCH_TASKS))
        out["scratch"] = (f"{len(seeds)} seeds ({', '.join(map(str, seeds))}), mean +/- std, one thread per run, "
                          f"{SCRATCH_EPOCHS} epochs per task (chance {chance:.2f} on average):\n\n" + "\n".join(rows))
    tr = [r for r in results if r["table"] == "tradeoff"]
    if tr:
        import math

        from cl_lab import metrics as M

        common = min(pd.DataFrame(r["curve"]).groupby("method").target_acc.max().min() for r in tr)
        desired = sorted({math.floor(f * common * 100) / 100 for f in TARGET_LEVELS})
        fair = []
        for r in tr:
            c = pd.DataFrame(r["curve"])
            for method, g in c.groupby("method", sort=False):
                row = {"method": method, "seed": r["seed"],
                       "max_average_accuracy": M.max_average_accuracy(g.source_acc, g.target_acc)}
                for d in desired:
                    row[f"source_at_target_{d:g}"] = M.source_at_target(g.source_acc, g.target_acc, d)
                fair.append(row)
        m = pd.DataFrame(fair)
        cols = [c for c in m.columns if c.startswith("source_at_target")]
        rows = ["| method | max. achievable average accuracy | " + " | ".join(
            f"source acc. at {c.rsplit('_', 1)[1]} target" for c in cols) + " |", "|---" * (2 + len(cols)) + "|"]
        for method, g in m.groupby("method", sort=False):
            cells = [_ms(g.max_average_accuracy)] + [
                (_ms(g[c].dropna()) + ("" if g[c].notna().all() else f" ({g[c].notna().sum()} of {len(g)} seeds reach it)"))
                if g[c].notna().any() else "never reached" for c in cols]
            rows.append(f"| {method} | " + " | ".join(cells) + " |")
        curve = pd.DataFrame([{**row, "seed": r["seed"]} for r in tr for row in r["curve"]])
        pts = curve.groupby(["method", "knob", "value"], sort=False).agg(
            source=("source_acc", "mean"), target=("target_acc", "mean"),
            alpha_t=("mean_abs_alpha_t", "mean")).reset_index()
        rows += ["", "| sweep point | source accuracy | target accuracy | mean abs(alpha_t) |", "|---|---|---|---|"]
        for p in pts.itertuples():
            a = "" if p.alpha_t != p.alpha_t else f"{p.alpha_t:.3f}"
            rows.append(f"| {p.method} {p.knob}={p.value:g} | {p.source:.3f} | {p.target:.3f} | {a} |")
        out["tradeoff"] = (f"shapes -> textures, {TRADEOFF_EPOCHS} epochs per task (ResCL: also {TRADEOFF_EPOCHS} "
                           "fine-tuning epochs), "
                           f"{len(seeds)} seeds, mean +/- std; source accuracy read at target accuracies "
                           f"{' and '.join(f'{d:g}' for d in desired)} (" + ", ".join(f"{f:.0%}" for f in TARGET_LEVELS)
                           + f" of {common:.3f}, the highest every method's sweep reaches in every seed); sweep points "
                           "averaged over seeds:\n\n" + "\n".join(rows))
    return out


def write_readme(blocks: dict[str, str], path: Path, tag: str = "reference") -> list[str]:
    """Replace the body of each ``<!-- tag:name -->`` ... ``<!-- /tag:name -->`` block of the README."""
    text = path.read_text()
    done = []
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- {tag}:{name} -->\n).*?(\n<!-- /{tag}:{name} -->)", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda m, b=body: m.group(1) + b + m.group(2), text)
            done.append(name)
    path.write_text(text)
    return done


def run_cached(todo: list[dict], work, out: str, workers: int, line) -> dict[str, dict]:
    """Run every job of ``todo`` not yet in ``out``/results.jsonl with ``work(job, out)`` in ``workers``
    spawned processes of one thread each, appending each result to that file as it finishes (a rerun
    skips what finished; a failure is printed and the other jobs go on). Returns every cached result
    by run name; ``line(result)`` is printed per finished job."""
    cache = Path(out) / "results.jsonl"
    cache.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if cache.exists():
        for text in cache.read_text().splitlines():
            r = json.loads(text)
            done[r["run_name"]] = r
    pending = [j for j in todo if j["run_name"] not in done]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from cl_lab.parallel import run_points

    def finished(r: dict) -> None:
        if "error" in r:  # reported; the other points go on
            print(f"FAILED {r['run_name']}: {r['error']}", file=sys.stderr)
            return
        done[r["run_name"]] = r
        with cache.open("a") as fh:
            fh.write(json.dumps(r, default=float) + "\n")
        print(line(r), flush=True)

    run_points(_apply, [(work, j, out) for j in pending], workers=workers, on_result=finished,
               failed=lambda job, error: {"run_name": job[1]["run_name"], "error": error})
    return done


def _apply(job: tuple) -> dict:
    """One point of ``run_cached`` in a worker: ``work(job, out)``."""
    work, j, out = job
    return work(j, out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["main", "baselines", "tradeoff", "backbone", "scratch", "all"], default="all")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "runs" / "reference"))
    ap.add_argument("--readme", action="store_true", help="rewrite the README's reference blocks")
    args = ap.parse_args(argv)
    todo = jobs(args.part, args.seeds)
    t0 = time.perf_counter()
    done = run_cached(todo, _work, args.out, args.workers,
                      lambda r: f"{r['run_name']}: {r.get('avg_accuracy', '')} ({r['seconds']:.0f} s)")
    results = [done[j["run_name"]] for j in todo if j["run_name"] in done]
    # the backbone table compares with the main runs: build every table from all finished runs of these
    # seeds, and write the blocks of the parts asked for (the backbone block with main or backbone)
    everything = [done[j["run_name"]] for j in jobs("all", args.seeds) if j["run_name"] in done]
    wanted = {"main", "baselines", "tradeoff", "backbone", "scratch"} if args.part == "all" else \
        {args.part} | ({"backbone"} if args.part in ("main", "backbone") else set())
    blocks = {k: v for k, v in tables(everything, args.seeds).items() if k in wanted}
    md = ROOT / "benchmarks" / "results" / "reference.md"
    md.parent.mkdir(parents=True, exist_ok=True)
    sections = dict(re.findall(r"^## (\w+)\n\n(.*?)(?=\n\n## |\Z)", md.read_text(), re.S | re.M)) if md.exists() else {}
    sections.update(blocks)  # parts not rerun keep what they last measured
    md.write_text("\n\n".join(f"## {k}\n\n{v.strip()}" for k, v in sections.items()) + "\n")
    print("\n\n".join(blocks.values()))
    updated = write_readme(blocks, ROOT / "README.md") if args.readme else []
    print(json.dumps({"runs": len(results), "missing": len(todo) - len(results), "readme_blocks": updated,
                      "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
