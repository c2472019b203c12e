"""The runner: stream x method -> accuracy matrix, costs and a resumable run directory."""

from __future__ import annotations

import copy
import dataclasses
import os
import platform
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch import nn

from .. import __version__, results
from .._io import RUN_LOG_ENV, announce
from ..config import ConfigError, build, param
from ..data.incremental import for_scenario
from ..data.streams import STREAMS, embedded_task_names, load_stream
from ..data.task import Task, TaskStream
from ..methods import Method, StreamInfo, get_method
from ..methods.base import TrainPlan, fit_on_task, scenario_error
from ..models import compiled
from ..models.backbones import BACKBONES, Backbone, build_backbone, module_digest
from ..models.weights import (
    WeightsError,
    checkpoint_key,
    load_weights,
    recorded_name,
    shipped_checkpoints,
    shipped_for,
    shipped_names,
)
from ..rundir import MAX_SEED, RunDir, check_out_dir, check_run_name, default_name, identity

MAX_EPOCHS = 1000
MAX_BATCH = 65536
MAX_TASKS = 10_000
MAX_WEIGHTS_BYTES = 8 << 30
"""Upper bounds of the runner's sizes and counts (a typo such as ``epochs=1e9`` is an error, not a
run that never ends); stated in the error."""


def check_pretrained(pretrained: str | None) -> None:
    """``pretrained`` is a keyword, a shipped checkpoint's name or a readable regular weights file of
    at most 8 GiB; anything else (an empty string, a directory, a device such as ``/dev/zero``) is a
    one-line error before any work."""
    if pretrained in (None, "auto", "shipped", "first-task") or checkpoint_key(pretrained) is not None:
        return
    allowed = (f"'auto', 'shipped', 'first-task', None, a shipped checkpoint {shipped_names()} "
               "or a weights file")
    if not pretrained or not pretrained.strip():
        raise ConfigError(f"run: pretrained={pretrained!r} is empty; use {allowed}")
    path = Path(pretrained).expanduser()
    if not path.exists():
        raise ConfigError(f"run: pretrained={pretrained!r} is neither {allowed} that exists")
    if path.is_dir():
        raise ConfigError(f"run: pretrained={pretrained!r} is a directory; give the weights file inside it")
    if not path.is_file():
        raise ConfigError(f"run: pretrained={pretrained!r} is not a regular file (a device or a pipe); give a "
                          "weights file")
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise ConfigError(f"run: pretrained={pretrained!r} is {size / 2**30:.1f} GiB; weights files up to "
                          f"{MAX_WEIGHTS_BYTES >> 30} GiB are allowed")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"run: pretrained={pretrained!r} is not readable by this user")


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class RunConfig:
    """What the runner controls; each method's own hyperparameters live in its ``Config``."""

    backbone: str = param("resnet8", f"backbone name ({', '.join(BACKBONES)}) or pass an nn.Module")
    pretrained: str | None = param(
        "auto", "'auto' (the default shipped checkpoint when the method wants one and one exists), 'shipped' (that "
        "checkpoint), a shipped checkpoint's name, a weights file path, 'first-task' (trained on the stream's first "
        "task, then frozen for frozen-backbone methods) or None (random init)")
    first_task_epochs: int = param(8, "epochs of whole-backbone training when pretrained='first-task'", ge=1,
                                   le=MAX_EPOCHS)
    first_task_lr: float = param(0.05, "SGD learning rate of that training", gt=0, le=10)
    weights_kind: Literal["auto", "torchvision", "dino", "swav", "cl_lab"] = param("auto", "format of a weights file")
    epochs: int = param(4, "training epochs per task", ge=1, le=MAX_EPOCHS)
    batch_size: int = param(32, "training mini-batch size", ge=2, le=MAX_BATCH)
    eval_batch_size: int = param(512, "evaluation batch size", ge=1, le=MAX_BATCH)
    seed: int = param(0, "seeds Python, NumPy, torch, initialisation and data order", ge=0, le=MAX_SEED)
    stream_seed: int = param(0, "seed of the embedded stream's content (fixed so seeds share data)", ge=0, le=MAX_SEED)
    n_tasks: int | None = param(None, "train only the first n tasks of the stream", ge=1, le=MAX_TASKS)
    device: str = param("auto", "'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'")
    amp: bool = param(False, "bfloat16 autocast (CUDA only)")
    memory_format: Literal["auto", "channels_last", "contiguous"] = param(
        "auto", "layout of images and conv weights: 'auto' is channels-last (1.15-1.3x faster training of ResNet-8 on "
        "the 2-core CPUs measured, and what tensor cores want on GPU); 'contiguous' is PyTorch's default NCHW")
    compile: bool = param(
        False, "torch.compile the backbone (training and evaluation; graphs kept across tasks). What it gains depends "
        "on the hardware: on the 2-core CPU measured (README, Speed) a ResNet-8 step gained 1.0-1.1x and a whole "
        "default run was slower, compiling included. Not bit-identical to eager, so part of the run's identity; "
        "where compilation is unavailable the run goes on eagerly with a one-line warning, recorded as compile=False")
    scenario: Literal["task", "domain", "class"] = param(
        "task", "'task': a head per task, the task id given at test; 'domain': one shared head, no task id at test "
        "(tasks must have equal class counts); 'class': one head over every class seen so far, no task id at test")
    bn_stats: Literal["shared", "per-task"] = param(
        "shared", "BatchNorm running statistics of a trained shared backbone: one set (papers) or stored per task")
    eval_every: int | None = param(
        None, "also evaluate every task seen so far every N training steps, and at each task's first and last step "
        "(steps.csv: old-task accuracy at step resolution, the stability gap); None: after each task only", ge=1,
        le=10**9)
    eval_images: int = param(200, "images per task at each step-resolution evaluation: the first N of the split",
                             ge=1, le=MAX_BATCH)
    eval_split: Literal["test", "val"] = param(
        "test", "split the accuracy matrix is measured on ('val' for choosing hyperparameters)")
    out: str = param("runs", "directory that holds run directories")
    run_name: str | None = param(None, "run directory name (default: stream_method_backbone_seedN-<config hash>)")
    resume: bool = param(True, "resume an interrupted run in the same directory")
    progress: bool = param(True, "show tqdm progress bars")
    loggers: list[Literal["tensorboard", "mlflow", "wandb"]] = param(
        [], "experiment trackers to log to as well (the 'tracking' extra): 'tensorboard', 'mlflow', 'wandb'; the run "
        "directory stays the record, and a tracker that is missing or fails is a one-line warning")
    log_every: int = param(10, "log the named loss terms and the learning rate to the trackers every N steps", ge=1,
                           le=10**9)
    tracking_uri: str | None = param(None, "MLflow tracking URI (default: the SQLite store <out>/mlflow.db)")
    experiment: str = param("cl_lab", "MLflow experiment / W&B project the run is logged under")

    def validate(self) -> None:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"run: device={self.device!r} is not allowed; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"run: device={self.device!r} but CUDA is not available here; use 'auto' or 'cpu'")
        if self.amp and resolve_device(self.device).type != "cuda":
            raise ConfigError("run: amp=True needs a CUDA device; this run would use the CPU")
        if self.run_name is not None:
            check_run_name(self.run_name)
        check_pretrained(self.pretrained)


