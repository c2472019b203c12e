"""The method interface: every CL method is a ``Method`` subclass with a learning rule.

The runner owns the loop, devices, evaluation and checkpoints; a method owns only
``begin_task`` / ``loss`` (or ``observe``) / ``end_task`` / ``predict`` / ``cost``. Its state
round-trips through ``checkpoint_state()`` / ``restore()`` so a run can resume after any task:
parameters, buffers and what a module returns from ``get_extra_state`` travel with the state
dict, and plain attributes named in ``Method.state_attributes`` travel beside it (see there).
``cl_lab.train.contract.check_method(name)`` checks this and the rest of the method contract.

Frozen networks that serve as targets (LwF's teacher, ResCL's source and fine-tuned
target) are held in a ``Teacher``: it stays in eval mode whatever ``train()`` the runner
calls, so its BatchNorm layers use and keep their running statistics, exactly as at test
time.

``bn_stats="per-task"`` (a runner option for the methods that train a shared backbone):
after each task the backbone's BatchNorm running statistics are stored for that task and
swapped in when that task is evaluated. The papers share one set of statistics
(``"shared"``, the default); the difference shows how much of the measured forgetting is
statistics drift rather than weight drift.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Iterator, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import param
from ..data.incremental import SCENARIOS
from ..data.task import Task
from ..models.backbones import HEADS, Backbone, MultiHead, count_params, freeze


@dataclass
class OptimConfig:
    """Optimiser settings shared by methods that train with SGD or Adam."""

    lr: float = param(0.01, "learning rate", gt=0, le=10)
    optimizer: Literal["sgd", "adam"] = param("sgd", "optimiser")
    momentum: float = param(0.9, "SGD momentum", ge=0, lt=1)
    weight_decay: float = param(0.0, "L2 weight decay", ge=0)
    max_grad_norm: float | None = param(
        None, "clip the gradient norm before each step (None: never); clipped steps are counted per task", gt=0)


LR_RANGE: dict[str, tuple] = {"sgd": ("log", 3e-4, 0.3), "adam": ("log", 3e-5, 0.03)}
"""The learning-rate range ``cl_lab.tune`` searches, one per optimiser and the same for every method
that trains with it: three decades around the usual values (SGD with momentum 0.9: 0.01; Adam: 1e-3)."""


@dataclass
class Cost:
    """Parameter and memory cost of a method after the tasks it has seen.

    ``task_params[i]`` counts the parameters stored for task i on top of the shared
    backbone (heads, adapters, masks as parameter-equivalents); ``extra_bytes`` counts
    other stored state (replay buffers, Fisher matrices, anchors).
    """

    backbone_params: int
    task_params: list[int] = field(default_factory=list)
    trainable_params: int = 0
    extra_bytes: int = 0

    @property
    def total_params(self) -> int:
        return self.backbone_params + sum(self.task_params)

    def percent(self, i: int) -> float:
        return 100.0 * self.task_params[i] / max(1, self.backbone_params)


@dataclass(frozen=True)
class StreamInfo:
    """What a method may know of the stream up front: the class count of each task."""

    num_classes: tuple[int, ...]
    task_names: tuple[str, ...]


@dataclass(frozen=True)
class TrainPlan:
    """What the runner will do on the current task: epochs and optimiser steps per epoch, and how its
    steps run (the images' memory layout, bfloat16 autocast), which a method's own side loops
    (``fit_supervised``: LwF's head warm-up, ResCL's fine-tuned target) follow too."""

    epochs: int
    steps_per_epoch: int
    memory_format: torch.memory_format = torch.contiguous_format
    amp: bool = False

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def layout(self, x: Tensor) -> Tensor:
        """A batch of images in the run's memory layout (other tensors as they are)."""
        return x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x

    def autocast(self, device_type: str):
        """The run's bfloat16 autocast (off unless the run uses ``amp``)."""
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.amp)


NO_PLAN = TrainPlan(1, 1)
"""Side loops called outside a run: contiguous images, no autocast."""


class Teacher(nn.Module):
    """A frozen copy of networks that serve as targets: no gradients, always in eval mode.

    ``teacher["backbone"]`` etc. give the copies. ``train()`` is a no-op, so a runner that
    switches the learner to training mode leaves the teacher's BatchNorm layers on their
    running statistics (which therefore never change).
    """

    def __init__(self, **modules: nn.Module):
        super().__init__()
        self.nets = nn.ModuleDict({k: freeze(copy.deepcopy(m)) for k, m in modules.items()})
        super().train(False)

    def train(self, mode: bool = True) -> Teacher:
        return super().train(False)

    def __getitem__(self, key: str) -> nn.Module:
        return self.nets[key]


