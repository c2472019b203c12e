"""The method contract: what every registered method promises, as checks anyone can run.

    from cl_lab.train.contract import check_method
    check_method("l2-anchor")          # raises ContractError naming the promise that is broken

``tests/test_contract.py`` runs these checks over ``method_names()``, so a method registered
later is covered without a line of test code. The promises:

- **builds**: the method's ``Config`` has a default for every field; built from them, the
  method trains (finite losses) and predicts finite logits as wide as the task (in the class
  scenario: as every class seen). Each method is checked in the first scenario it runs in.
- **cost**: ``cost()`` agrees with what the method holds. One ``task_params`` entry per task
  seen. ``backbone_params`` does not grow with the tasks and is the shared backbone's parameter
  count (the backbone the method was given, the one it holds now, or everything it held before
  its first task). ``trainable_params`` lies between the parameters the latest task's updates
  reached (they received a gradient) and those its optimiser held. Storage is accounted for:
  counting a parameter as 4 bytes, ``4 * (backbone_params + sum(task_params)) + extra_bytes``
  never exceeds the bytes of the tensors its checkpoint state holds; the bytes it leaves
  unreported never grow from one task to the next (what a task adds is reported; state
  allocated ahead, such as a replay buffer, may be reported as it fills); and the parameters
  and buffers added since the method was built take no more than ``4 * sum(task_params) +
  extra_bytes``.
- **modes**: after ``train()`` every frozen ``Teacher`` is in eval mode and its state does not
  change while the learner trains; after ``eval()`` no submodule is in training mode,
  ``predict`` changes no parameter, buffer or extra state, two calls give equal logits, and an
  example's logits do not depend on the rest of its batch.
- **restore**: ``checkpoint_state()`` is plain data (it survives ``torch.load(weights_only=True)``,
  as a run directory reads it), and a fresh method restored from it holds the same state, the
  same public data attributes and the same cost, predicts every task the same and trains on
  identically.
- **resume**, through the runner: a run stopped after task k and resumed by calling
  ``cl_lab.run`` again with the same arguments trains only the remaining tasks and ends with
  the uninterrupted run's accuracy matrix (bit for bit), final checkpoint state and cost
  records (timings aside). The stopped run is a copy of the uninterrupted run's directory
  taken right after the runner wrote the checkpoint of task k: what a run killed at that
  moment leaves behind, so the resume goes through ``RunDir``'s checkpoint and
  ``Method.restore``.

The first four are observed on one walk over a few images of each task (``walk``); the resume
check trains the whole stream through the runner. Both use a ResNet-8 of width 4 by default
(the contract is about bookkeeping, not accuracy; pass ``backbone="resnet8"`` for the real one).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..config import ConfigError, build
from ..data.incremental import for_scenario
from ..data.streams import load_stream
from ..data.task import Split, Task, TaskStream
from ..methods import Cost, Method, StreamInfo, get_method
from ..methods.base import Teacher, TrainPlan
from ..models.backbones import Backbone, build_backbone, cifar_resnet
from ..rundir import RunDir, read_checkpoint
from . import runner

BYTES_PER_PARAM = 4
"""A parameter counted in ``backbone_params`` or ``task_params`` stands for 4 bytes (float32)."""
TIMING = ("train_seconds", "eval_seconds", "images_per_second", "step_eval_seconds")
"""Cost-record columns that measure time, not state: the only ones a resumed run may change."""


def narrow_resnet8() -> Backbone:
    """The contract's default backbone: ResNet-8 at width 4 (the architecture of ``resnet8``, 1/16 of its FLOPs)."""
    return cifar_resnet(8, 4)


BackboneSpec = str | Callable[[], Backbone]


class ContractError(AssertionError):
    """A method breaks a promise of the method contract; the message names the method and the promise."""


def _fail(name: str, promise: str, message: str) -> ContractError:
    return ContractError(f"{name}: {promise}: {message}")


# ---------------------------------------------------------------------------------------------- data
def tiny_stream(stream: str | TaskStream = "synth-mini", n_train: int = 16, n_test: int = 16) -> TaskStream:
    """The first ``n_train`` training and ``n_test`` test images of every task of ``stream``."""
    ts = load_stream(stream) if isinstance(stream, str) else stream
    tasks = [dataclasses.replace(t, train=Split(t.train.x[:n_train], t.train.y[:n_train]), val=None,
                                 test=Split(t.test.x[:n_test], t.test.y[:n_test])) for t in ts]
    return TaskStream(f"{ts.name}-tiny", tasks)