@dataclass
class RunResult:
    """What a run produced: its directory, accuracy matrix and resolved config."""

    run_dir: Path
    R: np.ndarray
    config: dict[str, Any]
    task_names: list[str]

    @property
    def metrics(self):
        return results.read_table(self.run_dir, "metrics.csv")

    @property
    def costs(self):
        return results.read_table(self.run_dir, "costs.csv")

    def summary(self) -> dict[str, Any]:
        from .. import metrics as M

        return {"avg_accuracy": float(M.average_accuracy(self.R)[-1]), "bwt": M.bwt(self.R),
                "forgetting": M.forgetting(self.R), "first_task_accuracy": M.first_task_accuracy(self.R).tolist()}


def resolve_memory_format(name: str) -> torch.memory_format:
    """``auto`` -> channels-last: measured faster for every built-in backbone on CPU
    (``benchmarks/loop_overhead.py``) and the layout GPUs' convolution kernels prefer."""
    return torch.contiguous_format if name == "contiguous" else torch.channels_last


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _derive(seed: int, *parts: int) -> int:
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1)[0])


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def split_kwargs(method_cls: type[Method], kwargs: dict[str, Any]) -> tuple[dict, dict]:
    """Keyword arguments -> (runner parameters, the method's hyperparameters); an unknown name is an error."""
    run_fields = {f.name for f in dataclasses.fields(RunConfig)}
    method_fields = {f.name for f in dataclasses.fields(method_cls.Config)}
    run_kw, method_kw = {}, {}
    for k, v in kwargs.items():
        if k in run_fields:
            run_kw[k] = v
        elif k in method_fields:
            method_kw[k] = v
        else:
            import difflib

            close = difflib.get_close_matches(k, sorted(run_fields | method_fields), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown parameter {k!r} for method {method_cls.name!r}; runner parameters: {sorted(run_fields)}; "
                f"{method_cls.name} parameters: {sorted(method_fields)}.{hint}"
            )
    return run_kw, method_kw


