"""Command line: ``cl-lab run|tune|streams|methods|generate|tradeoff|mdl|report|grade|summary|export|log``
(also ``python -m cl_lab``)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Any, Sequence


def _parse_sets(pairs: Sequence[str], config_for: Any) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> typed values; ``config_for(key)`` names the config class that types the key."""
    from .config import ConfigError, coerce_cli

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value; got {pair!r}")
        key, text = pair.split("=", 1)
        key = key.strip().replace("-", "_")
        out[key] = coerce_cli(config_for(key), key, text.strip())
    return out


def _run_or_method_config(method_cls: type) -> Any:
    from .train.runner import RunConfig

    run_keys = {f.name for f in dataclasses.fields(RunConfig)}
    return lambda key: RunConfig if key in run_keys else method_cls.Config


def cmd_run(args: argparse.Namespace) -> int:
    from .methods import get_method
    from .train.runner import execute, prepare

    common: dict[str, Any] = {"out": args.out, "seed": args.seed, "progress": not args.no_progress}
    for key in ("epochs", "batch_size", "device", "n_tasks", "pretrained", "run_name", "scenario", "eval_every",
                "compile", *TRACKING_OPTIONS):
        value = getattr(args, key)
        if value is not None:
            common[key] = None if (key == "pretrained" and value.lower() == "none") else value
    if args.config:  # a best-configuration file of cl-lab tune: its parameters, under --set
        from .tune import apply_config_file

        for name in args.method:
            args.stream, params = apply_config_file(args.config, name, args.stream, {})
            common.update(params)
    if args.seeds:
        return _run_sweep(args, common)
    plans = []  # every run is validated before the first one trains
    for name in args.method:
        kwargs = {**common, **_parse_sets(args.set, _run_or_method_config(get_method(name)))}
        plans.append((name, prepare(name, args.stream, backbone=args.backbone, **kwargs)))
    for name, plan in plans:
        t0 = time.perf_counter()
        result = execute(plan)
        s = result.summary()
        print(f"{name:>10s} on {result.config['stream']['name']}: avg acc {s['avg_accuracy']:.3f}  BWT {s['bwt']:+.3f}  "
              f"forgetting {s['forgetting']:.3f}  ({time.perf_counter() - t0:.1f}s)  -> {result.run_dir}")
    return 0


def _run_sweep(args: argparse.Namespace, common: dict[str, Any]) -> int:
    """``cl-lab run --seeds ...``: the cross product of methods and seeds, then mean +/- std."""
    from .experiments.sweep import summarise, sweep
    from .methods import get_method

    common = {k: v for k, v in common.items() if k != "seed"}
    sets: dict[str, Any] = {}
    for name in args.method:
        sets.update(_parse_sets(args.set, _run_or_method_config(get_method(name))))
    rows = sweep(args.method, args.stream, args.seeds, executor=args.executor, workers=args.workers or 1,
                 threads=args.threads, ray_address=args.ray_address, cpus_per_point=args.cpus_per_point,
                 gpus_per_point=args.gpus_per_point, backbone=args.backbone, **{**common, **sets})
    for r in rows.itertuples():
        status = (f"avg acc {r.avg_accuracy:.3f}  forgetting {r.forgetting:.3f}  stored/task "
                  f"{r.stored_per_task_pct:.2f}% of the backbone, everything counted (state at the end: "
                  f"{r.extra_mb:.2f} MB)" if r.ok
                  else f"FAILED: {r.error}")
        print(f"{r.method:>10s} on {r.stream} seed {r.seed}: {status}  ({r.seconds:.1f}s, {r.threads} thread(s))")
    table = summarise(rows)
    if not table.empty:
        shown = table[["method", "stream", "variant"]].copy()
        for k in ("avg_accuracy", "forgetting", "stored_per_task_pct", "extra_mb"):
            shown[k] = [f"{m:.3f} +/- {s:.3f}" if s == s else f"{m:.3f}" for m, s in zip(table[f"{k}_mean"],
                                                                                    table[f"{k}_std"])]
        shown["seeds"] = table["avg_accuracy_count"]
        print("\nmean +/- std over seeds (stored/task: everything stored beyond the backbone, per task, as % of the "
              "backbone's bytes; extra_mb: of which buffers, Fisher, statistics, ... at the end):")
        print(shown.to_string(index=False))
    return 0 if rows.ok.all() else 1


