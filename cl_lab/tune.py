"""Hyperparameter tuning: a seeded Optuna study of ordinary runs, scored on validation data only.

    import cl_lab
    r = cl_lab.tune("ewc", "synth-10", trials=30, epochs=4, n_tasks=5)
    r.best_params, r.best_value      # the best trial (final average validation accuracy)
    cl_lab.run("ewc", "synth-10", config=r.config_file)       # the tuned configuration, on test data

Every trial is an ordinary ``cl_lab.run(method, stream, eval_split="val", ...)`` into
``<out>/<study>/runs/``, scored by its final average accuracy on the tasks' validation splits;
the test split is never read while tuning (``eval_split="test"`` is refused). A trial that
diverges is recorded as pruned and one that raises as failed, with its error; neither stops
the study.

The study lives in ``<out>/<study>/study.db`` (Optuna's SQLite storage), so it resumes where
it stopped: re-running the same call after a kill runs only the trials still missing. A trial
that was interrupted (Ctrl-C, ``kill -9``) is marked failed and run again with the same
parameters, and its run directory resumes after its last completed task. Suggestions come
from a TPE sampler whose randomness for each trial is derived from ``sampler_seed`` and the
trial's place in the study (interrupted trials do not count), so an interrupted and resumed
study proposes the same parameters, and finds the same best trial, as an uninterrupted one.

``workers > 1`` (processes) or ``executor="ray"`` run several trial loops at once through
``cl_lab.parallel.run_points``, all against the same SQLite storage (results then depend on
timing, as with any parallel TPE). One process at a time drives a study (a lock on
``<study>/.lock``).

Search spaces: each method declares ``search_space`` next to its ``Config`` (the base
``Method`` declares the learning rate, one range for every method); ``space=`` replaces it.
A spec is ``("log", low, high)``, ``("float", low, high)``, ``("int", low, high)`` or
``("choice", [v1, v2, ...])``. A parameter given as a keyword argument is fixed and leaves the
declared space.

Protocol ``"first-k"`` (Chaudhry et al. 2019, "Efficient Lifelong Learning with A-GEM"): tune
on the stream's first ``k`` tasks; the best-configuration file then names the remaining tasks,
and ``cl_lab.run(method, stream, config=FILE)`` reports on those only.

The study ends with ``best_config.json`` (``{"method", "stream", "params", "value", "study",
"trials", ...}``; what ``cl-lab run --config FILE`` and ``cl_lab.run(..., config=FILE)`` accept)
and ``report.html`` (optimisation history, parameter importances and slices: Optuna's plotly
figures, offline).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from .config import ConfigError

MAX_TRIALS = 10_000
PROTOCOLS = ("all", "first-k")
SPEC_KINDS = ("log", "float", "int", "choice")
DB = "study.db"
BEST_CONFIG = "best_config.json"
REPORT = "report.html"
RUNS = "runs"
LOCK = ".lock"
PLOTLY_JS = "plotly.min.js"
METRIC = "final average validation accuracy"
SPEC_HELP = "('log', low, high), ('float', low, high), ('int', low, high) or ('choice', [v1, v2, ...])"
SQLITE_TIMEOUT = 60
"""Seconds a worker waits for another worker's write to the SQLite file before giving up."""


class TuneError(RuntimeError):
    """A study finished without any completed trial, or a worker of a parallel study died."""


@dataclass
class TuneResult:
    """What a study found: the best trial's parameters and score, and where everything is."""

    method: str
    stream: str
    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    study_name: str
    study_dir: Path
    study_path: Path
    config_file: Path
    report: Path | None
    completed: int
    finished: int

    def trials(self):
        """Every trial of the study as a pandas DataFrame (Optuna's ``trials_dataframe``)."""
        return load_study(self.study_path).trials_dataframe()


@dataclass
class _Setup:
    """A validated study, ready to run: picklable, so parallel workers receive it whole."""

    method: str
    stream: Any
    stream_name: str
    fixed: dict[str, Any]
    space: dict[str, tuple]
    trials: int
    protocol: str
    k: int | None
    report_tasks: list[str] | None
    sampler_seed: int
    startup_trials: int
    study_name: str
    study_dir: Path
    method_fixed: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return self.study_dir / DB

    @property
    def runs_dir(self) -> Path:
        return self.study_dir / RUNS


# ----------------------------------------------------------------------------- search spaces