def _stream_record(stream: TaskStream) -> dict[str, Any]:
    """The stream a run saw: name, content hash, tasks and, for a versioned embedded stream, its
    generator version (``synth-10`` 3, ``synth-10@2`` 2)."""
    version = {"version": stream.meta["version"]} if "version" in stream.meta else {}
    return {"name": stream.name, **version, "hash": stream.content_hash(),
            "tasks": [t.describe() for t in stream.tasks]}


COMPARED = ("method", "method_config", "backbone", "pretrained", "weights_sha256", "first_task_epochs", "first_task_lr",
            "epochs", "batch_size", "seed", "stream", "bn_stats", "eval_split", "memory_format", "backbone_sha256",
            "scenario", "eval_every", "eval_images", "compile")
"""The settings a run directory is tied to: resuming with any of them changed is refused."""
TRACKING = ("loggers", "log_every", "tracking_uri", "experiment")
"""Where a run is also logged (``cl_lab.tracking``): never part of a run's or a study's identity."""
IDENTITY_DEFAULTS = {"memory_format": "auto", "backbone_sha256": None, "scenario": "task", "eval_every": None,
                     "eval_images": 200, "compile": False}
"""Identity settings added after runs existed: at these values they leave a run's name and checkpoint
hash as before (a built-in backbone by name has no digest; its start is fixed by the seed)."""