def cmd_tune(args: argparse.Namespace) -> int:
    """``cl-lab tune``: an Optuna study of runs scored on validation data; the best configuration to a file."""
    from .methods import get_method
    from .tune import TuneError, parse_space, tune

    fixed: dict[str, Any] = {"seed": args.seed, "progress": False}
    for key in ("epochs", "batch_size", "device", "n_tasks", "pretrained", "scenario", "compile", *TRACKING_OPTIONS):
        value = getattr(args, key)
        if value is not None:
            fixed[key] = None if (key == "pretrained" and value.lower() == "none") else value
    fixed.update(_parse_sets(args.set, _run_or_method_config(get_method(args.method))))
    space = parse_space(args.method, args.space) if args.space else None

    def line(row: dict[str, Any]) -> None:
        value = f"{row['value']:.4f}" if row["value"] is not None else row["state"].lower()
        params = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())
        print(f"trial {row['number']:>4d}: {value:>8s}  {params}" + (f"  ({row['error']})" if row["error"] else ""),
              flush=True)

    t0 = time.perf_counter()
    try:
        r = tune(args.method, args.stream, args.trials, out=args.out, study_name=args.study_name,
                 sampler_seed=args.sampler_seed, startup_trials=args.startup_trials, space=space,
                 protocol=args.protocol, k=args.k, executor=args.executor, workers=args.workers, threads=args.threads,
                 ray_address=args.ray_address, cpus_per_point=args.cpus_per_point,
                 gpus_per_point=args.gpus_per_point, report=not args.no_report, on_trial=line,
                 backbone=args.backbone, **fixed)
    except TuneError as e:  # no trial completed, or a worker died: the study is kept for a rerun
        print(f"cl-lab: {e}", file=sys.stderr)
        return 1
    params = "  ".join(f"{k}={v!r}" for k, v in r.best_params.items())
    print(f"best of {r.completed} completed trials ({r.finished} finished, {time.perf_counter() - t0:.1f}s): trial "
          f"{r.best_trial}, validation accuracy {r.best_value:.4f}  {params}")
    print(f"study  {r.study_path}\nconfig {r.config_file}" + (f"\nreport {r.report}" if r.report else ""))
    print(f"on test data: cl-lab run --method {r.method} --stream {r.stream} --config {r.config_file}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``cl-lab export RUNS --to parquet|csv``: the tidy table of every run under RUNS, one file."""
    from .tracking import export

    path = export(args.runs, args.to, args.file)
    print(f"-> {path}")
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    """``cl-lab log RUNS --to mlflow|tensorboard|wandb``: send existing run directories to trackers."""
    from .tracking import backfill

    n = backfill(args.runs, args.to, out=args.out, uri=args.tracking_uri, experiment=args.experiment or "cl_lab")
    print(f"{n} run(s) sent to {', '.join(args.to)}")
    return 0 if n else 1


def cmd_streams(args: argparse.Namespace) -> int:
    from .data.streams import is_embedded, stream_names

    for name in stream_names():
        kind = "embedded, offline" if is_embedded(name) else "real, needs data_scripts/download.py"
        print(f"{name:16s} {kind}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from .config import describe
    from .methods import get_method, method_names

    names = [args.name] if args.name else method_names()
    for name in names:
        cls = get_method(name)
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        doc = (cls.__doc__ or doc).strip().splitlines()[0] if cls.reference else doc
        print(f"{cls.name}{' (reference)' if cls.reference else ''} [{', '.join(cls.scenarios)}]: {doc}")
        if args.name:
            for row in describe(cls.Config):
                allowed = f" [{row['allowed']}]" if row["allowed"] else ""
                print(f"  {row['name']:16s} {row['type']:24s} default {row['default']!r}{allowed}  {row['help']}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .data.streams import cache_path, load_stream

    t0 = time.perf_counter()
    stream = load_stream(args.stream, seed=args.seed, cache=not args.no_cache)
    print(f"{stream} in {time.perf_counter() - t0:.1f}s -> {cache_path(args.stream, args.seed)}")
    print(stream.describe().to_string(index=False))
    return 0


def cmd_tradeoff(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .experiments.tradeoff import shown, tradeoff

    sweeps = None
    if args.sweep:
        sweeps = {}
        for spec in args.sweep:
            try:
                method, rest = spec.split(":", 1)
                knob, values = rest.split("=", 1)
                sweeps[method] = (knob, tuple(float(v) for v in values.split(",")))
            except ValueError as e:
                raise ConfigError(f"--sweep expects METHOD:KNOB=v1,v2,...; got {spec!r}") from e
    curve, table = tradeoff(args.stream, args.source, args.target, out=args.out, epochs=args.epochs,
                            seed=args.seed, progress=not args.no_progress, sweeps=sweeps)
    print(curve.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(shown(table).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_mdl(args: argparse.Namespace) -> int:
    from .mdl import MDLConfig, run_mdl
    from .results import load_mdl

    values: dict[str, Any] = {"stream": args.stream, "seed": args.seed}
    for key in ("domains", "setups"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    values.update(_parse_sets(args.set, lambda _key: MDLConfig))
    workers = args.workers if args.workers is not None else max(1, os.cpu_count() or 1)
    run_dir = run_mdl(out=args.out, run_name=args.run_name, progress=not args.no_progress, workers=workers,
                      threads=args.threads, loggers=args.loggers or (), tracking_uri=args.tracking_uri,
                      experiment=args.experiment or "cl_lab", **values)
    r = load_mdl(run_dir)
    print(r["summary"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    threshold = r["config"]["convergence_threshold"]
    if r["not_converged"]:
        print(f"NOT CONVERGED (final entropy above {threshold:.0%} of its start; these paths are close to random "
              f"draws): {', '.join(r['not_converged'])}")
    else:
        print(f"every search converged (final entropy at most {threshold:.0%} of its start)")
    if r["chance_rewards"]:
        print(f"CHANCE-LEVEL REWARD (the supernet never beat chance on these domains, so the cost term chose "
              f"their paths): {', '.join(r['chance_rewards'])}")
    print(f"path similarity (Jaccard, {r['jaccard_setup']}):")
    print(r["jaccard"].to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"-> {run_dir}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import run_grid, run_report_set

    if args.params:
        records = run_grid(args.params, out=args.out if args.out != "reports" else "reports/grid", workers=args.workers,
                           executor=args.executor, ray_address=args.ray_address, cpus_per_point=args.cpus_per_point,
                           gpus_per_point=args.gpus_per_point)
        failed = [r for r in records if not r["ok"]]
        print(f"{len(records) - len(failed)} of {len(records)} grid points ok; summary.html written")
        return 1 if failed else 0
    outcomes = run_report_set(out=args.out, only=args.only or None)
    failed = [o for o in outcomes if not o.ok]
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} reports ok; open {args.out}/index.html")
    return 1 if failed else 0


def cmd_grade(args: argparse.Namespace) -> int:
    """``cl-lab grade SUBMISSIONS --lab LAB ...``: ``cl_lab.lab.grade`` (it runs the students' code as you)."""
    from .lab.grade import main as grade_main

    return grade_main(args.rest)


def cmd_summary(args: argparse.Namespace) -> int:
    """Every run under a directory (sorted, with what it stores per task), then mean +/- std over seeds."""
    from pathlib import Path

    from .results import run_table, seed_table

    runs = run_table(args.root)
    if runs.empty:
        print(f"no runs under {args.root}")
        return 1
    fmt = lambda v: f"{v:.3f}"  # noqa: E731
    shown = runs.drop(columns=["run", "method"]).assign(extra_MB=runs.extra_bytes / 1e6).drop(columns="extra_bytes")
    if "fwt" in shown and shown.fwt.isna().all():  # forward transfer needs an 'independent' run beside it
        shown = shown.drop(columns="fwt")
    print(shown.to_string(index=False, float_format=fmt))
    means = seed_table(runs)
    if not means.empty:
        print("\nmean +/- std over seeds (complete runs):")
        pm = means[["stream", "config", "tasks"]].copy()
        for k in ("avg_accuracy", "forgetting", "fwt", "stored_per_task_pct"):
            if f"{k}_mean" in means and means[f"{k}_mean"].notna().any():
                pm[k] = [f"{m:.3f} +/- {s:.3f}" if s == s else f"{m:.3f}" for m, s in zip(means[f"{k}_mean"],
                                                                                        means[f"{k}_std"])]
        pm["seeds"] = means["avg_accuracy_count"].astype(int)
        print(pm.to_string(index=False))
    if args.csv:
        path = Path(args.csv)
        mean_path = path.with_name(f"{path.stem}-mean{path.suffix or '.csv'}")
        runs.to_csv(path, index=False)
        means.to_csv(mean_path, index=False)
        print(f"-> {path} (one row per run), {mean_path} (mean, std, count over seeds)")
    return 0


def _seed(text: str) -> int:
    from .rundir import MAX_SEED

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer between 0 and {MAX_SEED}; got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seed must be between 0 and {MAX_SEED}; got {text}")
    return value


def _positive_int(text: str) -> int:
    from .parallel import MAX_WORKERS

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to {MAX_WORKERS}; got {text!r}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to {MAX_WORKERS}; got {value}")
    return value


class HELP(argparse.HelpFormatter):
    """Every option's --help line shows its default (runner settings left unset: the runner's default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if not (d is None or d is False or d == [] or d == argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


TRACKING_OPTIONS = ("loggers", "log_every", "tracking_uri", "experiment")


def _tracking_options(p: argparse.ArgumentParser, steps: bool = True) -> None:
    """Where runs are also logged (``cl_lab.tracking``; the run directory stays the record)."""
    from .tracking import TRACKERS

    p.add_argument("--log", dest="loggers", nargs="+", choices=TRACKERS, default=None, help=_runner("loggers"))
    if steps:
        p.add_argument("--log-every", dest="log_every", type=_positive_steps, default=None,
                       help=_runner("log_every"))
    p.add_argument("--tracking-uri", dest="tracking_uri", default=None, help=_runner("tracking_uri"))
    p.add_argument("--experiment", default=None, help=_runner("experiment"))


def _positive_steps(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of steps >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of steps >= 1; got {value}")
    return value


PRETRAINED_HELP = "'auto', 'shipped', a shipped checkpoint, a weights file, 'first-task' or 'none' (default: auto)"


def _runner(key: str) -> str:
    """The runner's own help and default for an option the CLI leaves unset by default."""
    import dataclasses

    from .train.runner import RunConfig

    f = {f.name: f for f in dataclasses.fields(RunConfig)}[key]
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    return f"{f.metadata.get('help', '')} (default: {default})"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cl-lab", description="continual-learning lab")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train methods over a task stream", formatter_class=HELP)
    r.add_argument("--method", nargs="+", default=["sgd"], help="one or more method names")
    r.add_argument("--stream", default="synth-10", help="a stream name (cl-lab streams)")
    r.add_argument("--backbone", default="resnet8", help="a backbone name")
    r.add_argument("--pretrained", default=None, help=PRETRAINED_HELP)
    r.add_argument("--epochs", type=int, default=None, help=_runner("epochs"))
    r.add_argument("--batch-size", dest="batch_size", type=int, default=None, help=_runner("batch_size"))
    r.add_argument("--n-tasks", dest="n_tasks", type=int, default=None, help=_runner("n_tasks"))
    r.add_argument("--scenario", default=None, help=_runner("scenario"))
    r.add_argument("--eval-every", dest="eval_every", type=_positive_int, default=None, help=_runner("eval_every"))
    r.add_argument("--device", default=None, help=_runner("device"))
    r.add_argument("--compile", action="store_true", default=None, help=_runner("compile"))
    r.add_argument("--seed", type=_seed, default=0)
    r.add_argument("--seeds", type=_seed, nargs="+", default=None,
                   help="run every method for each seed (a sweep) and print mean +/- std")
    r.add_argument("--executor", choices=["local", "ray"], default="local", help="how a sweep runs its points")
    r.add_argument("--workers", type=_positive_int, default=None, help="local sweep: points run at once (processes)")
    r.add_argument("--threads", type=_positive_int, default=None, help="torch threads per sweep point (recorded)")
    r.add_argument("--ray-address", dest="ray_address", default=None,
                   help="an existing Ray cluster ('auto' on a cluster node); default: a local Ray instance")
    r.add_argument("--cpus-per-point", dest="cpus_per_point", type=_positive_int, default=1)
    r.add_argument("--gpus-per-point", dest="gpus_per_point", type=float, default=0)
    r.add_argument("--out", default="runs", help="folder of run directories")
    r.add_argument("--run-name", dest="run_name", default=None)
    r.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="method or runner parameters")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--config", default=None, metavar="FILE",
                   help="a best-configuration file of cl-lab tune: its parameters (under --set)")
    _tracking_options(r)
    r.set_defaults(func=cmd_run)
    tu = sub.add_parser("tune", help="tune a method's hyperparameters on validation data (an Optuna study)", formatter_class=HELP)
    tu.add_argument("--method", required=True)
    tu.add_argument("--stream", default="synth-10")
    tu.add_argument("--trials", type=int, default=20, help="trials in all (a resumed study runs the missing ones)")
    tu.add_argument("--out", default="runs/tune", help="studies go to OUT/<study>/")
    tu.add_argument("--study-name", dest="study_name", default=None)
    tu.add_argument("--space", nargs="*", default=[], metavar="KEY=KIND:...",
                    help="replace entries of the declared space: lr=log:1e-4:1e-1, alpha=float:0:1, "
                         "replay_batch_size=choice:16,32")
    tu.add_argument("--protocol", choices=["all", "first-k"], default="all",
                    help="first-k: tune on the first K tasks, report on the rest (Chaudhry et al. 2019)")
    tu.add_argument("--k", type=int, default=None, help="tuning tasks of --protocol first-k")
    tu.add_argument("--sampler-seed", dest="sampler_seed", type=_seed, default=0)
    tu.add_argument("--startup-trials", dest="startup_trials", type=int, default=10,
                    help="random trials before TPE takes over")
    tu.add_argument("--backbone", default="resnet8")
    tu.add_argument("--pretrained", default=None, help=PRETRAINED_HELP)
    tu.add_argument("--epochs", type=int, default=None, help=_runner("epochs"))
    tu.add_argument("--batch-size", dest="batch_size", type=int, default=None, help=_runner("batch_size"))
    tu.add_argument("--n-tasks", dest="n_tasks", type=int, default=None, help=_runner("n_tasks"))
    tu.add_argument("--scenario", default=None, help=_runner("scenario"))
    tu.add_argument("--device", default=None, help=_runner("device"))
    tu.add_argument("--compile", action="store_true", default=None, help=_runner("compile"))
    tu.add_argument("--seed", type=_seed, default=0, help="the runs' seed")
    tu.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="fixed method or runner parameters")
    tu.add_argument("--executor", choices=["local", "ray"], default="local")
    tu.add_argument("--workers", type=_positive_int, default=1, help="trial loops at once (processes or Ray tasks)")
    tu.add_argument("--threads", type=_positive_int, default=None, help="torch threads per worker (recorded)")
    tu.add_argument("--ray-address", dest="ray_address", default=None)
    tu.add_argument("--cpus-per-point", dest="cpus_per_point", type=_positive_int, default=1)
    tu.add_argument("--gpus-per-point", dest="gpus_per_point", type=float, default=0)
    tu.add_argument("--no-report", dest="no_report", action="store_true", help="skip the HTML report page")
    _tracking_options(tu)
    tu.set_defaults(func=cmd_tune)
    s = sub.add_parser("streams", help="list task streams", formatter_class=HELP)
    s.set_defaults(func=cmd_streams)
    m = sub.add_parser("methods", help="list methods, or one method's hyperparameters", formatter_class=HELP)
    m.add_argument("name", nargs="?")
    m.set_defaults(func=cmd_methods)
    g = sub.add_parser("generate", help="generate (and cache) an embedded stream", formatter_class=HELP)
    g.add_argument("--stream", default="synth-10")
    g.add_argument("--seed", type=_seed, default=0)
    g.add_argument("--no-cache", action="store_true")
    g.set_defaults(func=cmd_generate)
    t = sub.add_parser("tradeoff", help="ResCL's fair comparison: source/target trade-off sweeps over two tasks",
                       formatter_class=HELP)
    t.add_argument("--stream", default="synth-10")
    t.add_argument("--source", type=int, default=0)
    t.add_argument("--target", type=int, default=1)
    t.add_argument("--epochs", type=int, default=2)
    t.add_argument("--seed", type=_seed, default=0)
    t.add_argument("--out", default="runs")
    t.add_argument("--sweep", nargs="*", default=None, metavar="METHOD:KNOB=V1,V2",
                   help="sweeps to run (default: rescl:rescl_lambda, lwf:alpha, sgd:lr over five values)")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_tradeoff)
    md = sub.add_parser("mdl", help="multi-domain learning: MPNAS + ABDP and its comparisons", formatter_class=HELP)
    md.add_argument("--stream", default="synth-10", help="stream whose tasks are the domains")
    md.add_argument("--domains", default=None,
                    help="'auto' (default: the stream's domains that learn from scratch at the default budget; "
                         "synth-10: textures, scenes, art-styles, aerial), how many first tasks, or comma-separated names")
    md.add_argument("--setups", default=None, help="comma-separated subset of mpnas,mpnas-uniform,independent,"
                                                   "single-path,multi-head-nas,cost-only (default: all but cost-only)")
    md.add_argument("--seed", type=_seed, default=0)
    md.add_argument("--out", default="runs")
    md.add_argument("--run-name", dest="run_name", default=None)
    md.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="MDL parameters (search steps, space, ...)")
    md.add_argument("--workers", type=_positive_int, default=None,
                    help="setups run at once in separate processes (default: one per CPU core)")
    md.add_argument("--threads", type=_positive_int, default=None,
                    help="torch threads per worker (default: the cores divided among the workers; recorded)")
    md.add_argument("--no-progress", action="store_true")
    _tracking_options(md, steps=False)
    md.set_defaults(func=cmd_mdl)
    rp = sub.add_parser("report", help="execute the notebooks with papermill and render HTML reports", formatter_class=HELP)
    rp.add_argument("--out", default="reports", help="report directory (grids: reports/grid)")
    rp.add_argument("--only", nargs="*", default=None, help="a subset of the report set, e.g. 00_quickstart")
    rp.add_argument("--params", default=None, metavar="GRID.yaml", help="run a parameter grid instead of the report set")
    rp.add_argument("--workers", type=_positive_int, default=None, help="parallel notebook executions for a grid")
    rp.add_argument("--executor", choices=["local", "ray"], default="local", help="how a grid runs its points")
    rp.add_argument("--ray-address", dest="ray_address", default=None, help="an existing Ray cluster (default: local)")
    rp.add_argument("--cpus-per-point", dest="cpus_per_point", type=_positive_int, default=1)
    rp.add_argument("--gpus-per-point", dest="gpus_per_point", type=float, default=0)
    rp.set_defaults(func=cmd_report)
    gr = sub.add_parser("grade", help="grade a folder of lab submissions into one gradebook CSV, in parallel, with a "
                        "per-submission timeout (runs the students' code as you; cl-lab grade -h for options)",
                        add_help=False)
    gr.add_argument("rest", nargs=argparse.REMAINDER)
    gr.set_defaults(func=cmd_grade)
    ex = sub.add_parser("export", help="write every run under a directory as one tidy table (parquet or CSV)",
                        formatter_class=HELP)
    ex.add_argument("runs", help="a run directory or a folder of them")
    ex.add_argument("--to", choices=["parquet", "csv"], default="parquet")
    ex.add_argument("--file", default=None, help="output file (default: RUNS/results.parquet or .csv)")
    ex.set_defaults(func=cmd_export)
    lg = sub.add_parser("log", help="send existing run directories to TensorBoard, MLflow or W&B (backfill)",
                        formatter_class=HELP)
    lg.add_argument("runs", help="a run directory or a folder of them")
    lg.add_argument("--to", nargs="+", required=True, choices=["tensorboard", "mlflow", "wandb"])
    lg.add_argument("--out", default=None, help="folder for the trackers' files (default: RUNS)")
    lg.add_argument("--tracking-uri", dest="tracking_uri", default=None, help="MLflow tracking URI (default: "
                    "the SQLite store OUT/mlflow.db)")
    lg.add_argument("--experiment", default=None, help="MLflow experiment / W&B project (default: cl_lab)")
    lg.set_defaults(func=cmd_log)
    su = sub.add_parser("summary", help="final metrics of every run under a directory", formatter_class=HELP)
    su.add_argument("root", nargs="?", default="runs")
    su.add_argument("--csv", default=None, metavar="FILE",
                    help="also write the per-run table to FILE and the mean/std/count over seeds to FILE-mean.csv")
    su.set_defaults(func=cmd_summary)
    return p


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Options declared without help text still show their default in --help."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _show_defaults(sub)
        elif action.help is None and action.default not in (None, argparse.SUPPRESS) and action.default is not False:
            action.help = "default: %(default)s"


def main(argv: Sequence[str] | None = None) -> int:
    from .config import ConfigError
    from .models.weights import WeightsError
    from .parallel import PointsFailed
    from .rundir import RunDirError
    from .train import TrainingDiverged

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["grade"]:  # its own options, -h included, belong to cl_lab.lab.grade
        return cmd_grade(argparse.Namespace(rest=argv[1:]))
    parser = build_parser()
    _show_defaults(parser)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, RunDirError, WeightsError, TrainingDiverged, PointsFailed, ValueError, TypeError,
            FileNotFoundError) as e:
        print(f"cl-lab: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, read-only directory, name too long: one line, with the path
        where = f" {e.filename!r}" if e.filename else ""
        print(f"cl-lab: error: {e.strerror or e}{where}; check that the path is writable and the disk has space "
              "(files written before are kept)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
