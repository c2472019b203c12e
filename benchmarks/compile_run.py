"""A whole run, eager against ``compile=True``, compile time included, side by side in one script.

The default SGD run over all of synth-10 (10 tasks, 4 epochs, evaluation after each task) as a
user starts it, ``cl-lab run --method sgd --stream synth-10 [--compile]``, each in its own process
(so no compiled graph carries over from one run to the next) and timed from start to exit:

- ``eager``: the runner's default (run twice, first and last, to see drift; the mean is compared);
- ``compiled, cold``: ``--compile`` with an empty compiler cache (a fresh ``TORCHINDUCTOR_CACHE_DIR``):
  what a first compiled run on a machine costs;
- ``compiled, warm``: ``--compile`` again with the cache the cold run filled (PyTorch keeps compiled
  kernels on disk between processes; the graphs are still traced again).

The last line printed is JSON: the ratios ``eager / compiled`` of wall time (above 1: compiled is
faster) and every run's average accuracy (compiled results are not bit-identical to eager ones).

    python benchmarks/compile_run.py [--method sgd] [--stream synth-10] [--epochs 4] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cl_lab import results


def timed_run(args: argparse.Namespace, out: Path, name: str, compile: bool, env: dict[str, str]) -> dict:
    cmd = [sys.executable, "-m", "cl_lab", "run", "--method", args.method, "--stream", args.stream, "--epochs",
           str(args.epochs), "--out", str(out), "--run-name", name, "--no-progress", *(["--compile"] if compile else [])]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    config = results.read_config(out / name)
    if config.get("compile", False) != compile:
        raise SystemExit(f"{name}: asked for compile={compile}, the run recorded {config.get('compile')}: {p.stderr}")
    R = results.accuracy_matrix(out / name)
    return {"seconds": round(seconds, 1), "avg_accuracy": round(float(R[-1].mean()), 4)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--method", default="sgd")
    p.add_argument("--stream", default="synth-10")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the runs (default: as set)")
    args = p.parse_args()
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out, cache = Path(tmp) / "runs", Path(tmp) / "inductor"
        env["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
        runs = {}
        runs["eager"] = timed_run(args, out, "eager", False, env)
        runs["compiled, cold"] = timed_run(args, out, "compiled-cold", True, env)
        runs["compiled, warm"] = timed_run(args, out, "compiled-warm", True, env)
        runs["eager, again"] = timed_run(args, out, "eager-again", False, env)
    for k, r in runs.items():
        print(f"{k:16s} {r['seconds']:7.1f} s  avg accuracy {r['avg_accuracy']:.4f}", flush=True)
    eager = (runs["eager"]["seconds"] + runs["eager, again"]["seconds"]) / 2
    print(json.dumps({
        "eager_vs_compiled_cold": round(eager / runs["compiled, cold"]["seconds"], 3),
        "eager_vs_compiled_warm": round(eager / runs["compiled, warm"]["seconds"], 3),
        "accuracy_difference": round(runs["compiled, warm"]["avg_accuracy"] - runs["eager"]["avg_accuracy"], 4),
        "runs": runs, "method": args.method, "stream": args.stream, "epochs": args.epochs,
        "threads": int(env.get("OMP_NUM_THREADS", torch.get_num_threads())), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