STUDY_IDENTITY_DEFAULTS = {"compile": False}
"""Runner settings added after studies existed: at these values they leave a study's name as before."""

def _field_type(method_cls: type, name: str) -> Any:
    """int, float or None (anything else: a choice only) for a field of the method's Config."""
    tp = typing.get_type_hints(method_cls.Config)[name]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is not Literal and len(args) == 1:
        tp = args[0]
    return tp if tp in (int, float) else None


def _check_value(method_cls: type, name: str, value: Any, where: str) -> Any:
    """A bound or a choice, checked against the Config field's type and allowed range."""
    from .config import _allowed, _check_type, _in_range

    f = {f.name: f for f in dataclasses.fields(method_cls.Config)}[name]
    value = _check_type(name, value, typing.get_type_hints(method_cls.Config)[name], where)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not _in_range(float(value), f.metadata):
        raise ConfigError(f"{where}: {name}={value!r} in the search space is out of range; allowed: "
                          f"{_allowed(f.metadata)}")
    return value


def _check_spec(method_cls: type, name: str, spec: Any, where: str) -> tuple:
    bad = f"{where}: {name}={spec!r} is not a search range; use {SPEC_HELP}"
    if isinstance(spec, list):
        spec = tuple(spec)
    if not isinstance(spec, tuple) or not spec or spec[0] not in SPEC_KINDS:
        raise ConfigError(bad)
    kind = spec[0]
    if kind == "choice":
        if len(spec) != 2 or not isinstance(spec[1], (list, tuple)) or not spec[1]:
            raise ConfigError(f"{where}: {name}: ('choice', [...]) needs a non-empty list of values; got {spec!r}")
        values = list(spec[1])
        if any(not isinstance(v, (type(None), bool, int, float, str)) for v in values):
            raise ConfigError(f"{where}: {name}: choices must be numbers, strings, booleans or None; got {values!r}")
        if len({json.dumps(v) for v in values}) != len(values):
            raise ConfigError(f"{where}: {name}: the choices {values!r} repeat a value")
        return ("choice", [_check_value(method_cls, name, v, where) for v in values])
    if len(spec) != 3:
        raise ConfigError(bad)
    lo, hi = spec[1], spec[2]
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{where}: {name}: the bounds of {kind!r} must be finite numbers; got {spec!r}")
    ftype = _field_type(method_cls, name)
    if ftype is None:
        raise ConfigError(f"{where}: {name} is not a number; search it with ('choice', [...])")
    if kind == "float" and ftype is int:
        raise ConfigError(f"{where}: {name} is an integer; search it with ('int', low, high) or ('log', low, high)")
    if (kind == "int" or ftype is int) and not all(float(v).is_integer() for v in (lo, hi)):
        raise ConfigError(f"{where}: {name}: integer bounds needed for {spec!r}")
    if not lo < hi:
        raise ConfigError(f"{where}: {name}: the low bound must be below the high bound; got {spec!r}")
    if kind == "log" and lo <= 0:
        raise ConfigError(f"{where}: {name}: a 'log' range needs a low bound above 0; got {spec!r}")
    if kind == "int" or ftype is int:
        lo, hi = int(lo), int(hi)
    return (kind, _check_value(method_cls, name, lo, where), _check_value(method_cls, name, hi, where))


def check_space(method_cls: type, space: Any) -> dict[str, tuple]:
    """The search space in canonical form, or a one-line ``ConfigError`` (unknown parameter,
    empty space, malformed range, bounds outside what the parameter allows)."""
    where = f"tune {method_cls.name}"
    if not isinstance(space, Mapping):
        raise ConfigError(f"{where}: the search space must be a mapping name -> {SPEC_HELP}; got {space!r}")
    if not space:
        raise ConfigError(f"{where}: the search space is empty; give at least one parameter, e.g. "
                          "{'lr': ('log', 1e-4, 1e-1)}")
    fields = sorted(f.name for f in dataclasses.fields(method_cls.Config))
    out = {}
    for name, spec in space.items():
        if name not in fields:
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: unknown parameter {name!r} in the search space; {method_cls.name} "
                              f"parameters: {fields}.{hint}")
        out[name] = _check_spec(method_cls, name, spec, where)
    return out