BN_STATS = ("shared", "per-task")


@contextmanager
def swapped_bn(states: Iterable[tuple[nn.modules.batchnorm._BatchNorm, dict[str, Tensor]]]) -> Iterator[None]:
    """Within the block each BN holds the given tensors (any of ``weight``, ``bias``,
    ``running_mean``, ``running_var``); its own are put back afterwards, whatever happens."""
    saved = []
    try:
        with torch.no_grad():
            for bn, state in states:
                saved.append((bn, {k: getattr(bn, k).detach().clone() for k in state}))
                for k, v in state.items():
                    getattr(bn, k).copy_(v)
        yield
    finally:
        with torch.no_grad():
            for bn, state in saved:
                for k, v in state.items():
                    getattr(bn, k).copy_(v)


class Method(nn.Module):
    """Base class: a shared backbone plus one linear head per task, trained by SGD on CE.

    What a method keeps from one task to the next must survive a resume, because the runner
    rebuilds the method from its checkpoint (``checkpoint_state()``, then ``restore()`` into a
    fresh instance) before training the next task. Parameters and buffers do, and so does
    whatever a module returns from ``get_extra_state`` (EWC's Fishers, the replay buffer). A
    plain attribute does only when its name is in ``state_attributes``::

        class L2Anchor(Method):
            state_attributes = ("anchor",)

            def end_task(self, task_id, task):
                self.anchor = [p.detach().clone() for p in self.backbone.parameters()]
                super().end_task(task_id, task)

    An attribute left out is silently lost on resume (here the penalty would become 0). Caches
    that are rebuilt on demand and scratch state within a task belong in ``_private`` attributes.
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type] = OptimConfig
    pretrained_default: ClassVar[bool] = True
    shared_backbone: ClassVar[bool] = True
    """True for methods whose shared backbone keeps training (``bn_stats="per-task"`` applies)."""
    reference: ClassVar[bool] = False
    """True for the reference rows a method table is read against (``feature-extraction``,
    ``independent``, ``joint``: ``cl_lab.methods.reference``), not methods of their own."""
    scenarios: ClassVar[tuple[str, ...]] = ("task",)
    """The scenarios the method runs in (``cl_lab.data.incremental.SCENARIOS``): ``"task"`` only for a
    method that needs the task id at test (a head, mask, adapter or statistics per task); methods
    whose predictions need no task id add ``"domain"`` and ``"class"`` (their head is then the
    scenario's: ``set_scenario``)."""
    state_attributes: ClassVar[tuple[str, ...]] = ()
    """Plain attributes that are part of the method's state: tensors, numbers, strings, None and lists,
    tuples and dicts of them. ``checkpoint_state()`` saves each one that is set (under ``"attributes"``,
    a key present only when a method names some, so other checkpoints keep their layout) and
    ``restore()`` sets them again, tensors on the device of the method's parameters."""
    search_space: ClassVar[dict[str, tuple]] = {"lr": LR_RANGE["sgd"]}
    """What ``cl_lab.tune`` searches: ``Config`` field -> ``("log", low, high)``, ``("float", low, high)``,
    ``("int", low, high)`` or ``("choice", [v1, v2, ...])``. The learning-rate range is the same for every
    method with the same optimiser (``LR_RANGE``); a method adds its own strength and schedule next to
    its ``Config``."""

    terms: dict[str, Tensor] | None = None
    """This step's named loss terms (``record``), kept only while a tracker logs (``cl_lab.tracking``)."""

    def __init__(self, backbone: Backbone, config: Any, stream: StreamInfo):
        super().__init__()
        self.backbone = backbone
        self.cfg = config
        self.stream = stream
        self.heads = MultiHead(backbone.out_dim)
        self.task_classes: list[int] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self.plan: TrainPlan | None = None
        self.bn_stats = "shared"
        self.scenario = "task"
        self.bn_store = nn.Module()
        self._steps = self._clipped = 0

    def set_bn_stats(self, mode: str) -> None:
        """``"shared"`` (the papers) or ``"per-task"``; set before any task is added."""
        if mode not in BN_STATS:
            raise ValueError(f"bn_stats={mode!r} is not allowed; use one of {list(BN_STATS)}")
        if mode == "per-task" and not self.shared_backbone:
            raise ValueError(f"bn_stats='per-task' applies to methods that train a shared backbone; "
                             f"{self.name!r} keeps its own per-task BatchNorm or a frozen backbone already")
        if self.task_classes:
            raise RuntimeError("set_bn_stats must be called before the first task")
        self.bn_stats = mode

    def set_scenario(self, scenario: str) -> None:
        """``"task"`` (the default), ``"domain"`` or ``"class"``; set before any task is added. The
        heads become the scenario's (``models.backbones.HEADS``): one shared head (domain) or one head
        growing by each task's classes (class), both used without a task id."""
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario={scenario!r} is not allowed; use one of {list(SCENARIOS)}")
        if scenario not in self.scenarios:
            raise ValueError(scenario_error(self.name, scenario, self.scenarios))
        if self.task_classes:
            raise RuntimeError("set_scenario must be called before the first task")
        self.scenario = scenario
        if scenario != "task":
            self.heads = HEADS[scenario](self.heads.in_dim)

    def test_id(self, task_id: int) -> int | None:
        """What ``predict`` is told at test about task ``task_id``'s images: the id in the task
        scenario, nothing (None) in the domain and class scenarios."""
        return task_id if self.scenario == "task" else None

    def logit_width(self, task_id: int) -> int:
        """How many outputs the head gave for task ``task_id``'s images when that task was trained:
        its own classes (task, domain) or every class seen up to it (class)."""
        if self.scenario == "class":
            return sum(self.task_classes[: task_id + 1])
        return self.task_classes[task_id]

    def set_plan(self, plan: TrainPlan) -> None:
        """Told by the runner before ``begin_task``: how many epochs and steps the task gets."""
        self.plan = plan

    def _backbone_bns(self) -> list[nn.modules.batchnorm._BatchNorm]:
        return [m for m in self.backbone.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None]

    def add_task(self, task_id: int, num_classes: int) -> None:
        """Grow the structure for a task (heads, adapters); also called when restoring."""
        self.heads.add(task_id, num_classes)
        self.task_classes.append(num_classes)
        if self.bn_stats == "per-task":
            for i, bn in enumerate(self._backbone_bns()):
                self.bn_store.register_buffer(f"t{task_id}_{i}_mean", torch.zeros_like(bn.running_mean))
                self.bn_store.register_buffer(f"t{task_id}_{i}_var", torch.ones_like(bn.running_var))

    @torch.no_grad()
    def store_bn_stats(self, task_id: int) -> None:
        for i, bn in enumerate(self._backbone_bns()):
            getattr(self.bn_store, f"t{task_id}_{i}_mean").copy_(bn.running_mean)
            getattr(self.bn_store, f"t{task_id}_{i}_var").copy_(bn.running_var)

    def task_bn_stats(self, task_id: int):
        """Within the block the backbone's BN layers hold task ``task_id``'s stored statistics."""
        if self.bn_stats != "per-task" or not hasattr(self.bn_store, f"t{task_id}_0_mean"):
            return nullcontext()
        if self.optimizer is not None and task_id == len(self.task_classes) - 1:
            return nullcontext()  # the task in training (eval_every's probes): its statistics are not stored yet
        return swapped_bn((bn, {"running_mean": getattr(self.bn_store, f"t{task_id}_{i}_mean"),
                                "running_var": getattr(self.bn_store, f"t{task_id}_{i}_var")})
                          for i, bn in enumerate(self._backbone_bns()))

    def bn_stats_bytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.bn_store.buffers())

    def begin_task(self, task_id: int, task: Task) -> None:
        device = next(self.backbone.parameters()).device
        self.add_task(task_id, task.num_classes)
        self.to(device)
        self._steps = self._clipped = 0
        self.optimizer = self.make_optimizer(self.trainable_parameters())

    def observe(self, x: Tensor, y: Tensor, task_id: int) -> Tensor:
        """One optimisation step on a batch of the current task; returns the detached loss
        (a tensor, so the caller decides when to wait for the device).

        zero_grad, ``loss``, backward, optional gradient-norm clipping (``max_grad_norm``
        of ``OptimConfig``; clipped steps are counted and reported per task), step,
        ``after_step``. A method changes what is learned through ``loss`` (or
        ``penalty``) and ``after_step``, never by re-writing this step.
        """
        assert self.optimizer is not None, "begin_task must be called before observe"
        self.optimizer.zero_grad(set_to_none=True)
        if self.terms is not None:
            self.terms.clear()  # only this step's terms
        loss = self.loss(x, y, task_id)
        if self.terms is not None:
            self.terms["loss"] = loss.detach()
        loss.backward()
        clip = self.cfg.max_grad_norm
        if clip:
            norm = torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], clip)
            self._clipped += int(norm > clip)
        self._steps += 1
        self.optimizer.step()
        self.after_step()
        return loss.detach()

    def task_loss(self, x: Tensor, y: Tensor, task_id: int) -> Tensor:
        """Cross-entropy of the current task's head."""
        return F.cross_entropy(self(x, task_id), y)

    def loss(self, x: Tensor, y: Tensor, task_id: int) -> Tensor:
        """The training objective on one batch: the task loss plus ``penalty()``."""
        return self.record("task_loss", self.task_loss(x, y, task_id)) + self.record("penalty", self.penalty())

    def record(self, name: str, value: Any) -> Any:
        """Name a term of this step's loss for the experiment trackers and return it unchanged
        (``loss = self.record("task_loss", ce) + ...``): free when no tracker logs the run."""
        if self.terms is not None and isinstance(value, Tensor):
            self.terms[name] = value.detach()
        return value

    def penalty(self) -> Tensor | float:
        """Extra regularisation added to the task loss (EWC, SI, ...). Zero here."""
        return 0.0

    def consolidated_parameters(self) -> dict[str, nn.Parameter]:
        """The trainable parameters every task shares, by name, for the regularisers' importances and
        anchors: the backbone's, and in the domain and class scenarios also the one head's
        (``heads.``-prefixed), which every task trains too (as van de Ven et al. 2022 do). In the task
        scenario each task's head is its own and trains only with its task."""
        out = {k: p for k, p in self.backbone.named_parameters() if p.requires_grad}
        if self.scenario != "task":
            out.update({f"heads.{k}": p for k, p in self.heads.named_parameters() if p.requires_grad})
        return out

    def after_step(self) -> None:
        """Called after every optimiser step (proximal steps, path integrals, buffer updates)."""

    def task_log(self) -> dict[str, float]:
        """Diagnostics of the task just trained, written as extra columns of ``costs.csv``."""
        out: dict[str, float] = {}
        if self.cfg.max_grad_norm:
            out["clipped_fraction"] = self._clipped / max(1, self._steps)
        return out

    def end_epoch(self, task_id: int, epoch: int, epochs: int) -> None:
        """Called after each of the runner's ``epochs`` epochs (0-based ``epoch``): LR schedules."""

    def end_task(self, task_id: int, task: Task) -> None:
        self.optimizer = None
        if self.bn_stats == "per-task":
            self.store_bn_stats(task_id)

    def forward(self, x: Tensor, task_id: int) -> Tensor:
        return self.heads(self.backbone(x), task_id)

    @torch.no_grad()
    def predict(self, x: Tensor, task_id: int | None) -> Tensor:
        """Logits for task ``task_id`` (task identity given at test time); ``None`` in the domain and
        class scenarios, where no task id is given: the scenario's head answers alone."""
        if task_id is None:
            return self(x, None)
        with self.task_bn_stats(task_id):
            return self(x, task_id)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def make_optimizer(self, params: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
        c = self.cfg
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)

    def head_params(self, task_id: int) -> int:
        return self.heads.params_of(task_id)

    def cost(self) -> Cost:
        return Cost(
            backbone_params=count_params(self.backbone),
            task_params=[self.head_params(i) for i in range(len(self.task_classes))],
            trainable_params=sum(p.numel() for p in self.trainable_parameters()),
            extra_bytes=self.bn_stats_bytes(),
        )

    def checkpoint_state(self) -> dict[str, Any]:
        """The method's state as tensors and plain containers: what a run directory stores after each task."""
        state = {"name": self.name, "task_classes": list(self.task_classes), "module": self.state_dict()}
        if self.state_attributes:
            attributes = {k: getattr(self, k) for k in self.state_attributes if hasattr(self, k)}
            for k, v in attributes.items():
                _check_plain(v, f"{type(self).__name__}.{k} (named in state_attributes)")
            state["attributes"] = attributes
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Rebuild per-task structure, then load every tensor (strict) and the ``state_attributes``."""
        if state.get("name") != self.name:
            raise ValueError(f"checkpoint holds method {state.get('name')!r}, not {self.name!r}")
        if self.state_attributes and "attributes" not in state:
            raise ValueError(f"this checkpoint of {self.name!r} holds none of its state_attributes "
                             f"{list(self.state_attributes)} (it was written before they were declared); resuming "
                             "from it would lose them: start the run again in another directory")
        for i, k in enumerate(state["task_classes"]):
            self.add_task(i, k)
        self.load_state_dict(state["module"], strict=True)
        if self.state_attributes:
            first = next(self.parameters(), None)
            device = first.device if first is not None else torch.device("cpu")
            for k, v in state["attributes"].items():
                setattr(self, k, _to_device(v, device))


def scenario_error(method: str, scenario: str, allowed: Sequence[str]) -> str:
    """The one-line refusal of a method outside its scenarios."""
    from .registry import method_names

    able = method_names(scenario)
    why = " (it needs the task id at test)" if tuple(allowed) == ("task",) else ""
    return (f"method {method!r} does not run in scenario {scenario!r}{why}; it runs in {list(allowed)}. Methods for "
            f"{scenario!r}: {able}")


class IsolatedMethod(Method):
    """Base of parameter-isolation methods: task t trains ``task_parameters(t)`` (plus any shared
    trainable weights), and those are frozen for good once the task ends."""

    shared_backbone = False

    def task_parameters(self, task_id: int) -> list[nn.Parameter]:
        raise NotImplementedError

    def freeze_task(self, task_id: int) -> None:
        for p in self.task_parameters(task_id):
            p.requires_grad_(False)
            p.grad = None

    def begin_task(self, task_id: int, task: Task) -> None:
        device = next(self.backbone.parameters()).device
        self.add_task(task_id, task.num_classes)
        self.to(device)
        for t in range(task_id):
            self.freeze_task(t)
        self._steps = self._clipped = 0
        self.optimizer = self.make_optimizer(self.trainable_parameters())

    def end_task(self, task_id: int, task: Task) -> None:
        self.freeze_task(task_id)
        super().end_task(task_id, task)

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        for t in range(len(self.task_classes)):
            self.freeze_task(t)


def fit_supervised(params: Iterable[nn.Parameter], logits: Callable[[Tensor], Tensor], x: Tensor, y: Tensor,
                   epochs: int, lr: float, *, weight_decay: float = 0.0, batch_size: int = 32,
                   plan: TrainPlan | None = None) -> None:
    """The one side training loop: cross-entropy of ``logits(x)`` over ``epochs`` shuffled epochs
    (SGD, momentum 0.9), for what a method trains before its learning rule starts.

    It runs as the runner's steps do: images in the run's memory layout and under its bfloat16
    autocast (``plan``, which the runner sets before ``begin_task``), batches drawn from the
    global generator the runner seeds for every task (so a resumed run draws what an
    uninterrupted one does). The last batch of an epoch is dropped when it has one image (BatchNorm)."""
    plan = plan or NO_PLAN
    opt = torch.optim.SGD(list(params), lr=lr, momentum=0.9, weight_decay=weight_decay)
    x = plan.layout(x)
    y = y.to(x.device)
    for _ in range(epochs):
        perm = torch.randperm(len(y)).to(x.device)
        for b in range(0, len(y) - 1, batch_size):
            idx = perm[b: b + batch_size]
            opt.zero_grad(set_to_none=True)
            with plan.autocast(x.device.type):
                loss = F.cross_entropy(logits(x[idx]), y[idx])
            loss.backward()
            opt.step()


def fit_on_task(model: nn.Module, head: nn.Module, task: Task, epochs: int, lr: float,
                weight_decay: float = 0.0, batch_size: int = 32, plan: TrainPlan | None = None) -> None:
    """Plain supervised training of ``head(model(x))`` on a task's training split (``fit_supervised``),
    ``model`` in training mode (and in the plan's memory layout, when there is a plan).

    Used where a network is trained before a method's learning rule starts (ResCL's fine-tuned
    target, the runner's ``pretrained='first-task'`` backbone).
    """
    device = next(model.parameters()).device
    if plan is not None:
        model.to(memory_format=plan.memory_format)
    model.train()
    fit_supervised([*model.parameters(), *head.parameters()], lambda x: head(model(x)),
                   task.train.float_images().to(device), task.train.labels(), epochs, lr,
                   weight_decay=weight_decay, batch_size=batch_size, plan=plan)


def _check_plain(value: Any, where: str) -> None:
    """Refuse what a run directory cannot store (it reads checkpoints with ``weights_only=True``)."""
    if isinstance(value, (Tensor, type(None), bool, int, float, str)) and not isinstance(value, nn.Parameter):
        return
    if type(value) in (list, tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where} has a key of type {type(k).__name__}; keys must be str or int")
            _check_plain(v, f"{where}[{k!r}]")
        return
    hint = " (save p.detach().clone(), not the parameter)" if isinstance(value, nn.Parameter) else ""
    raise TypeError(f"{where} holds a {type(value).__name__}{hint}; a checkpoint stores only tensors, numbers, "
                    "strings, None and lists, tuples and dicts of them")


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, list):
        return [_to_device(v, device) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value
