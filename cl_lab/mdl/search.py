"""Phase 1 (search over the supernet) and phase 2 (training a model of chosen paths), plus evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.task import Split, Task
from .controller import ABDP, PathController, Reinforce, absolute_reward, check_convergence
from .space import BlockPath, MultiPathNet, SearchSpace

REWARDS = ("accuracy", "cost-only")


def domain_task(task: Task, max_train: int | None, seed: int, max_val: int | None = None) -> Task:
    """A domain for the search: ``task`` with float32 images, a validation split (carved off the
    training data when the task has none; at most ``max_val`` images, a fixed subset) and at most
    ``max_train`` training images."""
    x, y = task.train.float_images(), task.train.labels()
    if task.val is not None and len(task.val) > 0:
        xv, yv = task.val.float_images(), task.val.labels()
    else:  # carve a validation split off the training data
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(y), generator=g)
        n_val = max(1, len(y) // 10)
        xv, yv, x, y = x[perm[:n_val]], y[perm[:n_val]], x[perm[n_val:]], y[perm[n_val:]]
    if max_val is not None and len(yv) > max_val:
        keep = torch.randperm(len(yv), generator=torch.Generator().manual_seed(seed + 2))[:max_val]
        xv, yv = xv[keep], yv[keep]
    if max_train is not None and len(y) > max_train:
        g = torch.Generator().manual_seed(seed + 1)
        keep = torch.randperm(len(y), generator=g)[:max_train]
        x, y = x[keep], y[keep]
    return Task(task.name, task.class_names, train=Split(x, y), val=Split(xv, yv),
                test=Split(task.test.float_images(), task.test.labels()), objective=task.objective, meta=task.meta)


@dataclass
class SearchSettings:
    """Phase-1 settings. The controller settings follow TuNAS (see ``controller``); ``reward``
    ``"accuracy"`` is TuNAS's accuracy + cost term, ``"cost-only"`` drops the accuracy (a control:
    whatever sharing it finds is driven by the cost term alone)."""

    steps: int = 200
    warmup_fraction: float = 0.25
    batch_size: int = 32
    weight_lr: float = 0.05
    weight_decay: float = 4e-5
    controller_lr: float = 0.2
    baseline_momentum: float = 0.95
    cost_beta: float = -0.1
    cost_target_ratio: float = 0.5
    cost_kind: str = "macs"
    reward: str = "accuracy"
    loss: str = "abdp"
    abdp: dict = field(default_factory=dict)
    domain_bn: bool = True
    convergence_threshold: float = 0.3


@dataclass
class SearchResult:
    paths: dict[int, BlockPath]
    probabilities: dict[int, list[list[float]]]
    history: list[dict] = field(default_factory=list)
    cost_target: float = 0.0
    convergence: dict[str, dict] = field(default_factory=dict)


CHANNELS_LAST = torch.channels_last  # about 2x faster for these nets on CPU (depthwise and 1x1 convs)


def _batch(x: Tensor, y: Tensor, n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    idx = torch.randint(0, len(y), (min(n, len(y)),), generator=g)
    return x[idx].contiguous(memory_format=CHANNELS_LAST), y[idx]


def _fast(net: nn.Module) -> nn.Module:
    """The network in the channels-last layout (same numbers up to float rounding, faster)."""
    return net.to(memory_format=CHANNELS_LAST)


@torch.no_grad()
def _score(net: MultiPathNet, dom: Task, path: Sequence[int], d: int, chunk: int = 512) -> float:
    """Accuracy of ``path`` on the domain's whole, fixed validation split. BN uses the batch's
    statistics (the supernet is in training mode: its running statistics, shared by every
    path ever sampled, mean nothing for this one)."""
    correct = 0
    for b in range(0, len(dom.val), chunk):
        x = dom.val.x[b:b + chunk].contiguous(memory_format=CHANNELS_LAST)
        correct += int((net(x, path, d).argmax(1) == dom.val.y[b:b + chunk]).sum())
    return correct / len(dom.val)


def reward_signal(accuracies: Sequence[float], chance: Sequence[float], n_val: Sequence[int],
                  tail: float = 0.1) -> dict:
    """Did the accuracy term carry information? The mean reward accuracy over the last ``tail``
    of the controller's updates against chance (1 / classes): within 3 standard errors of a
    chance-level scorer on the validation split, the supernet has not learnt the domain and its
    path was chosen by the cost term (and noise) alone."""
    if not accuracies:
        return {"accuracy_end": float("nan"), "chance": float("nan"), "accuracy_informative": False}
    k = max(1, int(round(tail * len(accuracies))))
    end = sum(accuracies[-k:]) / k
    p = sum(chance) / len(chance)
    se = math.sqrt(p * (1 - p) / min(n_val))
    return {"accuracy_end": end, "chance": p, "accuracy_informative": end > p + 3 * se}


def search(space: SearchSpace, domains: Sequence[Task], s: SearchSettings, seed: int,
           shared_controller: bool = False, progress: Callable[[int, int], None] | None = None) -> SearchResult:
    """Train the supernet's shared weights and the controllers; return each domain's most likely path.

    ``shared_controller=False``: one controller per domain (MPNAS). ``True``: one controller
    for all domains, rewarded with the mean accuracy (the multi-head NAS comparison).
    Each step (as TuNAS) samples one path per domain for the weight update on a training
    batch and, after the warm-up, an independent one for the controller update, rewarded
    with its accuracy on the domain's whole validation split.
    """
    if s.reward not in REWARDS:
        raise ValueError(f"search reward {s.reward!r} unknown; allowed: {list(REWARDS)}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    n = len(domains)
    net = _fast(MultiPathNet(space, [d.num_classes for d in domains], domain_bn=s.domain_bn))
    opt = torch.optim.SGD(net.parameters(), lr=s.weight_lr, momentum=0.9, weight_decay=s.weight_decay, nesterov=True)
    controllers = [PathController(space.num_choices) for _ in range(1 if shared_controller else n)]
    rl = [Reinforce(c, s.controller_lr, s.baseline_momentum) for c in controllers]
    names = ["all"] if shared_controller else [d.name for d in domains]
    cost_of = net.path_macs if s.cost_kind == "macs" else net.path_params
    target = s.cost_target_ratio * cost_of(space.largest_path())
    loss_fn = ABDP([d.num_classes for d in domains], s.loss, **s.abdp)
    warmup = int(round(s.warmup_fraction * s.steps))
    history: list[dict] = []
    net.train()
    for step in range(s.steps):
        lr = 0.5 * s.weight_lr * (1 + math.cos(math.pi * step / s.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        paths = [controllers[0].sample(g)] * n if shared_controller else [c.sample(g) for c in controllers]
        losses, accs = [], []
        for d, dom in enumerate(domains):
            x, y = _batch(dom.train.x, dom.train.y, s.batch_size, g)
            logits = net(x, paths[d], d)
            losses.append(F.cross_entropy(logits, y))
            accs.append((logits.detach().argmax(1) == y).float().mean())
        total, weights = loss_fn.combine(torch.stack(losses), torch.stack(accs))
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if step >= warmup:
            for c, ctrl in enumerate(controllers):
                path = ctrl.sample(g)
                members = range(n) if shared_controller else [c]
                acc = sum(_score(net, domains[d], path, d) for d in members) / len(members)
                cost = cost_of(path, c)
                term = s.cost_beta * abs(cost / target - 1.0)
                reward = term if s.reward == "cost-only" else absolute_reward(acc, cost, target, s.cost_beta)
                adv = rl[c].step(path, reward)
                history.append({"step": step, "domain": names[c], "accuracy": acc, "cost": cost, "reward": reward,
                                "advantage": adv, "baseline": rl[c].baseline, "entropy": ctrl.entropy(),
                                "entropy_start": ctrl.max_entropy(),
                                "top_probability": ctrl.mean_top_probability(),
                                "loss_weight": float(weights[c]) if not shared_controller else 1.0})
        if progress is not None:
            progress(step + 1, s.steps)
    chosen = [c.most_likely() for c in controllers]
    paths_out = {d: chosen[0 if shared_controller else d] for d in range(n)}
    probs = {d: [p.tolist() for p in controllers[0 if shared_controller else d].probabilities()] for d in range(n)}
    convergence = {}
    for c, ctrl in enumerate(controllers):
        members = range(n) if shared_controller else [c]
        convergence[names[c]] = {
            **check_convergence(ctrl.max_entropy(), ctrl.entropy(), s.convergence_threshold),
            **reward_signal([h["accuracy"] for h in history if h["domain"] == names[c]],
                            [1 / domains[d].num_classes for d in members], [len(domains[d].val) for d in members])}
    return SearchResult(paths_out, probs, history, target, convergence)


@dataclass
class TrainSettings:
    epochs: int = 6
    batch_size: int = 32
    lr: float = 0.05
    weight_decay: float = 4e-5
    loss: str = "abdp"
    abdp: dict = field(default_factory=dict)
    domain_bn: bool = True


def train_model(space: SearchSpace, domains: Sequence[Task], paths: dict[int, BlockPath], t: TrainSettings,
                seed: int, net: nn.Module | None = None) -> nn.Module:
    """Phase 2: train all domains jointly, each along its path, and return the model.

    ``net=None`` builds the union of the paths' blocks from scratch (MPNAS's heterogeneous
    model); a given ``net`` (``forward(x, path, domain)``) is trained as it is, e.g. a
    pretrained shared backbone with a head per domain.
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    if net is None:
        net = MultiPathNet(space, [d.num_classes for d in domains], paths, domain_bn=t.domain_bn)
    net = _fast(net)
    opt = torch.optim.SGD(net.parameters(), lr=t.lr, momentum=0.9, weight_decay=t.weight_decay, nesterov=True)
    loss_fn = ABDP([d.num_classes for d in domains], t.loss, **t.abdp)
    active = sorted(paths)
    steps_per_epoch = max(math.ceil(len(domains[d].train) / t.batch_size) for d in active)
    total = t.epochs * steps_per_epoch
    net.train()
    for step in range(total):
        lr = 0.5 * t.lr * (1 + math.cos(math.pi * step / total))
        for group in opt.param_groups:
            group["lr"] = lr
        losses, accs = [], []
        for d in active:
            x, y = _batch(domains[d].train.x, domains[d].train.y, t.batch_size, g)
            logits = net(x, paths[d], d)
            losses.append(F.cross_entropy(logits, y))
            accs.append((logits.detach().argmax(1) == y).float().mean())
        loss, _ = loss_fn.combine(torch.stack(losses), torch.stack(accs))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net


@torch.no_grad()
def evaluate(net: nn.Module, domains: Sequence[Task], paths: dict[int, BlockPath], batch: int = 256) -> dict[int, float]:
    """Test accuracy of each domain along its path (BN in inference mode)."""
    net.eval()
    out = {}
    for d, path in paths.items():
        dom = domains[d]
        correct = 0
        for b in range(0, len(dom.test), batch):
            x = dom.test.x[b:b + batch].contiguous(memory_format=CHANNELS_LAST)
            correct += int((net(x, path, d).argmax(1) == dom.test.y[b:b + batch]).sum())
        out[d] = correct / len(dom.test)
    return out