def parse_space(method: str, pairs: Sequence[str]) -> dict[str, tuple]:
    """``KEY=log:LOW:HIGH``, ``KEY=float:LOW:HIGH``, ``KEY=int:LOW:HIGH``, ``KEY=choice:A,B,C`` strings
    (the command line's ``--space``) -> the method's declared space with these entries replaced."""
    from .config import coerce_cli
    from .methods import get_method

    cls = get_method(method)
    space = dict(cls.search_space)
    for pair in pairs:
        key, sep, text = pair.partition("=")
        kind, _, rest = text.partition(":")
        key = key.strip().replace("-", "_")
        if not sep or kind not in SPEC_KINDS or not rest:
            raise ConfigError(f"--space expects KEY=log:LOW:HIGH, KEY=float:LOW:HIGH, KEY=int:LOW:HIGH or "
                              f"KEY=choice:A,B,...; got {pair!r}")
        if kind == "choice":
            space[key] = ("choice", [coerce_cli(cls.Config, key, v.strip()) for v in rest.split(",")])
            continue
        try:
            lo, hi = (float(v) for v in rest.split(":"))
        except ValueError:
            raise ConfigError(f"--space {pair!r}: expected {kind}:LOW:HIGH with two numbers") from None
        space[key] = (kind, lo, hi)
    return space


def _suggest(trial: Any, method_cls: type, name: str, spec: tuple) -> Any:
    kind = spec[0]
    if kind == "choice":
        return trial.suggest_categorical(name, list(spec[1]))
    if kind == "int" or _field_type(method_cls, name) is int:
        return trial.suggest_int(name, int(spec[1]), int(spec[2]), log=kind == "log")
    return trial.suggest_float(name, float(spec[1]), float(spec[2]), log=kind == "log")


# ----------------------------------------------------------------------------- validation

def _count(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"tune: {name}={value!r} is not allowed; use an integer from {low} to {high}")
    return value


def _require_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError("tuning needs Optuna: pip install 'cl_lab[lab]' (or pip install optuna)") from None
    return optuna


