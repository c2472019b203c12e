"""Runs where analysts already look: TensorBoard, MLflow and Weights & Biases (the ``tracking`` extra).

A run (``cl_lab.run(..., loggers=["tensorboard", "mlflow", "wandb"])``, CLI ``--log``) sends, besides
writing its run directory:

- every ``log_every`` training steps: each named loss term the method records (``loss``, the total;
  ``task_loss``; ``penalty`` of EWC, SI and CLR; DER++'s ``logit_replay`` and ``label_replay``, ...)
  and the learning rate, under ``train/``, against the run's global step;
- after every task: the accuracy-matrix row (``accuracy/NN_task``), the metrics of the tasks so far
  (``metrics/``) and the task's cost record (``cost/``), against the number of tasks learnt;
- once: the configuration as parameters (TensorBoard: HParams, so the runs of a sweep or a tuning
  study line up in its HParams tab), the run directory's path, and two figures (the accuracy matrix,
  first-task accuracy over time) as images.

Where things go, by default inside the run's output folder (``out``): TensorBoard event files in
``out/tensorboard/<run>``, an MLflow SQLite store ``out/mlflow.db`` with artifacts in
``out/mlartifacts`` (``tracking_uri`` names any other store or server), W&B files in ``out/wandb`` in
offline mode unless the user configured W&B (``WANDB_MODE`` or ``WANDB_API_KEY`` set, or a W&B
login in ``~/.netrc``).

The run directory stays the record: a tracker that is not installed or cannot write prints one line
naming it and the run goes on without it. ``backfill`` sends finished run directories to a tracker
after the fact (``cl-lab log RUNS --to mlflow``); ``export`` writes the tidy table of ``results.load``
(``cl-lab export RUNS --to parquet``).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .config import ConfigError

TRACKERS = ("tensorboard", "mlflow", "wandb")
"""The trackers a run can log to."""

_INSTALL = "pip install 'cl_lab[tracking]'"


def warn(message: str) -> None:
    """One line on stderr: a tracker problem never stops a run."""
    print(f"cl_lab tracking: {message}", file=sys.stderr, flush=True)


def check_trackers(names: Iterable[str] | None, where: str = "run") -> list[str]:
    """The tracker names, in order, without repeats; an unknown one is a one-line ``ConfigError``."""
    out: list[str] = []
    for n in names or ():
        if n not in TRACKERS:
            raise ConfigError(f"{where}: unknown logger {n!r}; allowed: {list(TRACKERS)}")
        if n not in out:
            out.append(n)
    return out


def flat_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's configuration as flat ``key: number|string|bool`` parameters (nested keys joined by
    '.'; lists and None as text; the stream as its name, version and content hash)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, Mapping):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)
        elif isinstance(v, bool) or isinstance(v, (int, float, str)):
            out[prefix] = v
        else:
            out[prefix] = json.dumps(v, default=str)

    cfg = dict(config)
    stream = cfg.pop("stream", None)
    if isinstance(stream, Mapping):
        cfg["stream"] = stream.get("name")
        cfg["stream_version"] = stream.get("version", "")
        cfg["stream_hash"] = stream.get("hash", "")
    elif stream is not None:
        cfg["stream"] = stream
    walk("", cfg)
    return out


def _finite(values: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            continue
        v = float(v)
        if math.isfinite(v):
            out[k] = v
    return out


def task_scalars(R: np.ndarray, i: int, task_names: Sequence[str], cost: Mapping[str, Any] | None) -> dict[str, float]:
    """What is logged after task ``i`` (0-based): its accuracy-matrix row, the metrics of the tasks so
    far (``metrics.per_task_table``'s last row) and its cost record."""
    from . import metrics as M

    out = {f"accuracy/{j + 1:02d}_{task_names[j]}": float(R[i, j]) for j in range(i + 1)}
    row = M.per_task_table(R[: i + 1])[-1]
    out.update({f"metrics/{k}": v for k, v in _finite(row).items() if k != "after_task"})
    if cost:
        out.update({f"cost/{k}": v for k, v in _finite(cost).items() if k not in ("task", "classes")})
    return out


def figures(R: np.ndarray, task_names: Sequence[str], title: str) -> dict[str, Any]:
    """Matplotlib figures of a run: the accuracy matrix and first-task accuracy over time (``Figure``
    objects, without pyplot: the session's plotting backend is left alone)."""
    from matplotlib.figure import Figure

    n = R.shape[0]
    heat = Figure(figsize=(1.2 + 0.45 * R.shape[1], 1.0 + 0.4 * n))
    ax = heat.subplots()
    im = ax.imshow(np.ma.masked_invalid(R), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(R.shape[1]), [f"{j + 1}" for j in range(R.shape[1])])
    ax.set_yticks(range(n), [f"{i + 1}" for i in range(n)])
    ax.set_xlabel("evaluated task")
    ax.set_ylabel("after training task")
    ax.set_title(f"accuracy matrix: {title}", fontsize=9)
    heat.colorbar(im, ax=ax)
    heat.tight_layout()
    curve = Figure(figsize=(5, 3))
    ax = curve.subplots()
    ax.plot(range(1, n + 1), R[:, 0], marker="o")
    ax.set_ylim(0, 1)
    ax.set_xlabel("tasks learnt")
    ax.set_ylabel(f"accuracy on task 1 ({task_names[0]})")
    ax.set_title(f"first-task accuracy over time: {title}", fontsize=9)
    curve.tight_layout()
    return {"accuracy_matrix": heat, "first_task_accuracy": curve}


# ----------------------------------------------------------------------------- the three trackers

class Tracker:
    """One tracker's side of one run. ``start`` returns an id that lets a resumed run continue the
    same tracker run (None where the tracker has none)."""

    name = ""

    def __init__(self, out: Path, uri: str | None, experiment: str):
        self.out, self.uri, self.experiment = out, uri, experiment

    def start(self, run_name: str, params: dict[str, Any], run_dir: Path, resume_id: str | None) -> str | None:
        raise NotImplementedError

    def has(self, run_dir: Path) -> bool:
        """Whether this tracker already holds the run directory (a backfill skips it)."""
        return False

    def scalars(self, values: dict[str, float], step: int, axis: str) -> None:
        raise NotImplementedError

    def figures(self, figs: dict[str, Any], step: int) -> None:
        raise NotImplementedError

    def finish(self, params: dict[str, Any], final: dict[str, float], failed: bool) -> None:
        raise NotImplementedError


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def start(self, run_name, params, run_dir, resume_id):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.logdir = Path(self.uri) if self.uri else self.out / "tensorboard" / run_name
        self.w = SummaryWriter(str(self.logdir))
        self.w.add_text("run_dir", str(run_dir))
        self.w.add_text("config", "\n".join(f"    {k}: {v}" for k, v in params.items()))
        return None

    def has(self, run_dir):
        d = Path(self.uri) if self.uri else self.out / "tensorboard" / Path(run_dir).name
        return d.is_dir() and any(d.glob("events.out.tfevents.*"))

    def scalars(self, values, step, axis):
        for k, v in values.items():
            self.w.add_scalar(k, v, step)

    def figures(self, figs, step):
        for k, fig in figs.items():
            self.w.add_figure(f"figures/{k}", fig, step, close=False)

    def finish(self, params, final, failed):
        if not failed:  # HParams: one row per run, so a sweep's or a study's runs line up
            self.w.add_hparams(params, {f"final/{k}": v for k, v in final.items()}, run_name=".")
        self.w.close()


class MLflowTracker(Tracker):
    name = "mlflow"

    def start(self, run_name, params, run_dir, resume_id):
        import logging

        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic"):  # after the import: mlflow sets its own levels then
            logging.getLogger(name).setLevel(logging.ERROR)

        from filelock import FileLock

        default = self.uri is None
        uri = default_mlflow_uri(self.out) if default else self.uri
        self.out.mkdir(parents=True, exist_ok=True)
        # the parallel points of a sweep or a study share one SQLite store: creating its tables and the
        # experiment is done by one process at a time
        with FileLock(str(self.out / ".mlflow.lock")):
            self.client = c = MlflowClient(tracking_uri=uri)
            exp = c.get_experiment_by_name(self.experiment)
            if exp is None:
                artifacts = (self.out / "mlartifacts").resolve().as_uri() if default else None
                exp_id = c.create_experiment(self.experiment, artifact_location=artifacts)
            else:
                exp_id = exp.experiment_id
        self.exp_id = exp_id
        if resume_id is not None:
            try:
                c.update_run(resume_id, status="RUNNING")
                self.run_id = resume_id
                return resume_id
            except Exception:  # noqa: BLE001 - the store was replaced: a new run
                pass
        run = self._retry(lambda: c.create_run(exp_id, run_name=run_name, tags={"cl_lab.run_dir": str(run_dir)}))
        self.run_id = run.info.run_id
        self._retry(lambda: c.log_batch(self.run_id, params=[Param(k[:250], str(v)[:6000]) for k, v in params.items()]))
        return self.run_id

    @staticmethod
    def _retry(call, tries: int = 6):
        """SQLite answers 'database is locked' while another point writes: wait and try again."""
        for i in range(tries):
            try:
                return call()
            except Exception as e:  # noqa: BLE001
                if "locked" not in str(e).lower() or i == tries - 1:
                    raise
                time.sleep(0.2 * 2 ** i)

    def has(self, run_dir: Path) -> bool:
        """Whether the store already holds a run of this run directory (a backfill skips it)."""
        from mlflow.tracking import MlflowClient

        c = MlflowClient(tracking_uri=default_mlflow_uri(self.out) if self.uri is None else self.uri)
        exp = c.get_experiment_by_name(self.experiment)
        if exp is None:
            return False
        safe = str(run_dir).replace("'", "\\'")
        return bool(c.search_runs([exp.experiment_id], filter_string=f"tags.`cl_lab.run_dir` = '{safe}'",
                                  max_results=1))

    def scalars(self, values, step, axis):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        ms = [Metric(k, v, now, step) for k, v in values.items()]
        for b in range(0, len(ms), 1000):
            self._retry(lambda b=b: self.client.log_batch(self.run_id, metrics=ms[b: b + 1000]))

    def figures(self, figs, step):
        for k, fig in figs.items():
            self.client.log_figure(self.run_id, fig, f"figures/{k}.png")

    def finish(self, params, final, failed):
        self._retry(lambda: self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED"))


def default_mlflow_uri(out: Path) -> str:
    """The SQLite store of an output folder: ``mlflow ui --backend-store-uri`` opens it."""
    return f"sqlite:///{(Path(out) / 'mlflow.db').resolve()}"


def wandb_mode() -> str:
    """'offline' unless the user configured W&B (``WANDB_MODE``, ``WANDB_API_KEY`` or a login in ~/.netrc)."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path.home() / ".netrc"
    try:
        return "online" if netrc.exists() and "api.wandb.ai" in netrc.read_text() else "offline"
    except OSError:
        return "offline"


class WandbTracker(Tracker):
    name = "wandb"

    def start(self, run_name, params, run_dir, resume_id):
        import wandb

        (self.out / "wandb").mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=self.experiment, name=run_name, config=params, dir=str(self.out),
                              mode=wandb_mode(), id=resume_id, resume="allow" if resume_id else None,
                              notes=str(run_dir), reinit="create_new",
                              settings=wandb.Settings(silent=True, console="off"))
        # two x axes: training steps and tasks learnt
        self.run.define_metric("train/step")
        self.run.define_metric("train/*", step_metric="train/step")
        self.run.define_metric("tasks_learnt")
        for prefix in ("accuracy", "metrics", "cost", "figures"):
            self.run.define_metric(f"{prefix}/*", step_metric="tasks_learnt")
        return self.run.id

    def scalars(self, values, step, axis):
        self.run.log({**values, ("train/step" if axis == "step" else "tasks_learnt"): step})

    def figures(self, figs, step):
        import wandb

        self.run.log({**{f"figures/{k}": wandb.Image(f) for k, f in figs.items()}, "tasks_learnt": step})

    def finish(self, params, final, failed):
        for k, v in final.items():
            self.run.summary[f"final/{k}"] = v
        self.run.finish(exit_code=1 if failed else 0)


_CLASSES = {"tensorboard": TensorBoardTracker, "mlflow": MLflowTracker, "wandb": WandbTracker}
_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


# ----------------------------------------------------------------------------- a run's trackers

class RunTrackers:
    """The trackers of one run; a tracker that fails is dropped with one line, the others go on."""

    def __init__(self, names: Sequence[str], out: str | Path, *, uri: str | None = None,
                 experiment: str = "cl_lab"):
        import importlib.util

        self.active: list[Tracker] = []
        self.params: dict[str, Any] = {}
        out = Path(out).expanduser()
        for n in check_trackers(names):
            if importlib.util.find_spec(_PACKAGES[n]) is None:
                warn(f"{n} is not installed ({_INSTALL}); the run goes on without it")
                continue
            self.active.append(_CLASSES[n](out, uri if n == "mlflow" else None, experiment))

    def __bool__(self) -> bool:
        return bool(self.active)

    def _each(self, what: str, call) -> None:
        for t in list(self.active):
            try:
                call(t)
            except Exception as e:  # noqa: BLE001 - a tracker never stops a run
                msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
                warn(f"{t.name} stopped logging ({what}: {type(e).__name__}{': ' + msg if msg else ''}); "
                     "the run goes on, its run directory is the record")
                self.active.remove(t)

    def start(self, run_name: str, config: Mapping[str, Any], run_dir: Path, resume: bool = True) -> None:
        """Start each tracker's run. With ``resume``, a run id kept in ``<run>/tracking.json`` (a resumed
        run) is continued; ``self.ids`` holds the ids to keep there (the runner writes them with its
        checkpoint, so a run that fails before its first checkpoint still leaves nothing behind)."""
        self.params = flat_params({k: v for k, v in config.items() if k not in ("versions", "tracking_uri")})
        self.params["run_dir"] = str(run_dir)
        ids_file = Path(run_dir) / "tracking.json"
        ids: dict[str, str] = {}
        if resume and ids_file.exists():
            try:
                ids = json.loads(ids_file.read_text())
            except (OSError, ValueError):
                ids = {}
        self.ids = dict(ids)

        def go(t: Tracker) -> None:
            rid = t.start(run_name, self.params, Path(run_dir), ids.get(t.name))
            if rid is not None:
                self.ids[t.name] = rid

        self._each("start", go)

    def _guarded(self, what: str, call) -> None:
        """Work on our side of the trackers (numbers, figures): a failure drops every tracker, never the run."""
        try:
            call()
        except Exception as e:  # noqa: BLE001 - a tracker never stops a run
            warn(f"logging stopped ({what}: {type(e).__name__}: {str(e).strip()[:200]}); the run goes on, its run "
                 "directory is the record")
            self.active = []

    def step(self, values: Mapping[str, Any], step: int) -> None:
        self._guarded("step", lambda: self._each("step", lambda t, v=_finite(
            {k: float(x) for k, x in values.items()}): t.scalars(v, step, "step")))

    def task(self, R: np.ndarray, i: int, task_names: Sequence[str], cost: Mapping[str, Any] | None) -> None:
        def go() -> None:
            values = task_scalars(R, i, task_names, cost)
            self._each("task", lambda t: t.scalars(values, i + 1, "task"))

        self._guarded("task", go)

    def finish(self, R: np.ndarray | None, task_names: Sequence[str], title: str, failed: bool = False,
               partial: bool = False) -> None:
        final: dict[str, float] = {}

        def go() -> None:
            if R is not None and len(R) and not failed:
                from . import metrics as M

                final.update(_finite({"avg_accuracy": float(M.average_accuracy(R)[-1]), "bwt": M.bwt(R),
                                      "forgetting": M.forgetting(R)}))
                if self.active:
                    figs = figures(R, task_names, title)
                    self._each("figures", lambda t: t.figures(figs, len(R)))

        self._guarded("figures", go)
        self._each("finish", lambda t: t.finish(self.params, final, failed or partial))
        self.active = []


def open_run(names: Sequence[str], out: str | Path, run_name: str, config: Mapping[str, Any], run_dir: Path, *,
             uri: str | None = None, experiment: str = "cl_lab") -> RunTrackers:
    """The started trackers of one run (possibly none, after one-line warnings)."""
    t = RunTrackers(names, out, uri=uri, experiment=experiment)
    if t:
        t.start(run_name, config, run_dir)
    return t


# ----------------------------------------------------------------------------- after the fact

def backfill(runs: str | Path, to: Sequence[str], *, out: str | Path | None = None, uri: str | None = None,
             experiment: str = "cl_lab") -> int:
    """Send every finished or partial run directory under ``runs`` to the trackers ``to``: the
    configuration, each task's accuracy row, metrics and costs, the step-resolution evaluations
    (``steps.csv``, as ``steps/`` scalars) and the figures. Per-step loss terms are not in a run
    directory, so they are only logged live. ``out`` (default: ``runs``) holds the trackers' files.
    Returns the number of runs sent."""
    from . import results

    to = check_trackers(to, "log")
    if not to:
        raise ConfigError(f"log: name at least one tracker; allowed: {list(TRACKERS)}")
    root = Path(runs)
    dirs = results.run_dirs(root)
    base = Path(out) if out is not None else (root if root.is_dir() and not (root / "config.json").exists()
                                               else root.parent)
    sent = 0
    for d in dirs:
        cfg = results.read_config(d)
        R = results.accuracy_matrix(d)
        names = results.task_names(d)
        costs = results.read_table(d, "costs.csv").to_dict("records") if (d / "costs.csv").exists() else []
        t = RunTrackers(to, base, uri=uri, experiment=experiment)
        held = [x.name for x in t.active if _safe_has(x, d)]
        if held:
            warn(f"{d.name} is already in {', '.join(held)}; skipped there")
            t.active = [x for x in t.active if x.name not in held]
        if not t:
            continue
        t.start(cfg.get("run_name", d.name), cfg, d, resume=False)  # a copy of its own; the run dir is only read
        steps = d / "steps.csv"
        if steps.exists():
            import pandas as pd

            for r in pd.read_csv(steps).itertuples():
                t.step({f"steps/accuracy_{int(r.eval_task) + 1:02d}_{r.eval_task_name}": float(r.accuracy)},
                       int(r.global_step))
        for i in range(R.shape[0]):
            t.task(R, i, names, costs[i] if i < len(costs) else None)
        complete = results.run_status(d) == "complete"
        stream = cfg["stream"]["name"] if isinstance(cfg["stream"], dict) else cfg["stream"]
        t.finish(R, names, f"{cfg['method']} on {stream}", partial=not complete)
        sent += 1
    return sent


def _safe_has(t: Tracker, run_dir: Path) -> bool:
    try:
        return t.has(run_dir)
    except Exception:  # noqa: BLE001 - cannot tell: send it
        return False


EXPORT_FORMATS = ("parquet", "csv")


def export(runs: str | Path, to: str, path: str | Path | None = None) -> Path:
    """Write the tidy table of every run under ``runs`` (``results.load``: one row per accuracy-matrix
    entry with the run's method, configuration label, seed, scenario and thread count) as one file."""
    from . import results

    if to not in EXPORT_FORMATS:
        raise ConfigError(f"export: unknown format {to!r}; allowed: {list(EXPORT_FORMATS)}")
    df = results.load(runs)
    if df.empty:
        raise ConfigError(f"export: no run directories with results under {str(runs)!r}")
    root = Path(runs)
    path = Path(path) if path is not None else (root if root.is_dir() else root.parent) / f"results.{to}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if to == "parquet":
        try:
            df.to_parquet(tmp, index=False)
        except ImportError as e:
            raise ConfigError(f"export: writing parquet needs pyarrow ({_INSTALL}); or use --to csv") from e
    else:
        df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def log_mdl(run_dir: str | Path, to: Sequence[str], *, out: str | Path | None = None, uri: str | None = None,
            experiment: str = "cl_lab") -> bool:
    """Send a finished MDL run directory (``cl_lab.mdl.run_mdl``) to trackers, one tracker run for the
    MDL run: its configuration, per setup the summary (``mdl/<setup>/...``) and each domain's accuracy
    and MACs (``mdl/<setup>/accuracy/<domain>``), and the controllers' search history
    (``search/<setup>/<domain>/reward`` and entropy, against the search step)."""
    from .results import load_mdl

    r = load_mdl(run_dir)
    d = Path(run_dir)
    t = RunTrackers(check_trackers(to, "mdl"), Path(out) if out is not None else d.parent, uri=uri,
                    experiment=experiment)
    if not t:
        return False
    t.start(d.name, r["config"], d, resume=False)
    final: dict[str, float] = {}
    for row in r["summary"].to_dict("records"):
        vals = {f"mdl/{row['setup']}/{k}": v for k, v in _finite(row).items()}
        final.update(vals)
    for row in r["results"].to_dict("records"):
        final[f"mdl/{row['setup']}/accuracy/{row['domain']}"] = float(row["accuracy"])
        final[f"mdl/{row['setup']}/macs/{row['domain']}"] = float(row["macs"])
    t._each("mdl", lambda tr: tr.scalars(final, 0, "task"))
    h = r["history"]
    if len(h) and "step" in h:
        keys = [c for c in ("reward", "entropy", "baseline", "top_probability") if c in h]
        for rec in h.to_dict("records"):
            domain = rec.get("domain")
            where = rec["setup"] + (f"/{domain}" if isinstance(domain, str) else "")
            vals = _finite({f"search/{where}/{k}": rec[k] for k in keys})
            if vals:
                t._each("search", lambda tr, v=vals, s=int(rec["step"]): tr.scalars(v, s, "step"))
    t._each("finish", lambda tr: tr.finish(t.params, {}, False))
    t.active = []
    return True


# ----------------------------------------------------------------------------- the trackers' own UIs

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TrackerUI:
    """A tracker's web UI over an output folder, as a user starts it, on 127.0.0.1 and a free port:
    ``mlflow ui --backend-store-uri sqlite:///OUT/mlflow.db`` or ``tensorboard --logdir OUT/tensorboard``.
    A context manager: the server (and every process it started) stops on exit.

        with TrackerUI("mlflow", "runs") as ui:
            print(ui.url)
    """

    def __init__(self, kind: str, out: str | Path, port: int | None = None, timeout: float = 120.0):
        if kind not in ("mlflow", "tensorboard"):
            raise ConfigError(f"ui: unknown tracker UI {kind!r}; allowed: ['mlflow', 'tensorboard']")
        self.kind, self.out, self.timeout = kind, Path(out).expanduser(), timeout
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = None

    def command(self) -> list[str]:
        bindir = Path(sys.executable).parent
        if self.kind == "mlflow":
            exe = bindir / "mlflow"
            return [str(exe) if exe.exists() else "mlflow", "ui", "--backend-store-uri", default_mlflow_uri(self.out),
                    "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        exe = bindir / "tensorboard"
        return [str(exe) if exe.exists() else "tensorboard", "--logdir", str(self.out / "tensorboard"),
                "--host", "127.0.0.1", "--port", str(self.port)]

    def __enter__(self) -> TrackerUI:
        import subprocess
        import urllib.request

        self.log = open(self.out / f".{self.kind}-ui.log", "w")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                self.__exit__(None, None, None)
                raise RuntimeError(f"{self.kind} UI exited with code {self.proc.returncode}; see "
                                   f"{self.out / f'.{self.kind}-ui.log'}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise TimeoutError(f"{self.kind} UI did not answer at {self.url} within {self.timeout:.0f} s")

    def __exit__(self, *exc: Any) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except Exception:  # noqa: BLE001 - make sure it is gone
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        if getattr(self, "log", None) is not None:
            self.log.close()
            self.log = None