@torch.inference_mode()
def evaluate(method: Method, task: Task, task_id: int | None, device: torch.device, batch_size: int = 512,
             split: str = "test", amp: bool = False,
             memory_format: torch.memory_format = torch.contiguous_format, limit: int | None = None) -> float:
    """Accuracy of ``method`` on one split of ``task`` with the task id given (``None`` in the domain
    and class scenarios: no task id at test) (inference mode; one host synchronisation per call,
    not per batch). ``limit``: the first ``limit`` images of the split only."""
    method.eval()
    s = task.split(split)
    x_all = s.float_images()[:limit].to(device).contiguous(memory_format=memory_format)
    y_all = s.labels()[:limit].to(device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for b in range(0, len(y_all), batch_size):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = method.predict(x_all[b: b + batch_size], task_id)
        correct += (logits.argmax(1) == y_all[b: b + batch_size]).sum()
    return int(correct) / len(y_all)


def _macs_per_image(method: Method, x: torch.Tensor, y: torch.Tensor, task_id: int, test_id: int | None,
                    amp: bool) -> tuple[float, float]:
    """Training (one observe step) and inference MACs per image, counted on a throwaway copy."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []), compiled.eager():
        probe = copy.deepcopy(method)
        probe.train()
        with FlopCounterMode(display=False) as fc, torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            probe.observe(x, y, task_id)
        train = fc.get_total_flops() / 2 / len(x)
        probe.eval()
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            probe.predict(x, test_id)
        infer = fc.get_total_flops() / 2 / len(x)
    del probe
    return train, infer


def _bar(iterable, progress: bool, **kw):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, mininterval=0.5, **kw)


def batch_starts(n: int, batch_size: int) -> list[int]:
    """Start index of every training mini-batch (a last batch of one image is dropped: BN needs two)."""
    return [b for b in range(0, n, batch_size) if min(batch_size, n - b) >= 2]


def train_task(method: Method, task: Task, task_id: int, cfg: RunConfig, device: torch.device,
               generator: torch.Generator, probe: Callable[[int, int], float] | None = None,
               log: Callable[[int], float] | None = None) -> dict[str, float]:
    """Run ``cfg.epochs`` epochs of ``method.observe`` over the task's training split.

    Images live on the device in the run's memory format (a mini-batch drawn from a
    channels-last tensor stays channels-last); losses are summed on the device, so the
    host waits for the device once per epoch, not once per step. ``probe(step, epoch)``
    (``eval_every``) runs before the first step, after every ``cfg.eval_every`` steps and after
    the last; it returns its seconds, which ``train_seconds`` leaves out. ``log(step)`` (experiment
    trackers) runs after every step, logs every ``cfg.log_every``-th step of the run and returns its
    seconds, left out too."""
    x_all = task.train.float_images().to(device).contiguous(memory_format=resolve_memory_format(cfg.memory_format))
    y_all = task.train.labels().to(device)
    n, bs = len(y_all), cfg.batch_size
    starts = batch_starts(n, bs)
    method.train()
    losses: list[float] = []
    t0 = time.perf_counter()
    bar = _bar(range(cfg.epochs * len(starts)), cfg.progress, desc=f"task {task_id + 1} {task.name}", leave=False)
    it = iter(bar)
    step, probing = 0, 0.0
    if probe is not None:
        probing += probe(0, 0)
    for epoch in range(cfg.epochs):
        perm = torch.randperm(n, generator=generator).to(device)
        total = torch.zeros((), device=device)
        for b in starts:
            idx = perm[b: b + bs]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                total += method.observe(x_all[idx], y_all[idx], task_id)
            next(it, None)
            step += 1
            if log is not None:
                probing += log(step)
            if probe is not None and (step % cfg.eval_every == 0 or step == cfg.epochs * len(starts)):
                probing += probe(step, epoch)
        total = float(total)
        if not np.isfinite(total):
            raise TrainingDiverged(
                f"{method.name} diverged on task {task_id + 1} ({task.name}), epoch {epoch + 1}: the loss is {total}. "
                "Lower the learning rate or the regularisation strength; the run directory keeps every task "
                "completed so far, and rerunning with other values needs another run_name"
            )
        losses.append(total / max(1, len(starts)))
        method.end_epoch(task_id, epoch, cfg.epochs)
    if hasattr(bar, "close"):
        bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0 - probing
    out = {"train_seconds": seconds, "final_loss": losses[-1], "images_per_second": cfg.epochs * n / max(seconds, 1e-9)}
    return out | ({"step_eval_seconds": probing} if probe is not None else {})


def _resolve_pretrained(cfg: RunConfig, method_cls: type[Method], backbone: Backbone) -> str | None:
    """The weights a run starts from, by name: 'auto' and 'shipped' become the shipped checkpoint's
    own name (so runs from two different shipped backbones are two configurations); a shipped
    checkpoint is recorded under the name it was first shipped under (``recorded_name``)."""
    if cfg.pretrained == "auto" and not method_cls.pretrained_default:
        return None
    if cfg.pretrained in ("auto", "shipped"):
        try:
            name = shipped_for("shipped", backbone.arch, required=cfg.pretrained == "shipped")
        except WeightsError as e:
            raise ConfigError(f"run: pretrained='shipped': {e}") from None
        return None if name is None else recorded_name(name)
    name = shipped_for(cfg.pretrained, backbone.arch)
    return cfg.pretrained if name is None else recorded_name(name)


def weights_digest(pretrained: str | None) -> str | None:
    """SHA-256 of the weights file a run loads (shipped or the user's); None for none or 'first-task'."""
    if pretrained in (None, "first-task"):
        return None
    key = checkpoint_key(pretrained)
    if key is not None:
        return shipped_checkpoints()[key]["sha256"]
    from .._io import sha256_file

    return sha256_file(Path(pretrained).expanduser())


@dataclass(frozen=True)
class RunPlan:
    """A run, fully validated and not started: what ``prepare`` returns and ``execute`` carries out.

    Every check on the way in (runner settings, the method's hyperparameters, backbone, stream,
    task count, weights) has passed when a plan exists, so callers that start many runs (the
    CLI, sweeps, tuning, notebooks) validate each once, before any of them trains. A plan is
    picklable: a sweep ships plans to its workers."""

    method: type[Method]
    config: RunConfig
    method_config: Any
    stream: str | TaskStream
    backbone_module: nn.Module | None = None

    @property
    def name(self) -> str:
        return self.method.name


def prepare(method: str = "sgd", stream: str | TaskStream = "synth-10", *, backbone: str | nn.Module = "resnet8",
            **kwargs: Any) -> RunPlan:
    """Validate a run without starting it: one-line ``ConfigError``s for anything wrong, no data
    generated, no file written. ``execute(plan)`` then trains."""
    method_cls = get_method(method)
    run_kw, method_kw = split_kwargs(method_cls, kwargs)
    user_module = backbone if isinstance(backbone, nn.Module) else None
    if user_module is None:
        if not isinstance(backbone, str) or backbone not in BACKBONES:
            raise ConfigError(f"run: unknown backbone {backbone!r}; allowed: {sorted(BACKBONES)} or an nn.Module")
        run_kw["backbone"] = BACKBONES.canonical(backbone)  # one architecture, one name (resnet8-w16 -> resnet8)
    else:
        run_kw["backbone"] = type(user_module).__name__
    cfg: RunConfig = build(RunConfig, run_kw, "run")
    mcfg = build(method_cls.Config, method_kw, method_cls.name)
    if cfg.scenario not in method_cls.scenarios:
        raise ConfigError(f"run: {scenario_error(method_cls.name, cfg.scenario, method_cls.scenarios)}")
    if cfg.scenario != "task" and cfg.bn_stats == "per-task":
        raise ConfigError(f"run: bn_stats='per-task' picks statistics by the task id, which scenario {cfg.scenario!r} "
                          "does not give at test; use bn_stats='shared' or scenario='task'")
    if isinstance(stream, str):
        STREAMS.canonical(stream)  # an unknown name: the registry's one-line error, with the closest name
        known = embedded_task_names(stream)
        if known is not None and cfg.n_tasks is not None and cfg.n_tasks > len(known):
            raise ConfigError(f"run: n_tasks={cfg.n_tasks} but stream {stream!r} has only {len(known)} tasks")
    elif not isinstance(stream, TaskStream):
        raise ConfigError(f"run: stream must be a stream name or a TaskStream; got {type(stream).__name__}")
    elif cfg.n_tasks is not None and cfg.n_tasks > len(stream):
        raise ConfigError(f"run: n_tasks={cfg.n_tasks} but stream {stream.name!r} has only {len(stream)} tasks")
    return RunPlan(method_cls, cfg, mcfg, stream, user_module)


def run(method: str = "sgd", stream: str | TaskStream = "synth-10", *, backbone: str | nn.Module = "resnet8",
        **kwargs: Any) -> RunResult:
    """Train ``method`` over ``stream`` and write a run directory; resumes an interrupted run.

    Keyword arguments are runner parameters (see ``RunConfig``) or the method's own
    hyperparameters (see ``get_method(name).Config``). Everything is validated before
    any data is generated or any file is written (``prepare``), then the run is carried
    out (``execute``).
    """
    return execute(prepare(method, stream, backbone=backbone, **kwargs))


def redact_uri(uri: str | None) -> str | None:
    """A tracking URI without the credentials it may carry (``https://user:token@host`` -> ``https://***@host``)."""
    if uri is None:
        return None
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1***@", uri)


def _announce(result: RunResult, seconds: float) -> None:
    if os.environ.get(RUN_LOG_ENV):
        s, c = result.summary(), result.config
        announce(f"{c['method']} on {c['stream']['name']} seed {c['seed']}: avg acc {s['avg_accuracy']:.3f} "
                 f"({seconds:.0f} s)")


def execute(plan: RunPlan) -> RunResult:
    """Carry out a prepared run: load the stream, build the backbone, train, write the run directory."""
    t_start = time.perf_counter()
    method_cls, cfg, mcfg, user_module = plan.method, plan.config, plan.method_config, plan.backbone_module
    out = Path(cfg.out).expanduser()
    check_out_dir(out)
    ts = plan.stream if isinstance(plan.stream, TaskStream) else load_stream(plan.stream, seed=cfg.stream_seed)
    if cfg.n_tasks is not None:
        if cfg.n_tasks > len(ts):
            raise ConfigError(f"run: n_tasks={cfg.n_tasks} but stream {ts.name!r} has only {len(ts)} tasks")
        ts = ts.subset(cfg.n_tasks)
    try:
        ts = for_scenario(ts, cfg.scenario)
    except ValueError as e:  # the scenario's one-line reason (domain: unequal class counts)
        raise ConfigError(f"run: {e}") from None
    if cfg.eval_split == "val":
        missing = [t.name for t in ts if t.val is None or len(t.val) == 0]
        if missing:
            raise ConfigError(f"run: eval_split='val' but task(s) {missing} have no validation split; "
                              "give them one (Task.from_tensors(..., val_fraction=0.1)) or use eval_split='test'")

    device = resolve_device(cfg.device)
    if cfg.compile and (why := compiled.unavailable(device.type)) is not None:
        print(f"cl_lab run: compile=True but torch.compile does not work here ({why}); running eagerly, recorded as "
              "compile=False", file=sys.stderr, flush=True)
        cfg = dataclasses.replace(cfg, compile=False)
    seed_everything(cfg.seed)
    # a user's module is copied, so every run starts from the weights it was given
    bb = build_backbone(copy.deepcopy(user_module) if user_module is not None else cfg.backbone, ts[0].image_shape)
    check_input(bb, ts)
    bb.compiled = cfg.compile
    pretrained = _resolve_pretrained(cfg, method_cls, bb)
    resolved = {
        "method": method_cls.name,
        "method_config": dataclasses.asdict(mcfg),
        **{k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("run_name",)},
        "pretrained": pretrained,
        "tracking_uri": redact_uri(cfg.tracking_uri),
        "weights_sha256": weights_digest(pretrained),
        # a user's module is identified by its structure and initial weights, not its class name
        "backbone_sha256": module_digest(user_module) if user_module is not None else None,
        "stream": _stream_record(ts),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "versions": {"cl_lab": __version__, "torch": torch.__version__, "python": platform.python_version()},
    }
    run_name = cfg.run_name or default_name(f"{ts.name}_{method_cls.name}_{cfg.backbone}_seed{cfg.seed}",
                                            identity(resolved, COMPARED, IDENTITY_DEFAULTS))
    resolved["run_name"] = run_name
    with RunDir(out / run_name, resolved, COMPARED, resume=cfg.resume, hash_defaults=IDENTITY_DEFAULTS) as rd:
        try:
            return _train_stream(rd, ts, method_cls, mcfg, cfg, bb, pretrained, device, t_start)
        except BaseException:
            rd.discard_if_empty()  # failed before its first checkpoint: leave no directory behind
            raise


def check_input(backbone: Backbone, ts: TaskStream) -> None:
    """Refuse a stream whose images the backbone cannot take, naming the task, before any work
    (``TaskStream`` already guarantees every task has the same channel count)."""
    conv = next((m for m in backbone.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is not None and conv.in_channels != ts[0].image_shape[0]:
        raise ConfigError(f"run: task {ts[0].name!r} has {ts[0].image_shape[0]} channel(s) but backbone "
                          f"{backbone.arch!r} takes {conv.in_channels}; convert the images or use another backbone")


def _step_probe(learner: Method, ts: TaskStream, i: int, offset: int, cfg: RunConfig, device: torch.device,
                fmt: torch.memory_format, rows: list[dict[str, Any]], given: bool):
    """``eval_every``'s probe while task ``i`` trains: accuracy on the first ``eval_images`` images of
    every task seen so far (the current one included), appended to ``rows``; the learner goes back to
    training mode. Returns the probe's seconds."""
    def probe(step: int, epoch: int) -> float:
        t0 = time.perf_counter()
        for j in range(i + 1):
            acc = evaluate(learner, ts[j], j if given else None, device, cfg.eval_batch_size,
                           split=cfg.eval_split, amp=cfg.amp, memory_format=fmt, limit=cfg.eval_images)
            rows.append({"task": i, "task_name": ts[i].name, "step": step, "epoch": epoch, "global_step": offset + step,
                         "eval_task": j, "eval_task_name": ts[j].name, "accuracy": acc})
        learner.train()
        return time.perf_counter() - t0

    return probe


def pretrain_on_first_task(backbone: Backbone, task: Task, epochs: int, lr: float, seed: int,
                           plan: TrainPlan | None = None) -> None:
    """``pretrained='first-task'``: the whole backbone trained with a temporary head on the first task
    (in ``plan``'s memory layout and autocast, as the run's steps)."""
    seed_everything(_derive(seed, 0, 2))
    head = nn.Linear(backbone.out_dim, task.num_classes).to(next(backbone.parameters()).device)
    for p in backbone.parameters():
        p.requires_grad_(True)
    fit_on_task(backbone, head, task, epochs, lr, plan=plan)


def _train_stream(rd: RunDir, ts: TaskStream, method_cls: type[Method], mcfg: Any, cfg: RunConfig, bb: Backbone,
                  pretrained: str | None, device: torch.device, t_start: float) -> RunResult:
    run_dir, resolved = rd.path, rd.config
    ckpt = rd.load_checkpoint() if rd.resumed else None
    fmt = resolve_memory_format(cfg.memory_format)
    if pretrained == "first-task":
        if ckpt is None:
            first = TrainPlan(cfg.first_task_epochs, len(batch_starts(len(ts[0].train), 32)), fmt, cfg.amp)
            bb.to(device)  # on the run's device, as its steps (before, a CUDA run pretrained on the CPU)
            pretrain_on_first_task(bb, ts[0], cfg.first_task_epochs, cfg.first_task_lr, cfg.seed, first)
    elif pretrained is not None:
        load_weights(bb, pretrained, kind=cfg.weights_kind)
    info = StreamInfo(tuple(t.num_classes for t in ts), tuple(t.name for t in ts))
    learner: Method = method_cls(bb, mcfg, info).to(device, memory_format=fmt)
    try:
        learner.set_scenario(cfg.scenario)
        learner.set_bn_stats(cfg.bn_stats)
    except ValueError as e:
        raise ConfigError(f"run: {e}") from None
    names = [t.name for t in ts]
    trackers, trains = None, start_task(ckpt) < len(ts)  # False: a finished run reopened
    if cfg.loggers and trains:
        from .. import tracking

        trackers = tracking.open_run(cfg.loggers, rd.path.parent, rd.path.name, resolved, run_dir,
                                     uri=cfg.tracking_uri, experiment=cfg.experiment)
    try:
        result = _train_tasks(rd, ts, learner, cfg, ckpt, names, device, fmt, trackers)
        if trains:
            _announce(result, time.perf_counter() - t_start)
        return result
    except BaseException:
        if trackers:
            trackers.finish(None, names, "", failed=True)
        raise


def start_task(ckpt: dict[str, Any] | None) -> int:
    """The first task a run still has to train (after a checkpoint's last completed task)."""
    return 0 if ckpt is None else ckpt["completed"] + 1


def _tracker_log(trackers, learner: Method, offset: int, every: int) -> Callable[[int], float]:
    """``train_task``'s ``log``: every ``every``-th step of the run (global numbering, across tasks), the
    step's named loss terms and the learning rate of each parameter group; returns its seconds."""
    def log(step: int) -> float:
        if (offset + step) % every:
            return 0.0
        t0 = time.perf_counter()
        values: dict[str, Any] = {f"train/{k}": v for k, v in (learner.terms or {}).items()}
        groups = learner.optimizer.param_groups if learner.optimizer is not None else []
        for g, group in enumerate(groups):
            values["train/lr" if g == 0 else f"train/lr_group{g}"] = group["lr"]
        trackers.step(values, offset + step)
        return time.perf_counter() - t0

    return log


def _train_tasks(rd: RunDir, ts: TaskStream, learner: Method, cfg: RunConfig, ckpt: dict[str, Any] | None,
                 names: list[str], device: torch.device, fmt: torch.memory_format, trackers) -> RunResult:
    run_dir, resolved, method_cls = rd.path, rd.config, type(learner)
    start, R, costs, steps = 0, np.full((len(ts), len(ts)), np.nan), [], []
    if ckpt is not None:  # verified by RunDir: written by this configuration (method and stream included)
        learner.restore(ckpt["state"])
        learner.to(device, memory_format=fmt)
        start, costs, steps = start_task(ckpt), ckpt["costs"], ckpt.get("steps", [])
        R[: start] = ckpt["R"].numpy()[: start]
        # the progress files may lag the checkpoint (a kill between the two writes): rewrite them from it
        results.write_progress(rd, R[: start], names, costs, len(ts), steps)
    if start >= len(ts):
        return RunResult(run_dir, R, resolved, names)
    learner.terms = {} if trackers else None
    kept_ids: dict[str, str] = {}  # tracking.json is written when the tracker run ids change
    rd.training()
    for i in _bar(range(start, len(ts)), cfg.progress, desc=f"{method_cls.name} on {ts.name}", initial=start,
                  total=len(ts)):
        task = ts[i]
        seed_everything(_derive(cfg.seed, i))
        gen = torch.Generator().manual_seed(_derive(cfg.seed, i, 1))
        learner.set_plan(TrainPlan(cfg.epochs, len(batch_starts(len(task.train), cfg.batch_size)), fmt, cfg.amp))
        learner.begin_task(i, task)
        learner.to(memory_format=fmt)  # modules a task adds take the run's layout too (parameters keep identity)
        probe_n = min(cfg.batch_size, len(task.train))
        xb = task.train.float_images()[:probe_n].to(device).contiguous(memory_format=fmt)
        yb = task.train.labels()[:probe_n].to(device)
        given = cfg.scenario == "task"  # the task id at test: task-IL only
        train_macs, infer_macs = _macs_per_image(learner, xb, yb, i, i if given else None, cfg.amp)
        probe = None
        offset = sum(cfg.epochs * len(batch_starts(len(ts[k].train), cfg.batch_size)) for k in range(i))
        if cfg.eval_every is not None:
            probe = _step_probe(learner, ts, i, offset, cfg, device, fmt, steps, given)
        log = train_task(learner, task, i, cfg, device, gen, probe,
                         _tracker_log(trackers, learner, offset, cfg.log_every) if trackers else None)
        learner.end_task(i, task)
        t0 = time.perf_counter()
        for j in range(i + 1):
            R[i, j] = evaluate(learner, ts[j], j if given else None, device, cfg.eval_batch_size,
                               split=cfg.eval_split, amp=cfg.amp, memory_format=fmt)
        eval_seconds = time.perf_counter() - t0
        c = learner.cost()
        costs.append({
            "task": i, "task_name": task.name, "classes": task.num_classes,
            "backbone_params": c.backbone_params, "task_params": c.task_params[i],
            "task_params_pct": c.percent(i), "total_params": c.total_params,
            "trainable_params": c.trainable_params, "extra_bytes": c.extra_bytes,
            "train_macs_per_image": train_macs, "infer_macs_per_image": infer_macs,
            "train_seconds": log["train_seconds"], "eval_seconds": eval_seconds,
            "images_per_second": log["images_per_second"], "final_loss": log["final_loss"],
            **({"step_eval_seconds": log["step_eval_seconds"]} if "step_eval_seconds" in log else {}),
            **learner.task_log(),
        })
        rd.save_checkpoint({"completed": i, "state": learner.checkpoint_state(), "R": torch.from_numpy(R.copy()),
                            "costs": costs, **({"steps": steps} if cfg.eval_every is not None else {})})
        results.write_progress(rd, R[: i + 1], names, costs, len(ts), steps)
        if trackers:
            if trackers.ids and trackers.ids != kept_ids:  # with the checkpoint: a resumed run continues them
                rd.write_json("tracking.json", trackers.ids)
                kept_ids = dict(trackers.ids)
            trackers.task(R, i, names, costs[-1])
    if trackers:
        trackers.finish(R, names, f"{method_cls.name} on {ts.name}")
    return RunResult(run_dir, R, resolved, names)