def _plan(method: str, stream: Any, trials: Any, *, out: str | Path, study_name: str | None, sampler_seed: Any,
          startup_trials: Any, space: Any, protocol: str, k: Any, run_kwargs: dict[str, Any]) -> _Setup:
    """Every check, before any file is written or any data generated."""
    from .data.streams import embedded_task_names, load_stream
    from .data.task import TaskStream
    from .methods import get_method
    from .methods.base import LR_RANGE
    from .rundir import MAX_SEED, NAME_PATTERN, canonical, default_name
    from .train.runner import TRACKING, prepare, split_kwargs

    _require_optuna()
    cls = get_method(method)
    _count(trials, "trials", 1, MAX_TRIALS)
    _count(sampler_seed, "sampler_seed", 0, MAX_SEED)
    _count(startup_trials, "startup_trials", 0, MAX_TRIALS)
    fixed = dict(run_kwargs)
    if fixed.get("eval_split", "val") != "val":
        raise ConfigError(f"tune: eval_split={fixed['eval_split']!r} is not allowed: trials are scored on validation "
                          "data only; run the tuned configuration on test data afterwards (cl_lab.run(..., config=FILE))")
    fixed.pop("eval_split", None)
    for key in ("run_name", "resume"):
        if key in fixed:
            raise ConfigError(f"tune: {key} is set by the study for every trial; leave it out")
    fixed.setdefault("progress", False)
    _, fixed_method = split_kwargs(cls, {k_: v for k_, v in fixed.items() if k_ != "backbone"})

    if space is None:
        declared = dict(cls.search_space)
        optimizer = fixed_method.get("optimizer")
        default_optimizer = {f.name: f.default for f in dataclasses.fields(cls.Config)}.get("optimizer")
        if optimizer in LR_RANGE and declared.get("lr") == LR_RANGE.get(default_optimizer):
            declared["lr"] = LR_RANGE[optimizer]  # the range follows an optimiser given as a fixed setting
        space = {n: s for n, s in declared.items() if n not in fixed_method}
        if not space:
            raise ConfigError(f"tune {cls.name}: the search space is empty: every parameter of the declared space "
                              f"{sorted(declared)} is fixed by a keyword argument")
    else:
        both = sorted(set(space) & set(fixed_method)) if isinstance(space, Mapping) else []
        if both:
            raise ConfigError(f"tune {cls.name}: {both} is both searched (space) and fixed (keyword argument); "
                              "choose one")
    space = check_space(cls, space)

    if protocol not in PROTOCOLS:
        raise ConfigError(f"tune: protocol={protocol!r} is not allowed; choose one of {list(PROTOCOLS)}")
    if isinstance(stream, TaskStream):
        stream_name, names = stream.name, [t.name for t in stream]
    elif isinstance(stream, str):
        stream_name = stream
        names = embedded_task_names(stream)
    else:
        raise ConfigError(f"tune: stream must be a stream name or a TaskStream; got {type(stream).__name__}")
    report_tasks = None
    if protocol == "all":
        if k is not None:
            raise ConfigError("tune: k is the number of tuning tasks of protocol='first-k'; leave it out with 'all'")
    else:
        if "n_tasks" in fixed:
            raise ConfigError("tune: protocol='first-k' sets n_tasks=k for every trial; leave n_tasks out")
        if k is None:
            raise ConfigError("tune: protocol='first-k' needs k, the number of first tasks to tune on (e.g. k=3)")
        _count(k, "k", 1, 10_000)
        if names is None:  # a real stream: its task names are known once it is loaded (prepare checks the name)
            prepare(cls.name, stream, **fixed)
            names = [t.name for t in load_stream(stream, seed=fixed.get("stream_seed", 0))]
        if k >= len(names):
            raise ConfigError(f"tune: protocol='first-k' with k={k} leaves no task to report on: stream "
                              f"{stream_name!r} has {len(names)} tasks; use k from 1 to {len(names) - 1}")
        fixed["n_tasks"] = k
        report_tasks = names[k:]

    def corner(i: int) -> dict[str, Any]:
        return {n: (s[1][0 if i == 1 else -1] if s[0] == "choice" else s[i]) for n, s in space.items()}

    plans = [prepare(cls.name, stream, out=str(Path(out) / "_" / RUNS), eval_split="val", **fixed, **corner(i))
             for i in (1, 2)]  # the lowest and the highest corner of the space, with everything else fixed

    backbone = fixed.get("backbone", "resnet8")
    if not isinstance(backbone, str):
        from .models.backbones import module_digest

        backbone = f"{type(backbone).__name__}:{module_digest(backbone)[:16]}"
    resolved_run = {k_: v for k_, v in dataclasses.asdict(plans[0].config).items()
                    if k_ not in ("out", "run_name", "resume", "progress", "backbone", *TRACKING)
                    and not (k_ in STUDY_IDENTITY_DEFAULTS and v == STUDY_IDENTITY_DEFAULTS[k_])}
    resolved_method = {k_: v for k_, v in dataclasses.asdict(plans[0].method_config).items() if k_ not in space}
    identity = canonical({  # every setting resolved, so a default given explicitly names the same study
        "method": cls.name, "stream": stream_name,
        "stream_hash": stream.content_hash() if isinstance(stream, TaskStream) else None,
        "space": space, "fixed": resolved_method, "run": resolved_run, "backbone": backbone, "protocol": protocol,
        "k": k, "sampler_seed": sampler_seed, "startup_trials": startup_trials, "metric": METRIC,
    })
    if study_name is None:
        study_name = default_name(f"{stream_name}_{cls.name}" + (f"_first{k}" if protocol == "first-k" else ""),
                                  identity)
    else:
        import re

        from .rundir import MAX_NAME

        if not isinstance(study_name, str) or not re.fullmatch(NAME_PATTERN, study_name) \
                or study_name in (".", "..") or len(study_name) > MAX_NAME:
            raise ConfigError(f"tune: study_name={study_name!r} is not allowed; use 1-{MAX_NAME} letters, digits and "
                              ". _ + - (not '.' or '..', no '/')")
    if fixed.get("loggers"):  # a study's trials are logged together: one experiment (W&B: project) per study
        fixed.setdefault("experiment", study_name)
    return _Setup(cls.name, stream, stream_name, fixed, space, trials, protocol, k, report_tasks, sampler_seed,
                  startup_trials, study_name, Path(out).expanduser() / study_name, fixed_method, identity)


# ----------------------------------------------------------------------------- the sampler

