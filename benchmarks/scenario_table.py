"""Methods x scenarios over seeds: the README's table for the three scenarios (mean +/- std).

On ``split-digits`` (scikit-learn's real digits, 5 tasks of 2 classes) every method runs in each scenario it
supports (task, domain, class); on ``split-glyphs`` (synth-10's 20 glyph classes, 5 tasks of 4) in the task and
class scenarios. Joint training on all tasks at once is the upper bound of each scenario. Each configuration runs
once per seed as an ordinary run directory under ``--out`` (a rerun skips what finished), in ``--workers``
processes of one thread each; then the table replaces the README block between ``<!-- reference:scenarios -->``
markers (with ``--readme``). The last line printed is JSON.

    python benchmarks/scenario_table.py --seeds 0 1 2 --workers 2 --readme
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_numbers import run_cached, write_readme  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4
METHODS = ["sgd", "ewc", "si", "lwf", "er", "derpp", "icarl", "joint"]
STREAMS = {"split-digits": ["task", "domain", "class"], "split-glyphs": ["task", "class"]}


def jobs(seeds: list[int]) -> list[dict]:
    from cl_lab.methods.registry import get_method

    out = []
    for stream, scenarios in STREAMS.items():
        for method in METHODS:
            for scenario in scenarios:
                if scenario not in get_method(method).scenarios:
                    continue
                for s in seeds:
                    out.append({"stream": stream, "method": method, "scenario": scenario, "seed": s,
                                "run_name": f"scen_{stream}_{method}_{scenario}_s{s}"})
    return out


def _work(job: dict, out: str) -> dict:
    import torch

    torch.set_num_threads(1)
    import cl_lab

    t0 = time.perf_counter()
    r = cl_lab.run(job["method"], job["stream"], scenario=job["scenario"], epochs=EPOCHS, seed=job["seed"],
                   out=out, run_name=job["run_name"], progress=False)
    s = r.summary()
    return {**job, "avg_accuracy": s["avg_accuracy"], "forgetting": s["forgetting"],
            "first_task_final": float(r.R[-1, 0]), "threads": r.config.get("threads"),
            "seconds": time.perf_counter() - t0}


def table(results: list[dict], seeds: list[int]) -> str:
    import numpy as np

    def ms(v):
        return f"{np.mean(v):.2f} +/- {np.std(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"

    blocks = [f"{len(seeds)} seeds ({', '.join(map(str, seeds))}), mean +/- std, {EPOCHS} epochs per task, one "
              "thread per run, each method at its defaults; average accuracy over the tasks after the last one "
              "(forgetting in brackets); - : the method does not run in that scenario:"]
    for stream, scenarios in STREAMS.items():
        rows = [f"| {stream} | " + " | ".join(scenarios) + " |", "|---|" + "---|" * len(scenarios)]
        for method in METHODS:
            cells = []
            for sc in scenarios:
                rs = [r for r in results if (r["stream"], r["method"], r["scenario"]) == (stream, method, sc)]
                cells.append("-" if not rs else f"{ms([r['avg_accuracy'] for r in rs])} "
                                                f"({np.mean([r['forgetting'] for r in rs]):.2f})")
            label = "joint training (upper bound)" if method == "joint" else method
            rows.append(f"| {label} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "runs" / "scenarios"))
    ap.add_argument("--readme", action="store_true", help="rewrite the README's scenarios block")
    args = ap.parse_args(argv)
    todo = jobs(args.seeds)
    t0 = time.perf_counter()
    done = run_cached(todo, _work, args.out, args.workers,
                      lambda r: f"{r['run_name']}: {r['avg_accuracy']:.3f} ({r['seconds']:.0f} s)")
    results = [done[j["run_name"]] for j in todo if j["run_name"] in done]
    body = table(results, args.seeds)
    print(body)
    if args.readme and not write_readme({"scenarios": body}, ROOT / "README.md"):
        raise SystemExit("README.md has no <!-- reference:scenarios --> block")
    print(json.dumps({"runs": len(results), "missing": len(todo) - len(results), "readme": args.readme,
                      "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
