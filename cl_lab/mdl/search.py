"""Phase 1 (search over the supernet) and phase 2 (training a model of chosen paths), plus evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.task import Split, Task
from .controller import ABDP, PathController, Reinforce, absolute_reward
from .space import BlockPath, MultiPathNet, SearchSpace


def domain_task(task: Task, max_train: int | None, seed: int) -> Task:
    """A domain for the search: ``task`` with float32 images, a validation split (carved off the
    training data when the task has none) and at most ``max_train`` training images."""
    x, y = task.train.float_images(), task.train.labels()
    if task.val is not None and len(task.val) > 0:
        xv, yv = task.val.float_images(), task.val.labels()
    else:  # carve a validation split off the training data
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(y), generator=g)
        n_val = max(1, len(y) // 10)
        xv, yv, x, y = x[perm[:n_val]], y[perm[:n_val]], x[perm[n_val:]], y[perm[n_val:]]
    if max_train is not None and len(y) > max_train:
        g = torch.Generator().manual_seed(seed + 1)
        keep = torch.randperm(len(y), generator=g)[:max_train]
        x, y = x[keep], y[keep]
    return Task(task.name, task.class_names, train=Split(x, y), val=Split(xv, yv),
                test=Split(task.test.float_images(), task.test.labels()), objective=task.objective, meta=task.meta)


@dataclass
class SearchSettings:
    steps: int = 200
    warmup_fraction: float = 0.25
    batch_size: int = 32
    val_batch_size: int = 64
    weight_lr: float = 0.05
    weight_decay: float = 4e-5
    controller_lr: float = 0.05
    baseline_momentum: float = 0.9
    cost_beta: float = -0.5
    cost_target_ratio: float = 0.5
    cost_kind: str = "macs"
    loss: str = "abdp"
    abdp_temperature: float = 1.0
    abdp_smoothing: float = 0.9


@dataclass
class SearchResult:
    paths: dict[int, BlockPath]
    probabilities: dict[int, list[list[float]]]
    history: list[dict] = field(default_factory=list)
    cost_target: float = 0.0


def _batch(x: Tensor, y: Tensor, n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    idx = torch.randint(0, len(y), (min(n, len(y)),), generator=g)
    return x[idx], y[idx]


def search(space: SearchSpace, domains: Sequence[Task], s: SearchSettings, seed: int,
           shared_controller: bool = False, progress: Callable[[int, int], None] | None = None) -> SearchResult:
    """Train the supernet's shared weights and the controllers; return each domain's most likely path.

    ``shared_controller=False``: one controller per domain (MPNAS). ``True``: one controller
    for all domains, rewarded with the mean accuracy (the multi-head NAS comparison).
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    n = len(domains)
    net = MultiPathNet(space, [d.num_classes for d in domains])
    opt = torch.optim.SGD(net.parameters(), lr=s.weight_lr, momentum=0.9, weight_decay=s.weight_decay, nesterov=True)
    controllers = [PathController(space.num_choices) for _ in range(1 if shared_controller else n)]
    rl = [Reinforce(c, s.controller_lr, s.baseline_momentum) for c in controllers]
    cost_of = net.path_macs if s.cost_kind == "macs" else net.path_params
    target = s.cost_target_ratio * cost_of(space.largest_path())
    loss_fn = ABDP([d.num_classes for d in domains], s.loss, s.abdp_temperature, s.abdp_smoothing)
    warmup = int(round(s.warmup_fraction * s.steps))
    history: list[dict] = []
    net.train()
    for step in range(s.steps):
        lr = 0.5 * s.weight_lr * (1 + math.cos(math.pi * step / s.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        if shared_controller:
            one = controllers[0].sample(g)
            paths = [one] * n
        else:
            paths = [c.sample(g) for c in controllers]
        losses = []
        for d, dom in enumerate(domains):
            x, y = _batch(dom.train.x, dom.train.y, s.batch_size, g)
            losses.append(F.cross_entropy(net(x, paths[d], d), y))
        total, weights = loss_fn.combine(torch.stack(losses))
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if step >= warmup:
            accs = []
            with torch.no_grad():  # batch statistics: a supernet's running statistics mean nothing
                for d, dom in enumerate(domains):
                    x, y = _batch(dom.val.x, dom.val.y, s.val_batch_size, g)
                    accs.append(float((net(x, paths[d], d).argmax(1) == y).float().mean()))
            if shared_controller:
                groups = [(0, paths[0], sum(accs) / n, "all")]
            else:
                groups = [(d, paths[d], accs[d], domains[d].name) for d in range(n)]
            for c, path, acc, who in groups:
                cost = cost_of(path)
                reward = absolute_reward(acc, cost, target, s.cost_beta)
                adv = rl[c].step(path, reward)
                history.append({"step": step, "domain": who, "accuracy": acc, "cost": cost, "reward": reward,
                                "advantage": adv, "baseline": rl[c].baseline, "entropy": controllers[c].entropy(),
                                "loss_weight": float(weights[c]) if not shared_controller else 1.0})
        if progress is not None:
            progress(step + 1, s.steps)
    chosen = [c.most_likely() for c in controllers]
    paths_out = {d: chosen[0 if shared_controller else d] for d in range(n)}
    probs = {d: [p.tolist() for p in controllers[0 if shared_controller else d].probabilities()] for d in range(n)}
    return SearchResult(paths_out, probs, history, target)


@dataclass
class TrainSettings:
    epochs: int = 6
    batch_size: int = 32
    lr: float = 0.05
    weight_decay: float = 4e-5
    loss: str = "abdp"
    abdp_temperature: float = 1.0
    abdp_smoothing: float = 0.9


def train_model(space: SearchSpace, domains: Sequence[Task], paths: dict[int, BlockPath], t: TrainSettings,
                seed: int) -> MultiPathNet:
    """Phase 2: build the union of the paths' blocks from scratch and train all domains jointly."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = MultiPathNet(space, [d.num_classes for d in domains], paths)
    opt = torch.optim.SGD(net.parameters(), lr=t.lr, momentum=0.9, weight_decay=t.weight_decay, nesterov=True)
    loss_fn = ABDP([d.num_classes for d in domains], t.loss, t.abdp_temperature, t.abdp_smoothing)
    active = sorted(paths)
    steps_per_epoch = max(math.ceil(len(domains[d].train) / t.batch_size) for d in active)
    total = t.epochs * steps_per_epoch
    net.train()
    for step in range(total):
        lr = 0.5 * t.lr * (1 + math.cos(math.pi * step / total))
        for group in opt.param_groups:
            group["lr"] = lr
        losses = []
        for d in active:
            x, y = _batch(domains[d].train.x, domains[d].train.y, t.batch_size, g)
            losses.append(F.cross_entropy(net(x, paths[d], d), y))
        loss, _ = loss_fn.combine(torch.stack(losses))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net


@torch.no_grad()
def evaluate(net: MultiPathNet, domains: Sequence[Task], paths: dict[int, BlockPath], batch: int = 256) -> dict[int, float]:
    """Test accuracy of each domain along its path (BN in inference mode)."""
    net.eval()
    out = {}
    for d, path in paths.items():
        dom = domains[d]
        correct = 0
        for b in range(0, len(dom.test), batch):
            correct += int((net(dom.test.x[b:b + batch], path, d).argmax(1) == dom.test.y[b:b + batch]).sum())
        out[d] = correct / len(dom.test)
    return out