def _derive(*parts: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def _slot(trials: Sequence[Any], number: int) -> int:
    """A trial's place in the study: its number less the re-runs of interrupted trials before it
    (a re-run takes the place of the trial it repeats, and carries it in ``user_attrs['slot']``)."""
    return number - sum(1 for t in trials if t.number < number and "retry_of" in t.user_attrs)


def _sampler(seed: int, startup_trials: int) -> Any:
    """Optuna's TPE sampler, re-created for every trial with a seed derived from ``seed`` and the
    trial's slot: its suggestions depend on the completed trials and the slot only, not on which
    process asks or how often the study was restarted."""
    import optuna

    class SlotSeededTPE(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self._inner = self._make(0)

        @staticmethod
        def _make(slot: int) -> Any:
            return optuna.samplers.TPESampler(seed=_derive(seed, slot), n_startup_trials=startup_trials)

        def before_trial(self, study: Any, trial: Any) -> None:
            slot = trial.user_attrs.get("slot")
            if slot is None:
                slot = _slot(study.get_trials(deepcopy=False), trial.number)
            self._inner = self._make(slot)
            self._inner.before_trial(study, trial)

        def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
            return self._inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
            return self._inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
            return self._inner.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._inner.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self._inner.reseed_rng()

    return SlotSeededTPE()


def _storage(db: Path) -> Any:
    import optuna

    return optuna.storages.RDBStorage(f"sqlite:///{db.resolve()}",
                                      engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT}})


def _open_study(setup: _Setup, create: bool = False) -> Any:
    import optuna

    sampler = _sampler(setup.sampler_seed, setup.startup_trials)
    if create:
        return optuna.create_study(study_name=setup.study_name, storage=_storage(setup.db), direction="maximize",
                                   sampler=sampler, load_if_exists=True)
    return optuna.load_study(study_name=setup.study_name, storage=_storage(setup.db), sampler=sampler)


# ----------------------------------------------------------------------------- trials

def _run_trial(setup: _Setup, params: dict[str, Any]) -> tuple[float, str]:
    """One trial: an ordinary run on validation data; its final average accuracy and run directory."""
    from .train.runner import run

    r = run(setup.method, setup.stream, out=str(setup.runs_dir), eval_split="val", **setup.fixed, **params)
    return float(r.summary()["avg_accuracy"]), str(r.run_dir)


def _row(t: Any) -> dict[str, Any]:
    return {"number": t.number, "slot": t.user_attrs.get("slot"), "state": t.state.name, "value": t.value,
            "params": dict(t.params), "error": t.user_attrs.get("error", ""), "run_dir": t.user_attrs.get("run_dir")}


def _optimize(study: Any, setup: _Setup, n: int, on_trial: Callable[[dict], None] | None = None) -> None:
    """``n`` trials by ask and tell: a re-run of an interrupted trial first (queued), then new ones."""
    from optuna.trial import TrialState

    from .methods import get_method
    from .train import TrainingDiverged

    cls = get_method(setup.method)
    for _ in range(n):
        trial = study.ask()
        if "slot" not in trial.user_attrs:
            trial.set_user_attr("slot", _slot(study.get_trials(deepcopy=False), trial.number))
        params = {name: _suggest(trial, cls, name, spec) for name, spec in setup.space.items()}
        try:
            value, run_dir = _run_trial(setup, params)
        except TrainingDiverged as e:
            trial.set_user_attr("error", f"diverged: {e}"[:500])
            frozen = study.tell(trial, state=TrialState.PRUNED)
        except Exception as e:  # a failed trial is recorded with its error; the study goes on
            trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:500])
            frozen = study.tell(trial, state=TrialState.FAIL)
        except BaseException:  # interrupted: recorded without an error, so a resume runs it again
            study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            trial.set_user_attr("run_dir", run_dir)
            frozen = study.tell(trial, value)
        if on_trial is not None:
            on_trial(_row(frozen))


def _interrupted(trials: Sequence[Any]) -> list[Any]:
    """Trials stopped from outside (failed without an error of their own) and not re-run yet."""
    from optuna.trial import TrialState

    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    return [t for t in trials if t.state == TrialState.FAIL and "error" not in t.user_attrs
            and t.number not in retried]


def _finished(trials: Sequence[Any]) -> int:
    from optuna.trial import TrialState

    return sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and "error" in t.user_attrs))


