"""Training throughput of every method: contiguous, channels-last and compiled, side by side in one process,
with where each method's training time goes.

Each method trains the first two synth-10 tasks (the second task is where replay, penalties
and teachers cost) for ``--epochs`` epochs through ``cl_lab.run`` with its defaults in three
settings, measured back to back in an order rotated per method (``--repeats N``: N rounds, the median):

- ``contiguous``: ``memory_format="contiguous"`` (PyTorch's default layout);
- ``channels_last``: ``"auto"``, the runner's default;
- ``compiled``: channels-last with ``compile=True``, measured after a first compiled run in the same
  process (graphs are kept across runs: the steady state); that first run's extra seconds are
  ``compile_s``. The process's graphs and PyTorch's on-disk kernel cache are shared by the methods,
  so ``compile_s`` counts what a method compiles beyond those measured before it: SGD, measured
  first, pays the backbone's compile (cold only with an empty cache); a method whose backbone
  differs (adapters, masks, contexts) pays its own (``--no-compile`` leaves the column out).

The channels-last run also splits its training time (``StepClock``): ``forward`` (the backbone's
forward passes inside training steps, teachers' and replayed batches' included), ``backward``
(``Tensor.backward`` and ``torch.autograd.grad``), ``rest`` (heads, losses, penalties, optimiser
steps, buffers: the training time minus the two; SGD's own heads, loss and optimiser included) and
``eval`` (the accuracy matrix after each task), each as a share of training plus evaluation time
(work at task boundaries, such as EWC's Fisher or ResCL's folding, is in neither), and counts the
images that go through the
backbone per training step (``images_per_step``; SGD: the batch, 32). ``expected`` = SGD's
images per step / the method's is the ratio to SGD that the extra images alone explain (a
frozen backbone needs no weight gradients and can beat it); ``vs_sgd`` is the measured one.

    python benchmarks/throughput.py [--methods sgd derpp ...] [--epochs 1] [--repeats 1] [--no-compile] [--cache F]
                                    [--readme]
    python benchmarks/throughput.py --ratios derpp er supsup rescl ccll [--rounds 4]   # ratios to SGD, in turns

The last line printed is JSON. ``images_per_second`` and ``side_by_side`` also take a device,
bfloat16 autocast, a stream and a task count: ``gpu_check.py`` measures its table on a GPU with them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import torch

import cl_lab
from cl_lab.methods import method_names
from cl_lab.models.backbones import Backbone
from cl_lab.train import runner

LAYOUTS = {"contiguous": {"fmt": "contiguous"}, "channels_last": {"fmt": "auto"}}
"""The two layouts: PyTorch's default and the runner's (``auto`` is channels-last)."""
COMPILED = {"compiled": {"fmt": "auto", "compile": True}}
"""The runner's default layout with ``compile=True``."""


class StepClock:
    """Seconds in the backbone's forward passes and in backward passes while the runner trains a task
    (``runner.train_task``; not the FLOP count, the evaluations or ``end_task``), images through the
    backbone and training steps. CPU timings are synchronous; on CUDA they measure launches only."""

    def __init__(self) -> None:
        self.forward = self.backward = 0.0
        self.images = self.steps = 0
        self._depth = 0
        self._training = False

    @contextmanager
    def installed(self) -> Iterator[StepClock]:
        clock = self
        forward, backward, grad, train_task = (Backbone.forward, torch.Tensor.backward, torch.autograd.grad,
                                               runner.train_task)

        def timed_forward(module, x, *a, **k):
            if not clock._training or clock._depth:
                return forward(module, x, *a, **k)
            clock._depth += 1
            t0 = time.perf_counter()
            try:
                return forward(module, x, *a, **k)
            finally:
                clock.forward += time.perf_counter() - t0
                clock.images += len(x)
                clock._depth -= 1

        def timed(fn, slot):
            def wrapper(*a, **k):
                if not clock._training:
                    return fn(*a, **k)
                t0 = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    setattr(clock, slot, getattr(clock, slot) + time.perf_counter() - t0)
            return wrapper

        def timed_task(method, task, task_id, cfg, *a, **k):
            clock.steps += cfg.epochs * len(runner.batch_starts(len(task.train), cfg.batch_size))
            clock._training = True
            try:
                return train_task(method, task, task_id, cfg, *a, **k)
            finally:
                clock._training = False

        Backbone.forward, torch.Tensor.backward = timed_forward, timed(backward, "backward")
        torch.autograd.grad, runner.train_task = timed(grad, "backward"), timed_task
        try:
            yield self
        finally:
            Backbone.forward, torch.Tensor.backward, torch.autograd.grad, runner.train_task = (
                forward, backward, grad, train_task)


