"""Each notebook's parameters, declared once: a typed dataclass checked by ``config.build``.

The dataclass is the single source of truth: the notebook's tagged ``parameters`` cell
assigns exactly these names with these defaults (a test keeps them equal), the notebook's
next cell calls ``check_parameters(globals(), "<notebook>")``, batch reports take their
settings from ``REPORT`` on the class, and grids are checked against the same fields before
anything runs.

Field metadata ``role`` tells batch tools how to fill a parameter: ``"runs_out"`` (where
run directories are written), ``"runs_in"`` (a directory of runs to read) and
``"from:<notebook>"`` (the last run directory that notebook recorded).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping

from ..config import ConfigError, build, describe, param


class NotebookParameterError(ConfigError):
    """One or more notebook parameters are unknown, of the wrong type or not allowed."""


def _stream(value: str) -> None:
    from ..data.streams import stream_names

    if value not in stream_names():
        raise ConfigError(f"unknown stream {value!r}; allowed: {stream_names()}")


def _methods(value: Any, allow_all: bool = True) -> None:
    from ..methods import method_names

    if isinstance(value, str):
        if allow_all and value == "all":
            return
        value = [value]
    if not value:
        raise ConfigError("name at least one method")
    bad = [m for m in value if m not in method_names()]
    if bad:
        what = f"unknown method {bad[0]!r}" if len(bad) == 1 else f"unknown methods {bad}"
        raise ConfigError(f"{what}; allowed: {method_names()}" + (" or 'all'" if allow_all else ""))


def _non_negative(name: str, values: list[float]) -> None:
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"{name} must be a non-empty list of numbers >= 0; got {values}")


NOTEBOOKS: dict[str, type] = {}


def notebook(name: str):
    """Class decorator: register the parameters of notebook ``name``."""
    def wrap(cls: type) -> type:
        cls.notebook = name
        NOTEBOOKS[name] = cls
        return cls
    return wrap


OUT = param("runs/notebooks", "where run directories are written", role="runs_out")
SEED = param(0, "random seed (runs are reproducible from it)", ge=0, le=2**63 - 1)


@notebook("00_quickstart")
@dataclasses.dataclass
class Quickstart:
    # five synth-10 tasks: large enough that SGD's forgetting and CLR's lack of it stand well above chance
    REPORT: ClassVar[dict] = {"stream": "synth-10", "n_tasks": 5, "methods": ["sgd", "clr"], "epochs": 2}
    stream: str = param("synth-mini", "task stream: see `cl-lab streams`")
    n_tasks: int | None = param(None, "first n tasks of the stream only (None: all)", ge=1, le=10_000)
    methods: list[str] | str = param(["sgd", "clr"], "methods to compare (a list, or 'all'): see `cl-lab methods`")
    epochs: int = param(1, "epochs per task", ge=1, le=1000)
    seed: int = SEED
    out_dir: str = OUT

    def validate(self) -> None:
        _stream(self.stream)
        _methods(self.methods)


@notebook("01_task_stream")
@dataclasses.dataclass
class TaskStreamParams:
    REPORT: ClassVar[dict] = {"method": "clr", "stream": "synth-10", "n_tasks": 5, "epochs": 2}
    method: str = param("clr", "method name: see `cl-lab methods`")
    stream: str = param("synth-10", "task stream: see `cl-lab streams`")
    n_tasks: int | None = param(None, "train on the first n tasks only (None: all)", ge=1, le=10_000)
    backbone: str = param("resnet8", "backbone architecture")
    hyperparameters: dict = param({}, "method hyperparameters, e.g. {'lr': 0.001}: see `cl-lab methods NAME`")
    epochs: int = param(4, "epochs per task", ge=1, le=1000)
    seed: int = SEED
    out_dir: str = OUT

    def validate(self) -> None:
        from ..methods import get_method
        from ..models.backbones import BACKBONES

        _stream(self.stream)
        _methods(self.method, allow_all=False)
        if self.backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {self.backbone!r}; allowed: {sorted(BACKBONES)}")
        cls = get_method(self.method)
        build(cls.Config, self.hyperparameters, where=f"hyperparameters of {self.method}")


@notebook("02_clr")
@dataclasses.dataclass
class CLRParams:
    REPORT: ClassVar[dict] = {"stream": "synth-10", "n_tasks": 5, "compare": ["sgd", "ewc", "lwf"], "ablation": True,
                              "epochs": 2}
    stream: str = param("synth-10", "task stream")
    n_tasks: int | None = param(5, "first n tasks (None: all)", ge=1, le=10_000)
    compare: list[str] = param(["sgd", "ewc", "lwf"], "methods to compare first-task accuracy with")
    ablation: bool = param(True, "also run CLR on a random frozen backbone and on one trained on task 1")
    epochs: int = param(2, "epochs per task", ge=1, le=1000)
    seed: int = SEED
    out_dir: str = OUT

    def validate(self) -> None:
        _stream(self.stream)
        _methods(self.compare, allow_all=False)


@notebook("03_rescl")
@dataclasses.dataclass
class ResCLParams:
    REPORT: ClassVar[dict] = {"stream": "synth-10", "source": 0, "target": 1, "epochs": 1,
                              "rescl_lambdas": [0.0, 0.5, 2.0], "lwf_alphas": [0.3, 3.0], "sgd_lrs": [0.001, 0.01],
                              "fe_lrs": [0.01, 0.03]}
    stream: str = param("synth-10", "task stream the two tasks come from")
    source: int = param(0, "source task index", ge=0)
    target: int = param(1, "target task index", ge=0)
    rescl_lambdas: list[float] = param([0.0, 0.25, 0.5, 1.0, 2.0],
                                       "ResCL L1 shrink budgets (0: no decay, 1: idle alphas reach 0)")
    lwf_alphas: list[float] = param([0.3, 1.0, 3.0], "LwF distillation weights")
    sgd_lrs: list[float] = param([0.001, 0.01], "fine-tuning learning rates")
    fe_lrs: list[float] = param([0.01, 0.03], "feature-extraction learning rates (frozen backbone + a head per task)")
    epochs: int = param(2, "epochs per task", ge=1, le=1000)
    seed: int = SEED
    out_dir: str = param("runs/notebooks", "where the sweep is written", role="runs_out")

    def validate(self) -> None:
        _stream(self.stream)
        if self.source == self.target:
            raise ConfigError(f"source and target must differ; both are {self.source}")
        for name in ("rescl_lambdas", "lwf_alphas", "sgd_lrs", "fe_lrs"):
            _non_negative(name, getattr(self, name))


@notebook("04_mpnas")
@dataclasses.dataclass
class MPNASParams:
    # three synth-10 (version 3) domains a supernet learns from scratch at this budget (their rewards leave
    # chance); shapes, counting and blood-cells, three of the first five, do not (README, multi-domain learning)
    REPORT: ClassVar[dict] = {"stream": "synth-10", "domains": "textures,scenes,aerial", "search_steps": 240,
                              "train_epochs": 4, "max_train": 600}
    stream: str = param("synth-10", "stream whose tasks are the domains")
    domains: str = param("auto", "'auto' (the stream's domains that learn from scratch; synth-10: four), how many "
                                 "first tasks, or comma-separated task names")
    setups: str = param("mpnas,mpnas-uniform,independent,single-path,multi-head-nas", "which setups to run")
    search_steps: int = param(240, "search steps (each: one weight step per domain, then one controller step per "
                                   "domain)", ge=1, le=1_000_000)
    train_epochs: int = param(4, "phase-2 epochs", ge=1, le=1000)
    max_train: int = param(600, "training images per domain", ge=8, le=1_000_000)
    abdp_reading: str = param("softmax", "which reading of ABDP: softmax, exp or dtp")
    seed: int = SEED
    out_dir: str = param("runs/notebooks", "where the MDL run directory is written", role="runs_out")

    def validate(self) -> None:
        from ..mdl.controller import READINGS

        _stream(self.stream)
        if self.abdp_reading not in READINGS:
            raise ConfigError(f"abdp_reading={self.abdp_reading!r} is not allowed; choose one of {list(READINGS)}")


@notebook("05_baselines")
@dataclasses.dataclass
class BaselinesParams:
    # two synth-10 tasks (10 and 8 classes, chance 0.11 on average): the methods that start from the shipped
    # backbone clear chance at this budget and SGD's forgetting shows, while synth-mini's few dozen test images
    # per task left several at chance. PSP and SupSup start from random weights, so they get their own
    # comparison, with SGD from random weights, on three synth-10 (version 3) tasks a network learns from
    # scratch in two epochs and where fixed random features fall short of it: SGD from random weights reaches
    # 0.49 / 0.62 / 0.31 there (seed 0, each task alone), a linear head on a random frozen ResNet-8 0.32 /
    # 0.44 / 0.27 (benchmarks/shortcut_probe.py); on aerial the two were equal (0.36 / 0.35).
    # Sized so that `make run` stays under 10 minutes on 2 cores.
    REPORT: ClassVar[dict] = {"stream": "synth-10", "n_tasks": 2, "methods": "all", "epochs": 1,
                              "bn_stats_methods": ["sgd", "ewc"]}
    stream: str = param("synth-mini", "task stream")
    methods: list[str] | str = param("all", "'all' (every method of the task scenario but the scratch_methods) or a "
                                            "list of method names")
    n_tasks: int | None = param(None, "first n tasks only (None: all)", ge=1, le=10_000)
    epochs: int = param(1, "epochs per task", ge=1, le=1000)
    seed: int = SEED
    bn_stats_methods: list[str] = param(["sgd", "si", "lwf"],
                                        "shared-backbone methods rerun with per-task BN statistics ([] to skip)")
    scratch_methods: list[str] = param(["psp", "supsup"], "methods compared from random weights, next to SGD from "
                                                          "random weights ([] to skip)")
    scratch_stream: str = param("synth-10", "stream the scratch_tasks come from")
    scratch_tasks: list[str] = param(["scenes", "art-styles", "textures"], "tasks of scratch_stream, in order, for "
                                                                          "the from-random-weights comparison")
    scratch_epochs: int = param(2, "epochs per task from random weights", ge=1, le=1000)
    out_dir: str = OUT

    def validate(self) -> None:
        from ..data.streams import embedded_task_names
        from ..data.task import task_choice_problem
        from ..methods import get_method

        _stream(self.stream)
        _methods(self.methods)
        if self.bn_stats_methods:
            _methods(self.bn_stats_methods, allow_all=False)
        for m in self.bn_stats_methods:
            if not get_method(m).shared_backbone:
                raise ConfigError(f"bn_stats_methods: {m!r} keeps per-task BN or a frozen backbone already; per-task "
                                  "statistics apply to methods that train a shared backbone (sgd, ewc, online-ewc, "
                                  "si, lwf, er, derpp)")
        if self.scratch_methods:
            _methods(self.scratch_methods, allow_all=False)
            _stream(self.scratch_stream)
            known = embedded_task_names(self.scratch_stream)
            if task_choice_problem(self.scratch_tasks, known):
                raise ConfigError(f"scratch_tasks={self.scratch_tasks} must name distinct tasks of "
                                  f"{self.scratch_stream!r}" + (f"; allowed: {known}" if known else ""))


@notebook("07_scenarios")
@dataclasses.dataclass
class ScenariosParams:
    # Split-Digits in all three scenarios (as van de Ven et al.): every task has 2 classes, so the domain scenario
    # applies too. Two epochs per task, one seed: about a minute and a half on 2 cores; the README's table gives
    # three seeds.
    REPORT: ClassVar[dict] = {}
    stream: str = param("split-digits", "task stream (equal class counts, for the domain scenario)")
    methods: list[str] = param(["sgd", "ewc", "lwf", "er", "icarl", "joint"],
                               "methods; each runs in the scenarios it supports (`cl-lab methods`)")
    scenarios: list[str] = param(["task", "domain", "class"], "scenarios to run: task, domain, class")
    n_tasks: int | None = param(None, "first n tasks only (None: all)", ge=2, le=10_000)
    epochs: int = param(2, "epochs per task", ge=1, le=1000)
    eval_every: int = param(4, "evaluate every task seen every N training steps (the stability-gap figure)", ge=1,
                            le=10**9)
    seed: int = SEED
    out_dir: str = OUT

    def validate(self) -> None:
        from ..data.incremental import SCENARIOS

        _stream(self.stream)
        _methods(self.methods, allow_all=False)
        bad = [s for s in self.scenarios if s not in SCENARIOS]
        if bad or not self.scenarios:
            raise ConfigError(f"scenarios={self.scenarios!r}: name at least one of {list(SCENARIOS)}")


@notebook("06_dashboard")
@dataclasses.dataclass
class DashboardParams:
    REPORT: ClassVar[dict] = {}
    results_dir: str = param("runs/notebooks", "a directory holding run directories (relative: from the project "
                                               "root; without runs there, the runs of `make run`)", role="runs_in")
    mdl_dir: str | None = param(None, "an MDL run directory (None: the newest one under results_dir)",
                                role="from:04_mpnas")


def params_class(notebook: str) -> type:
    if notebook not in NOTEBOOKS:
        raise NotebookParameterError(f"unknown notebook {notebook!r}; allowed: {sorted(NOTEBOOKS)}")
    return NOTEBOOKS[notebook]


def defaults(notebook: str) -> dict[str, Any]:
    """The notebook's parameters at their defaults (what its parameters cell assigns)."""
    return dataclasses.asdict(params_class(notebook)())