def _recover(study: Any, remaining: int) -> None:
    """After a kill: a trial still RUNNING has no process any more (this process holds the study's
    lock), so it is marked failed; each interrupted trial is queued again with its parameters."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    waiting = sum(1 for t in trials if t.state == TrialState.WAITING)
    for t in _interrupted(trials)[: max(0, remaining - waiting)]:
        study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number, "slot": t.user_attrs.get(
            "slot", _slot(trials, t.number))})


def _worker(job: dict[str, Any]) -> dict[str, Any]:
    """One trial loop of a parallel study (a process of the pool or a Ray task)."""
    import optuna
    import torch

    torch.set_num_threads(job["threads"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _open_study(job["setup"])
    _optimize(study, job["setup"], job["n"])
    return {"ok": True, "n": job["n"], "error": ""}


def _worker_failed(job: dict[str, Any], error: str) -> dict[str, Any]:
    return {"ok": False, "n": job["n"], "error": error}


# ----------------------------------------------------------------------------- tune

def tune(method: str, stream: Any = "synth-10", trials: int = 20, *, out: str | Path = "runs/tune",
         study_name: str | None = None, sampler_seed: int = 0, startup_trials: int = 10,
         space: Mapping[str, Any] | None = None, protocol: str = "all", k: int | None = None,
         executor: str = "local", workers: int = 1, threads: int | None = None, ray_address: str | None = None,
         cpus_per_point: int = 1, gpus_per_point: float = 0, report: bool = True,
         on_trial: Callable[[dict], None] | None = None, **run_kwargs: Any) -> TuneResult:
    """Tune ``method`` on ``stream`` with ``trials`` trials in all (a resumed study runs only the
    missing ones); see the module docstring.

    ``run_kwargs`` are fixed runner or method settings of every trial (``epochs=4``,
    ``n_tasks=5``, ``fisher="true"``, ...); ``space`` replaces the method's declared
    ``search_space``; ``on_trial`` is called with a summary of each finished trial (trials run
    in this process). Everything is validated before any file is written."""
    from .parallel import check_executor, point_threads, run_points

    setup = _plan(method, stream, trials, out=out, study_name=study_name, sampler_seed=sampler_seed,
                  startup_trials=startup_trials, space=space, protocol=protocol, k=k, run_kwargs=run_kwargs)
    check_executor(executor, workers, "tune", ray_address=ray_address, cpus_per_point=cpus_per_point,
                   gpus_per_point=gpus_per_point, threads=threads)
    if not isinstance(report, bool):
        raise ConfigError(f"tune: report must be true or false; got {report!r}")
    import optuna

    from .rundir import check_out_dir, hold_lock

    check_out_dir(setup.study_dir)
    lock = hold_lock(setup.study_dir / LOCK, ConfigError(
        f"tune: study {str(setup.study_dir)!r} is in use by another process (lock {LOCK}); wait for it, or add "
        "workers to that process (workers=N) instead"))
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = _open_study(setup, create=True)
        stored = study.user_attrs.get("cl_lab")
        if stored is None:
            study.set_user_attr("cl_lab", setup.identity)
        elif stored != setup.identity:
            diff = sorted(k_ for k_ in set(stored) | set(setup.identity) if stored.get(k_) != setup.identity.get(k_))
            raise ConfigError(f"tune: study {setup.study_name!r} in {str(setup.study_dir)!r} was made with other "
                              f"settings ({', '.join(diff)} differ); use another study_name or out")
        remaining = max(0, setup.trials - _finished(study.get_trials(deepcopy=False)))
        if remaining:
            _recover(study, remaining)
        errors = []
        if remaining and executor == "local" and workers == 1:
            import torch

            before = torch.get_num_threads()
            try:
                torch.set_num_threads(threads or before)
                _optimize(study, setup, remaining, on_trial)
            finally:
                torch.set_num_threads(before)
        elif remaining:
            n_jobs = min(workers, remaining)
            per = [remaining // n_jobs + (1 if i < remaining % n_jobs else 0) for i in range(n_jobs)]
            t = point_threads(executor, n_jobs, cpus_per_point, threads)
            jobs = [{"setup": setup, "n": n, "threads": t} for n in per]
            results = run_points(_worker, jobs, failed=_worker_failed, executor=executor, workers=workers,
                                 ray_address=ray_address, cpus_per_point=cpus_per_point,
                                 gpus_per_point=gpus_per_point)
            errors = [r["error"] for r in results if not r["ok"]]
            study = _open_study(setup)
        return _finish(study, setup, report, errors)
    finally:
        optuna.logging.set_verbosity(verbosity)
        lock.release()


def _best(trials: Sequence[Any]) -> Any:
    """The completed trial of highest value; among equals, the earliest in the study's order."""
    from optuna.trial import TrialState

    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        return None
    return max(done, key=lambda t: (t.value, -t.user_attrs.get("slot", t.number), -t.number))