def stream_info(ts: TaskStream) -> StreamInfo:
    return StreamInfo(tuple(t.num_classes for t in ts), tuple(t.name for t in ts))


def make_backbone(backbone: BackboneSpec, ts: TaskStream, seed: int = 0) -> Backbone:
    runner.seed_everything(seed)
    return build_backbone(backbone, ts[0].image_shape) if isinstance(backbone, str) else backbone()


def make_method(name: str, ts: TaskStream, backbone: BackboneSpec = narrow_resnet8, seed: int = 0,
                scenario: str | None = None, **config: Any) -> Method:
    """Method ``name`` built as the runner builds it: ``build(Config, config, name)`` (defaults for
    everything not given), a fresh randomly initialised backbone, the stream's class counts, in
    ``scenario`` (default: the first the method runs in)."""
    cls = get_method(name)
    cfg = build(cls.Config, config, name)
    method = cls(make_backbone(backbone, ts, seed), cfg, stream_info(ts))
    method.set_scenario(scenario or cls.scenarios[0])
    return method


def train_tiny_task(method: Method, task: Task, task_id: int, epochs: int = 2, batch: int = 8,
                    on_begin: Callable[[Method], None] | None = None,
                    on_step: Callable[[Method], None] | None = None) -> list[float]:
    """What the runner does with a task, on a few images: ``set_plan``, ``begin_task``, ``train()``,
    ``epochs`` epochs of ``observe`` over the task's training images in order, each followed by
    ``end_epoch``, then ``end_task``. Returns the losses."""
    x, y = task.train.float_images(), task.train.labels()
    starts = runner.batch_starts(len(y), batch)
    runner.seed_everything(100 + task_id)
    method.set_plan(TrainPlan(epochs, len(starts)))
    method.begin_task(task_id, task)
    method.train()
    if on_begin is not None:
        on_begin(method)
    losses = []
    for epoch in range(epochs):
        for b in starts:
            losses.append(float(method.observe(x[b: b + batch], y[b: b + batch], task_id)))
            if on_step is not None:
                on_step(method)
        method.end_epoch(task_id, epoch, epochs)
    method.end_task(task_id, task)
    return losses