def roles(notebook: str) -> dict[str, str]:
    """Parameter name -> role (``runs_out``, ``runs_in``, ``from:<notebook>``) for those that have one."""
    return {f.name: f.metadata["role"] for f in dataclasses.fields(params_class(notebook)) if f.metadata.get("role")}


def check(notebook: str, values: Mapping[str, Any]) -> Any:
    """Validate (a subset of) a notebook's parameters with ``config.build``: unknown names, types,
    ranges and cross-checks, in one error naming the notebook."""
    try:
        return build(params_class(notebook), dict(values), where=notebook)
    except NotebookParameterError:
        raise
    except ConfigError as e:
        msg = str(e)
        raise NotebookParameterError(msg if msg.startswith(notebook) else f"{notebook}: {msg}") from None


def check_parameters(namespace: Mapping[str, Any], notebook: str) -> dict[str, Any]:
    """Validate a notebook's declared parameters as they stand in ``namespace`` (its ``globals()``).
    Result-directory parameters are made absolute in ``namespace`` (``runs.resolve_dir``).

    Only the declared names are read, so rerunning a notebook in the same kernel (where later
    cells have defined other names) checks the same thing as a fresh run. Names a batch run
    passes that the notebook does not declare are refused by ``cl_lab.report`` before it starts.
    """
    cls = params_class(notebook)
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in namespace]
    if missing:
        raise NotebookParameterError(f"{notebook}: parameter(s) {missing} missing; declare them in the parameters cell")
    values = {n: namespace[n] for n in names}
    values.update({n: namespace.get(n) for n in injected_names(namespace) if n not in values})
    checked = dataclasses.asdict(check(notebook, values))
    # result directories: a relative path is anchored at the project root, not at wherever the kernel
    # started, so notebooks opened from notebooks/ and batch runs agree on where runs are
    from .runs import resolve_dir

    for name, role in roles(notebook).items():
        value = checked.get(name)
        if isinstance(value, str) and (role in ("runs_out", "runs_in") or role.startswith("from:")):
            checked[name] = resolve_dir(value)
            if isinstance(namespace, dict):
                namespace[name] = checked[name]
    return checked


def injected_names(namespace: Mapping[str, Any]) -> list[str]:
    """The names papermill injected (its ``# Parameters`` cell, read from the kernel's input history)."""
    import ast

    for src in reversed(list(namespace.get("In", None) or [])):
        if isinstance(src, str) and src.lstrip().startswith("# Parameters"):
            try:
                tree = ast.parse(src)
            except SyntaxError:
                return []
            return [t.id for node in tree.body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)]
    return []


def describe_notebook(notebook: str) -> list[dict[str, Any]]:
    """Name, type, default and meaning of a notebook's parameters."""
    return describe(params_class(notebook))