def _finish(study: Any, setup: _Setup, report: bool, errors: list[str]) -> TuneResult:
    from optuna.trial import TrialState

    from ._io import atomic_write_json

    trials = study.get_trials(deepcopy=False)
    best = _best(trials)
    if best is None:
        first = next((t.user_attrs["error"] for t in trials if t.user_attrs.get("error")), None) or \
            (errors[0] if errors else "no trial ran")
        raise TuneError(f"tune: no trial of study {setup.study_name!r} completed ({_finished(trials)} finished); "
                        f"first error: {first}")
    completed = sum(1 for t in trials if t.state == TrialState.COMPLETE)
    params = {**setup.method_fixed, **best.params}
    run_settings = {k_: v for k_, v in setup.fixed.items()
                    if k_ not in setup.method_fixed and k_ not in ("progress", "backbone")}
    record = {
        "method": setup.method, "stream": setup.stream_name, "params": params, "value": best.value,
        "metric": METRIC, "trial": best.number, "trials": completed, "finished": _finished(trials),
        "study": str(setup.db.resolve()), "study_name": setup.study_name, "protocol": setup.protocol,
        "k": setup.k, "run": run_settings, "backbone": setup.identity["backbone"],
        "sampler_seed": setup.sampler_seed, "run_dir": best.user_attrs.get("run_dir"),
    }
    if setup.report_tasks is not None:
        record["report_tasks"] = list(setup.report_tasks)
    config_file = atomic_write_json(setup.study_dir / BEST_CONFIG, record)
    page = None
    if report:
        try:
            page = write_study_report(setup.db, setup.study_dir / REPORT)
        except ImportError:  # plotly is the optional extra cl_lab[lab]: the study itself is complete
            page = None
    if errors:
        raise TuneError(f"tune: {len(errors)} worker(s) of study {setup.study_name!r} failed ({errors[0]}); the "
                        f"best so far is in {config_file}; run the same command again to finish the study")
    return TuneResult(setup.method, setup.stream_name, dict(best.params), float(best.value), best.number,
                      setup.study_name, setup.study_dir, setup.db, config_file, page, completed, _finished(trials))


# ----------------------------------------------------------------------------- configuration files