# ---------------------------------------------------------------------------------------------- tensors
def _leaves(obj: Any) -> Iterator[Tensor]:
    """Every tensor in nested dicts, lists and tuples."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _leaves(v)


def stored_bytes(state: Any) -> int:
    """Bytes of the tensors in a (checkpoint) state, each storage once; 0-d tensors (flags, counters) left out."""
    seen, total = set(), 0
    for t in _leaves(state):
        if t.dim() == 0:
            continue
        key = (t.device, t.data_ptr(), t.numel(), t.dtype)
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


def module_bytes(method: nn.Module) -> int:
    """Bytes of the method's parameters and buffers (its state dict less extra state), as ``stored_bytes``."""
    return stored_bytes([v for k, v in method.state_dict().items() if not k.endswith("_extra_state")])


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two nested structures of tensors and plain values differ (tensors bit for bit); None if nowhere."""
    where = path or "the value"
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            return f"{where}: {type(a).__name__} vs {type(b).__name__}"
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"{where}: shape/dtype {tuple(a.shape)} {a.dtype} vs {tuple(b.shape)} {b.dtype}"
        if not torch.equal(a.detach().cpu(), b.detach().cpu()):
            return f"{where}: values differ"
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{where}: keys {sorted(map(str, set(a) ^ set(b)))} are in one only"
        for k in a:
            d = first_difference(a[k], b[k], f"{path}[{k!r}]")
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if type(a) is not type(b) or a != b:
        return f"{where}: {a!r} vs {b!r}"
    return None


def _is_data(obj: Any) -> bool:
    """Plain data: tensors (not parameters), None, numbers, strings, and lists, tuples and dicts of them."""
    if isinstance(obj, nn.Parameter):
        return False
    if isinstance(obj, (Tensor, type(None), bool, int, float, str)):
        return True
    if isinstance(obj, (list, tuple)):
        return all(_is_data(v) for v in obj)
    if isinstance(obj, dict):
        return all(isinstance(k, (str, int)) and _is_data(v) for k, v in obj.items())
    return False


def data_attributes(method: Method) -> dict[str, Any]:
    """The method's public instance attributes that hold plain data: what a restore must bring back
    (``_private`` attributes are the method's scratch space and caches)."""
    return {k: v for k, v in vars(method).items() if not k.startswith("_") and k != "training" and _is_data(v)}


def through_run_directory(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` through ``torch.save`` and ``torch.load(weights_only=True)``, as a run directory stores it."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------------- the walk
@dataclass
class TaskRecord:
    """One task of a walk: the cost record and the bytes of the checkpoint state after it, and the
    parameters the task's updates reached (gradient) and its optimiser held."""

    cost: Cost
    stored_bytes: int
    module_bytes: int
    backbone_now: int
    trained: int
    optimised: int


@dataclass
class Walk:
    """A method trained from its defaults over a tiny stream, with what the checks need (see ``walk``)."""

    name: str
    given_backbone_params: int
    params_at_construction: int
    module_bytes_at_construction: int
    tasks: list[TaskRecord] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=lambda: {"builds": [], "modes": [], "restore": []})


def _teachers(method: nn.Module) -> list[tuple[str, Teacher]]:
    return [(n, m) for n, m in method.named_modules() if isinstance(m, Teacher)]


def _eval_problems(method: Method, ts: TaskStream, upto: int) -> list[str]:
    """Eval-mode promises on every task seen so far (leaves the method in eval mode)."""
    problems = []
    method.eval()
    awake = [n or "<method>" for n, m in method.named_modules() if m.training]
    if awake:
        problems.append(f"after eval() these modules are still in training mode: {awake[:5]}")
    for t in range(upto + 1):
        x = ts[t].test.float_images()[:8]
        before = copy.deepcopy(method.state_dict())
        a = method.predict(x, method.test_id(t))
        b = method.predict(x, method.test_id(t))
        d = first_difference(before, method.state_dict())
        if d:
            problems.append(f"predict on task {t} changed the method's state ({d})")
        if not torch.equal(a, b):
            problems.append(f"two predict calls on task {t} in eval mode give different logits")
        part = method.predict(x[:3], method.test_id(t))
        if not torch.allclose(part, a[:3], rtol=1e-4, atol=1e-5):
            problems.append(f"in eval mode an example's logits on task {t} depend on the rest of its batch "
                            f"(largest change {float((part - a[:3]).abs().max()):.3g})")
    return problems


def _restore_problems(a: Method, make: Callable[[], Method], ts: TaskStream) -> tuple[list[str], Method | None]:
    """Restore ``a``'s checkpoint state into ``make()``; what differs, and the restored method."""
    try:
        state = through_run_directory(a.checkpoint_state())
    except Exception as e:  # noqa: BLE001 - any refusal is the finding
        return [f"checkpoint_state() is not plain data a run directory can store ({type(e).__name__}: {e})"], None
    b = make()
    b.restore(copy.deepcopy(state))
    d = first_difference(a.checkpoint_state(), b.checkpoint_state(), "state")
    if d:
        return [f"the restored method's checkpoint state differs: {d}"], b
    ours = data_attributes(b)
    for k, v in data_attributes(a).items():
        if k not in ours:
            return [f"attribute {k!r} is lost by checkpoint_state()/restore(); hold it in a buffer or name it in "
                    "the method's state_attributes"], b
        d = first_difference(v, ours[k], k)
        if d:
            return [f"attribute {k!r} is not restored ({d}); hold it in a buffer or name it in the method's "
                    "state_attributes"], b
    if a.cost() != b.cost():
        return [f"cost() differs after restore: {a.cost()} vs {b.cost()}"], b
    a.eval()
    b.eval()
    for t in range(len(a.task_classes)):
        x = ts[t].test.float_images()
        if not torch.equal(a.predict(x, a.test_id(t)), b.predict(x, b.test_id(t))):
            return [f"the restored method predicts task {t} differently"], b
    return [], b


class _TaskObserver:
    """Watches one task's training: the parameters its updates reach (gradient) and its optimiser holds,
    and every frozen teacher (eval mode after ``train()``, unchanged by the steps)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        self.trained: dict[int, nn.Parameter] = {}
        self.optimised: dict[int, nn.Parameter] = {}
        self.teacher_state: dict[str, Any] = {}

    def begin(self, m: Method) -> None:
        for n, teacher in _teachers(m):
            awake = [k or "<teacher>" for k, sub in teacher.named_modules() if sub.training]
            if awake:
                self.problems.append(f"after train() the frozen teacher {n!r} has modules in training mode: "
                                     f"{awake[:5]}")
            self.teacher_state[n] = copy.deepcopy(teacher.state_dict())
        for p in m.parameters():
            p.grad = None  # a gradient seen in step() then comes from this task's updates

    def step(self, m: Method) -> None:
        self.trained.update((id(p), p) for p in m.parameters() if p.grad is not None)
        groups = m.optimizer.param_groups if m.optimizer is not None else [{"params": m.trainable_parameters()}]
        self.optimised.update((id(p), p) for g in groups for p in g["params"])
        for n, teacher in _teachers(m):
            if n in self.teacher_state:
                d = first_difference(self.teacher_state[n], teacher.state_dict())
                if d:
                    self.problems.append(f"the frozen teacher {n!r} changed while the learner trained ({d})")
                    self.teacher_state.pop(n)


def walk(name: str, stream: str | TaskStream = "synth-mini", backbone: BackboneSpec = narrow_resnet8,
         n_tasks: int = 3, scenario: str | None = None, **config: Any) -> Walk:
    """Build ``name`` from its Config defaults (plus ``config``) and train it over the first ``n_tasks``
    tasks of ``tiny_stream(stream)``, observing every promise but resume on the way:

    - per task (``Walk.tasks``): the cost record and the bytes of the checkpoint state after it, the
      parameters its updates reached and its optimiser held;
    - ``Walk.problems["builds"]``: non-finite losses, bad logits;
    - ``Walk.problems["modes"]``: teachers awake or changing during training, eval-mode predictions that
      change state, differ between calls or depend on the batch (after every task, on every task seen);
    - ``Walk.problems["restore"]``: after the second task the checkpoint state is restored into a fresh
      method (another seed), compared, and both train on the third task and must predict alike.

    ``scenario``: the method's first by default (``Method.scenarios``); the stream then carries that
    scenario's labels and predictions are made with that scenario's task id (``Method.test_id``).
    """
    cls = get_method(name)
    scenario = scenario or cls.scenarios[0]
    ts = for_scenario(tiny_stream(stream), scenario)
    try:
        cfg = build(cls.Config, config, name)
    except (ConfigError, TypeError) as e:
        raise _fail(name, "builds", f"its Config does not build from defaults: {e}") from e
    bb = make_backbone(backbone, ts)
    given = sum(p.numel() for p in bb.parameters())
    method = cls(bb, cfg, stream_info(ts))
    method.set_scenario(scenario)
    w = Walk(name, given, sum(p.numel() for p in method.parameters()), module_bytes(method))
    twin: Method | None = None
    for t in range(min(n_tasks, len(ts))):
        seen = _TaskObserver(w.problems["modes"])
        losses = train_tiny_task(method, ts[t], t, on_begin=seen.begin, on_step=seen.step)
        if not np.all(np.isfinite(losses)):
            w.problems["builds"].append(f"training losses on task {t} are not finite: {losses}")
        w.tasks.append(TaskRecord(
            cost=method.cost(), stored_bytes=stored_bytes(method.checkpoint_state()), module_bytes=module_bytes(method),
            backbone_now=sum(p.numel() for p in method.backbone.parameters()),
            trained=sum(p.numel() for p in seen.trained.values()),
            optimised=sum(p.numel() for p in seen.optimised.values())))
        if t == 1:  # between tasks, before predicting (a cache that predict fills is no state)
            w.problems["restore"], twin = _restore_problems(
                method, lambda: make_method(name, ts, backbone, seed=1, scenario=scenario, **config), ts)
            twin = None if w.problems["restore"] else twin
        if t == 2 and twin is not None:
            train_tiny_task(twin, ts[t], t)
        x = ts[t].test.float_images()
        method.eval()
        logits = method.predict(x, method.test_id(t))
        width = sum(ts[j].num_classes for j in range(t + 1)) if scenario == "class" else ts[t].num_classes
        if tuple(logits.shape) != (len(x), width) or not bool(torch.isfinite(logits).all()):
            w.problems["builds"].append(f"predict on task {t} gives logits of shape {tuple(logits.shape)} (expected "
                                        f"{(len(x), width)}), finite: {bool(torch.isfinite(logits).all())}")
        w.problems["modes"].extend(_eval_problems(method, ts, t))
        if t == 2 and twin is not None:
            twin.eval()
            for j in range(3):
                x = ts[j].test.float_images()
                if not torch.equal(method.predict(x, method.test_id(j)), twin.predict(x, twin.test_id(j))):
                    w.problems["restore"].append(
                        f"trained on task 2 after the restore, it predicts task {j} differently from the method it "
                        "was restored from (state that steers training is missing from the checkpoint)")
                    break
    return w


def _walked(name_or_walk: str | Walk) -> Walk:
    return walk(name_or_walk) if isinstance(name_or_walk, str) else name_or_walk


def _raise_problems(w: Walk, promise: str) -> None:
    problems = list(dict.fromkeys(w.problems[promise]))
    if problems:
        raise _fail(w.name, promise, "; ".join(problems))


# ---------------------------------------------------------------------------------------------- checks
def check_builds(name_or_walk: str | Walk) -> None:
    """Built from its Config defaults, the method trains with finite losses and predicts finite logits of
    each task's width."""
    _raise_problems(_walked(name_or_walk), "builds")


def check_cost_entries(w: Walk) -> None:
    """One ``task_params`` entry per task seen; every count a non-negative int; a backbone of > 0 parameters."""
    for t, r in enumerate(w.tasks):
        c = r.cost
        if not isinstance(c, Cost):
            raise _fail(w.name, "cost", f"cost() returned {type(c).__name__}, not a Cost")
        if len(c.task_params) != t + 1:
            raise _fail(w.name, "cost", f"after {t + 1} task(s) task_params has {len(c.task_params)} entries")
        values = {"backbone_params": c.backbone_params, "trainable_params": c.trainable_params,
                  "extra_bytes": c.extra_bytes, **{f"task_params[{i}]": v for i, v in enumerate(c.task_params)}}
        bad = {k: v for k, v in values.items() if not isinstance(v, int) or isinstance(v, bool) or v < 0}
        if bad:
            raise _fail(w.name, "cost", f"after task {t} these are not non-negative ints: {bad}")
        if c.backbone_params <= 0:
            raise _fail(w.name, "cost", f"after task {t} backbone_params is {c.backbone_params}")


def check_backbone_params(w: Walk) -> None:
    """``backbone_params`` is the same after every task, and it is the backbone's parameter count: the
    backbone the method was given, the backbone it holds now, or everything it held before its first task."""
    counts = [r.cost.backbone_params for r in w.tasks]
    if len(set(counts)) > 1:
        raise _fail(w.name, "cost", f"backbone_params changes with the tasks seen ({counts}); what a task adds "
                                    "belongs in its task_params")
    for t, r in enumerate(w.tasks):
        if r.cost.backbone_params not in (w.given_backbone_params, r.backbone_now, w.params_at_construction):
            raise _fail(w.name, "cost", f"after task {t} backbone_params is {r.cost.backbone_params}: neither the "
                                        f"backbone given ({w.given_backbone_params}), the backbone held now "
                                        f"({r.backbone_now}) nor all parameters before the first task "
                                        f"({w.params_at_construction})")


def check_trainable_params(w: Walk) -> None:
    """``trainable_params`` after a task counts at least the parameters its updates reached (they received a
    gradient) and at most those its optimiser held."""
    for t, r in enumerate(w.tasks):
        if not r.trained <= r.cost.trainable_params <= r.optimised:
            raise _fail(w.name, "cost", f"after task {t} trainable_params is {r.cost.trainable_params}, but the "
                                        f"task's updates reached {r.trained} parameters and its optimiser held "
                                        f"{r.optimised}")


def check_storage_accounted(w: Walk) -> None:
    """Storage is accounted for. With the reported bytes ``4 * (backbone_params + sum(task_params)) +
    extra_bytes``: they never exceed the bytes of the checkpoint state; the bytes they leave unreported never
    grow from one task to the next; and the parameters and buffers the method added since it was built take
    no more bytes than ``4 * sum(task_params) + extra_bytes``."""
    unreported = []
    for t, r in enumerate(w.tasks):
        c = r.cost
        reported = BYTES_PER_PARAM * (c.backbone_params + sum(c.task_params)) + c.extra_bytes
        if reported > r.stored_bytes:
            raise _fail(w.name, "cost", f"after task {t} the cost record reports {reported} bytes, but the "
                                        f"checkpoint state holds {r.stored_bytes}")
        unreported.append(r.stored_bytes - reported)
        added = r.module_bytes - w.module_bytes_at_construction
        per_task = BYTES_PER_PARAM * sum(c.task_params) + c.extra_bytes
        if added > per_task:
            raise _fail(w.name, "cost", f"after task {t} the method holds {added} bytes of parameters and buffers "
                                        f"more than when it was built, but task_params and extra_bytes report "
                                        f"{per_task}; count the rest in task_params or extra_bytes")
    for t in range(1, len(unreported)):
        if unreported[t] > unreported[t - 1]:
            raise _fail(w.name, "cost", f"task {t} added {unreported[t] - unreported[t - 1]} bytes of state that "
                                        f"no cost entry reports (unreported bytes after each task: {unreported}); "
                                        "count them in task_params or extra_bytes")


COST_CHECKS = (check_cost_entries, check_backbone_params, check_trainable_params, check_storage_accounted)


def check_cost_records(name_or_walk: str | Walk) -> None:
    """Every cost check (``COST_CHECKS``) on a walk of the method."""
    w = _walked(name_or_walk)
    for check in COST_CHECKS:
        check(w)


def check_modes(name_or_walk: str | Walk) -> None:
    """Frozen teachers stay in eval mode and unchanged; eval-mode prediction changes nothing, is repeatable
    and per example."""
    _raise_problems(_walked(name_or_walk), "modes")


def check_restore(name_or_walk: str | Walk) -> None:
    """The checkpoint state is plain data and restores a method that holds, predicts and trains alike."""
    _raise_problems(_walked(name_or_walk), "restore")


# ---------------------------------------------------------------------------------------------- resume
@dataclass
class RecordedRun:
    """An uninterrupted run and copies of its directory taken right after the checkpoint of task k."""

    name: str
    stream: str | TaskStream
    kwargs: dict[str, Any]
    full: runner.RunResult
    stopped: dict[int, Path]
    """k (tasks completed) -> the ``out`` directory holding the copy; running with ``out=`` it resumes."""


@contextmanager
def _copies_after_checkpoints(out: Path, after: Sequence[int]) -> Iterator[dict[int, Path]]:
    """While active, a run directory under ``out`` is copied to ``out/stopped-after-k/`` right after the
    runner saved the checkpoint of its k-th task, for k in ``after``."""
    copies: dict[int, Path] = {}
    original = RunDir.save_checkpoint

    def save_and_copy(rd: RunDir, state: Any) -> Path:
        path = original(rd, state)
        done = int(state["completed"]) + 1
        if done in after and out in rd.path.resolve().parents:
            dest = out / f"stopped-after-{done}"
            shutil.copytree(rd.path, dest / rd.path.name)
            copies[done] = dest
        return path

    RunDir.save_checkpoint = save_and_copy  # type: ignore[method-assign]
    try:
        yield copies
    finally:
        RunDir.save_checkpoint = original  # type: ignore[method-assign]


def record_run(name: str, out: str | Path, after: Sequence[int] = (1, 2), stream: str | TaskStream = "synth-mini",
               backbone: BackboneSpec = narrow_resnet8, **run_kwargs: Any) -> RecordedRun:
    """Run ``name`` through ``cl_lab.run`` (``epochs=1``, ``pretrained=None``, no progress bars, unless
    given) into ``out/uninterrupted``, keeping a copy of its directory as it was after task k, for k in
    ``after``. ``backbone``: a name, or a function building the module (built once, seeded; the runner
    copies it for every run)."""
    out = Path(out).resolve()
    kwargs = {"epochs": 1, "pretrained": None, "progress": False, "scenario": get_method(name).scenarios[0],
              **run_kwargs}
    if not isinstance(backbone, str):
        runner.seed_everything(0)
        kwargs["backbone"] = backbone()
    else:
        kwargs["backbone"] = backbone
    with _copies_after_checkpoints(out, tuple(after)) as copies:
        full = runner.run(name, stream, out=str(out / "uninterrupted"), **kwargs)
    missing = [k for k in after if k not in copies]
    if missing:
        raise ValueError(f"no checkpoint after task(s) {missing}: the run has {len(full.task_names)} tasks")
    return RecordedRun(name, stream, kwargs, full, dict(copies))


def _without_timing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def check_resumed(rec: RecordedRun, after: int) -> None:
    """Resume the run stopped after task ``after`` by calling ``cl_lab.run`` again with the same arguments:
    the tasks done before the stop are not trained again, and the accuracy matrix (bit for bit), the final
    checkpoint state and the cost records (timings aside) equal the uninterrupted run's."""
    name, promise = rec.name, f"resume after task {after}"
    stopped = read_checkpoint(rec.stopped[after] / rec.full.run_dir.name / "checkpoint.pt")
    if stopped["completed"] + 1 != after:
        raise _fail(name, promise, f"the stopped run's checkpoint holds {stopped['completed'] + 1} tasks, not {after}")
    resumed = runner.run(name, rec.stream, out=str(rec.stopped[after]), **rec.kwargs)
    if resumed.run_dir.name != rec.full.run_dir.name:
        raise _fail(name, promise, f"the second call opened {resumed.run_dir.name}, not {rec.full.run_dir.name}")
    try:
        np.testing.assert_array_equal(resumed.R, rec.full.R)
    except AssertionError as e:
        raise _fail(name, promise, f"the accuracy matrix differs from the uninterrupted run's:{e}") from None
    full = read_checkpoint(rec.full.run_dir / "checkpoint.pt")
    again = read_checkpoint(resumed.run_dir / "checkpoint.pt")
    if again["costs"][:after] != stopped["costs"]:
        raise _fail(name, promise, "the cost records of the tasks done before the stop changed: they were trained "
                                   "again")
    d = first_difference(_without_timing(full["costs"]), _without_timing(again["costs"]), "costs")
    if d:
        raise _fail(name, promise, f"the cost records differ from the uninterrupted run's: {d}")
    d = first_difference(full["state"], again["state"], "state")
    if d:
        raise _fail(name, promise, f"the final method state differs from the uninterrupted run's: {d}")


def check_resume(name: str, out: str | Path, after: Sequence[int] = (1, 2), stream: str | TaskStream = "synth-mini",
                 backbone: BackboneSpec = narrow_resnet8, **run_kwargs: Any) -> None:
    """``record_run`` then ``check_resumed`` for every k in ``after`` (run directories go under ``out``)."""
    rec = record_run(name, out, after, stream, backbone, **run_kwargs)
    for k in after:
        check_resumed(rec, k)


# ---------------------------------------------------------------------------------------------- all
def check_method(name: str, out: str | Path | None = None, stream: str | TaskStream = "synth-mini",
                 backbone: BackboneSpec = narrow_resnet8, scenario: str | None = None, **run_kwargs: Any) -> None:
    """Every promise of the method contract for registered method ``name``; raises ``ContractError``.

    The resume check's run directories go under ``out`` (a temporary directory when None); ``run_kwargs``
    are passed to ``cl_lab.run`` (runner settings or the method's hyperparameters). ``scenario``: the
    method's first by default."""
    scenario = scenario or get_method(name).scenarios[0]
    run_kwargs["scenario"] = scenario
    w = walk(name, stream, backbone, scenario=scenario)
    check_builds(w)
    check_cost_records(w)
    check_modes(w)
    check_restore(w)
    if out is not None:
        check_resume(name, out, stream=stream, backbone=backbone, **run_kwargs)
        return
    with tempfile.TemporaryDirectory() as tmp:
        check_resume(name, tmp, stream=stream, backbone=backbone, **run_kwargs)