def run_costs(method: str, fmt: str, epochs: int, backbone: str, *, device: str = "cpu", amp: bool = False,
              compile: bool = False, stream: str = "synth-10", n_tasks: int = 2) -> pd.DataFrame:
    """``costs.csv`` of one run through ``cl_lab.run`` in a temporary folder."""
    with tempfile.TemporaryDirectory() as out:
        r = cl_lab.run(method, stream, n_tasks=n_tasks, backbone=backbone, epochs=epochs, out=out, progress=False,
                       device=device, memory_format=fmt, amp=amp, compile=compile)
        if r.config.get("compile", False) != compile:
            raise RuntimeError(f"{method}: compile=True ran eagerly (torch.compile is unavailable here)")
        return r.costs


def pooled_rate(costs: pd.DataFrame) -> float:
    """Training images/second over every task of a run (its training time only)."""
    return float((costs.images_per_second * costs.train_seconds).sum() / costs.train_seconds.sum())


def images_per_second(method: str, fmt: str, epochs: int, backbone: str, **kw: Any) -> float:
    """Training images/second of one run through ``cl_lab.run`` (its training time only, all tasks pooled)."""
    return pooled_rate(run_costs(method, fmt, epochs, backbone, **kw))


def side_by_side(method: str, settings: dict[str, dict[str, Any]], *, rotate: int = 0,
                 errors: dict[str, str] | None = None, **common: Any) -> dict[str, float]:
    """images/s of ``method`` under each named setting (keyword arguments of ``images_per_second``
    on top of ``common``), measured back to back in an order rotated by ``rotate`` so that drift
    favours no setting. With an ``errors`` dict, a setting that raises measures NaN and its
    message goes there instead of stopping the others."""
    names = list(settings)
    k = rotate % len(names)
    ips = {}
    for name in names[k:] + names[:k]:
        try:
            ips[name] = images_per_second(method, **{**common, **settings[name]})
        except Exception as e:
            if errors is None:
                raise
            errors[name] = f"{type(e).__name__}: {e}".splitlines()[0]
            ips[name] = float("nan")
    return {name: ips[name] for name in names}


def measure(method: str, rotate: int, epochs: int, backbone: str, compile: bool, repeats: int = 1) -> dict[str, Any]:
    """One method's row: images/s per setting (the median of ``repeats`` runs, the settings taking turns),
    compile seconds, and the channels-last runs' time split (their sums)."""
    row: dict[str, Any] = {"method": method}
    names = list(LAYOUTS) + (list(COMPILED) if compile else [])
    rates: dict[str, list[float]] = {n: [] for n in names}
    clock, train, ev = StepClock(), 0.0, 0.0
    if compile:  # the first compiled run compiles; the graphs stay for the measured ones
        first = run_costs(method, "auto", epochs, backbone, compile=True)
        row["compile_s"] = float(first.train_seconds.sum() + first.eval_seconds.sum())
    for r in range(repeats):
        k = (rotate + r) % len(names)
        for name in names[k:] + names[:k]:
            if name == "compiled":
                again = run_costs(method, "auto", epochs, backbone, compile=True)
                rates[name].append(pooled_rate(again))
                if r == 0:
                    row["compile_s"] -= float(again.train_seconds.sum() + again.eval_seconds.sum())
            elif name == "channels_last":
                with clock.installed():
                    costs = run_costs(method, "auto", epochs, backbone)
                rates[name].append(pooled_rate(costs))
                train, ev = train + float(costs.train_seconds.sum()), ev + float(costs.eval_seconds.sum())
            else:
                rates[name].append(images_per_second(method, "contiguous", epochs, backbone))
    row |= {n: statistics.median(v) for n, v in rates.items()}
    total = train + ev
    row |= {"forward": clock.forward / total, "backward": clock.backward / total,
            "rest": (train - clock.forward - clock.backward) / total, "eval": ev / total,
            "images_per_step": clock.images / max(1, clock.steps), "repeats": repeats}
    return row