def read_config_file(path: str | Path) -> dict[str, Any]:
    """A best-configuration file (JSON, or YAML by its suffix) as a checked mapping."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"config: {str(path)!r} is not a file; give a best_config.json written by cl-lab tune")
    try:
        text = p.read_text()
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            record = yaml.safe_load(text)
        else:
            record = json.loads(text)
    except Exception as e:
        raise ConfigError(f"config: cannot read {str(path)!r}: {type(e).__name__}: {e}".splitlines()[0]) from None
    if not isinstance(record, dict) or not isinstance(record.get("method"), str) \
            or not isinstance(record.get("params"), dict):
        raise ConfigError(f"config: {str(path)!r} is not a configuration file: it needs 'method' (a name) and "
                          "'params' (a mapping)")
    return record


def load_config_file(path: str | Path, method: str) -> dict[str, Any]:
    """The method parameters a best-configuration file holds; a one-line error when it was written
    for another method or names a parameter the method does not have."""
    from .methods import get_method

    record = read_config_file(path)
    cls = get_method(method)
    try:
        theirs = get_method(record["method"]).name
    except ValueError:
        theirs = record["method"]
    if theirs != cls.name:
        raise ConfigError(f"config: {str(path)!r} holds a configuration of {record['method']!r}, not {method!r}; run "
                          f"{record['method']!r} with it or tune {method!r}")
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(record["params"]) - fields)
    if unknown:
        raise ConfigError(f"config: {str(path)!r} sets {unknown}, not parameters of {cls.name!r}; allowed: "
                          f"{sorted(fields)}")
    return dict(record["params"])


def apply_config_file(path: str | Path, method: str, stream: Any, kwargs: dict[str, Any]) -> tuple[Any, dict]:
    """``(stream, kwargs)`` for a run with a best-configuration file: its parameters under the
    explicit ``kwargs`` (which win); for a ``first-k`` study run on the file's stream, the stream
    becomes its remaining tasks (the protocol reports on tasks the tuning never saw)."""
    params = load_config_file(path, method)
    merged = {**params, **kwargs}
    tasks = read_config_file(path).get("report_tasks")
    if tasks and isinstance(stream, str) and stream == read_config_file(path).get("stream"):
        from .data.streams import load_stream
        from .train.runner import prepare

        prepare(method, stream, **merged)  # every other setting is checked before the stream is loaded
        stream = load_stream(stream, seed=merged.get("stream_seed", 0)).select(tasks)
    return stream, merged


# ----------------------------------------------------------------------------- the report page

def load_study(study_path: str | Path) -> Any:
    """The Optuna study in a study folder or its ``study.db``."""
    optuna = _require_optuna()
    p = Path(study_path).expanduser()
    db = p / DB if p.is_dir() else p
    if not db.is_file():
        raise ConfigError(f"tune: no study at {str(study_path)!r}; give a study folder or its {DB}")
    storage = _storage(db)
    names = optuna.get_all_study_names(storage)
    if len(names) != 1:
        raise ConfigError(f"tune: {str(db)!r} holds {len(names)} studies; expected one")
    return optuna.load_study(study_name=names[0], storage=storage)


def study_figures(study_path: str | Path) -> dict[str, Any]:
    """Optuna's plotly figures of a study: ``history`` (optimisation history), ``importances``
    (parameter importances, from 2 completed trials with some variation in the parameters) and
    ``slice`` (value against each parameter). A figure that cannot be drawn yet is left out."""
    from optuna.trial import TrialState
    from optuna.visualization import plot_optimization_history, plot_param_importances, plot_slice

    study = load_study(study_path)
    figures = {"history": plot_optimization_history(study, target_name=METRIC)}
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varied = any(len({json.dumps(t.params.get(n), default=str) for t in done}) > 1
                 for n in (done[0].params if done else {}))
    if len(done) >= 2 and varied:
        try:
            figures["importances"] = plot_param_importances(study, target_name=METRIC)
        except (RuntimeError, ValueError, ZeroDivisionError):
            pass
    if done:
        figures["slice"] = plot_slice(study, target_name=METRIC)
    for name, fig in figures.items():
        fig.update_layout(title=f"{fig.layout.title.text or name}: {study.study_name}")
    return figures


def write_study_report(study_path: str | Path, html_file: str | Path) -> Path:
    """One offline HTML page of a study: the best trial, every trial and the figures of
    ``study_figures``; plotly.js is written once next to the page (no network)."""
    import html

    from plotly.offline import get_plotlyjs

    from ._io import atomic_write_text

    study = load_study(study_path)
    figures = study_figures(study_path)
    html_file = Path(html_file)
    js = html_file.parent / PLOTLY_JS
    if not js.exists():
        atomic_write_text(js, get_plotlyjs())
    trials = study.get_trials(deepcopy=False)
    best = _best(trials)
    info = study.user_attrs.get("cl_lab", {})
    rows = "".join(
        f"<tr><td>{t.number}</td><td>{t.state.name}</td><td>{'' if t.value is None else f'{t.value:.4f}'}</td>"
        f"<td>{html.escape(json.dumps(t.params, default=str))}</td>"
        f"<td>{html.escape(str(t.user_attrs.get('error', '')))}</td></tr>" for t in trials)
    head = (f"<p>Best: trial {best.number}, {METRIC} {best.value:.4f}, parameters "
            f"<code>{html.escape(json.dumps(best.params, default=str))}</code></p>" if best else
            "<p>No trial has completed yet.</p>")
    parts = [fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{name}") for name, fig in figures.items()]
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(study.study_name)}</title>
<script src="{PLOTLY_JS}"></script>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:small}}</style></head>
<body><h1>Study {html.escape(study.study_name)}</h1>
<p>{html.escape(str(info.get('method', '')))} on {html.escape(str(info.get('stream', '')))}, protocol
{html.escape(str(info.get('protocol', '')))}; scored on validation data only.</p>
{head}
{''.join(parts)}
<h2>Trials</h2>
<table><tr><th>trial</th><th>state</th><th>value</th><th>parameters</th><th>error</th></tr>{rows}</table>
</body></html>
"""
    return atomic_write_text(html_file, page)


class _CallableModule(types.ModuleType):
    """``cl_lab.tune(...)`` calls :func:`tune`; ``cl_lab.tune.study_figures`` etc. stay attributes."""

    def __call__(self, *args: Any, **kwargs: Any) -> TuneResult:
        return tune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