def table(df: pd.DataFrame, compile: bool) -> str:
    """The README's Markdown table."""
    head = ["method", "contiguous", "channels-last", *(["compiled", "compile s"] if compile else []), "vs SGD",
            "expected", "images/step", "forward", "backward", "rest", "eval"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m, r in df.iterrows():
        cells = [m, f"{r.contiguous:.0f}", f"{r.channels_last:.0f}",
                 *([f"{r.compiled:.0f}", f"{max(0.0, r.compile_s):.0f}"] if compile else []),
                 f"{r.vs_sgd:.2f}", f"{r.expected:.2f}", f"{r.images_per_step:.0f}",
                 *(f"{100 * r[c]:.0f}%" for c in ("forward", "backward", "rest", "eval"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratios(methods: list[str], rounds: int, epochs: int, backbone: str) -> dict[str, Any]:
    """Each method's channels-last images/s over SGD's measured in the same round, SGD and the methods
    taking turns, over ``rounds`` rounds: the median ratio is robust to a machine whose speed drifts
    between minutes (a table row measures a method minutes after SGD)."""
    per: dict[str, list[float]] = {m: [] for m in methods}
    for r in range(rounds):
        order = ["sgd", *methods] if r % 2 == 0 else [*methods, "sgd"]
        ips = {m: images_per_second(m, "auto", epochs, backbone) for m in order}
        for m in methods:
            per[m].append(ips[m] / ips["sgd"])
        print(f"round {r + 1}: " + "  ".join(f"{m} {per[m][-1]:.3f}" for m in methods), flush=True)
    return {m: {"median": round(statistics.median(v), 3), "min": round(min(v), 3), "max": round(max(v), 3)}
            for m, v in per.items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--methods", nargs="+", default=method_names("task"), help="default: every task-IL method")
    p.add_argument("--cache", default=None, metavar="FILE.jsonl",
                   help="keep each method's row in FILE as it is measured; a rerun measures only the missing ones")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="leave the compiled column out")
    p.add_argument("--repeats", type=int, default=1, help="runs per setting; images/s is their median")
    p.add_argument("--readme", action="store_true", help="write the table into README.md's speed:throughput block")
    p.add_argument("--ratios", nargs="+", default=None, metavar="METHOD",
                   help="instead of the table: these methods' images/s over SGD's, measured in turns (--rounds)")
    p.add_argument("--rounds", type=int, default=4, help="rounds of --ratios")
    args = p.parse_args()
    if args.ratios:
        out = ratios([m for m in args.ratios if m != "sgd"], args.rounds, args.epochs, args.backbone)
        print(json.dumps({"vs_sgd": out, "rounds": args.rounds, "threads": torch.get_num_threads()}))
        return
    methods = ["sgd"] + [m for m in args.methods if m != "sgd"]  # the ratios are to SGD
    cache = Path(args.cache) if args.cache else None
    kept = {r["method"]: r for r in map(json.loads, cache.read_text().splitlines())} if cache and cache.exists() else {}
    rows = []
    for i, m in enumerate(methods):
        if m in kept and ("compiled" in kept[m]) == args.compile and kept[m].get("repeats", 1) == args.repeats:
            rows.append(kept[m])
            continue
        row = measure(m, i, args.epochs, args.backbone, args.compile, args.repeats)
        rows.append(row)
        if cache:
            with cache.open("a") as f:
                f.write(json.dumps(row) + "\n")
        shown = "  ".join(f"{k} {row[k]:7.1f}" for k in ("contiguous", "channels_last", "compiled") if k in row)
        print(f"{m:12s} {shown} images/s  ({row['images_per_step']:.0f} images/step)", flush=True)
    df = pd.DataFrame(rows).set_index("method").sort_index()
    sgd = df.loc["sgd"]
    df["vs_sgd"] = df.channels_last / sgd.channels_last
    df["expected"] = sgd.images_per_step / df.images_per_step
    df["speedup"] = df.channels_last / df.contiguous
    if args.compile:
        df["compiled_speedup"] = df.compiled / df.channels_last
    md = table(df, args.compile)
    print(f"\nimages/s training the first two synth-10 tasks ({args.epochs} epoch each), {args.backbone}, "
          f"{torch.get_num_threads()} threads:\n{md}")
    if args.readme:
        from reference_numbers import write_readme

        write_readme({"throughput": md}, Path(__file__).resolve().parents[1] / "README.md", tag="speed")
    out = {"median_speedup": round(float(df.speedup.median()), 3), "min_speedup": round(float(df.speedup.min()), 3),
           "threads": torch.get_num_threads(),
           "images_per_second": {m: round(float(v), 1) for m, v in df.channels_last.items()},
           "vs_sgd": {m: round(float(v), 3) for m, v in df.vs_sgd.items()},
           "expected_vs_sgd": {m: round(float(v), 3) for m, v in df.expected.items()}}
    if args.compile:
        out |= {"median_compiled_speedup": round(float(df.compiled_speedup.median()), 3),
                "compiled_speedup": {m: round(float(v), 3) for m, v in df.compiled_speedup.items()},
                "compile_seconds": {m: round(float(v), 1) for m, v in df.compile_s.items()}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
