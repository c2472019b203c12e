"""Per-domain RL controllers (TuNAS-style) and the ABDP domain-loss weights.

``PathController``: one independent categorical distribution per layer decision, logits
starting at 0 (uniform). ``Reinforce`` updates it with REINFORCE and a moving-average
baseline: ``loss = -(R - b) * log p(path)``, then ``b <- m b + (1 - m) R``. The reward is
``accuracy + beta * |cost / target - 1|`` (TuNAS's absolute-value reward, beta < 0).

The controller follows TuNAS (Bender et al. 2020): Adam with ``beta1 = 0`` (no momentum,
so a stale direction is not kept once the rewards change), baseline momentum 0.95, and a
learning rate held at 0 for the first part of the search while the shared weights warm up
(``search`` simply skips controller steps then).

ABDP (adaptive balanced domain prioritisation). The paper states the idea (weight domains
by their current difficulty, balanced across domains) but not the formula, so three
readings are implemented behind ``reading``; all are *our readings*, none is the paper's:

- ``"softmax"``: hardness = loss / log(num_classes) (``balanced``), smoothed by an
  exponential moving average (``smoothing``); weights ``D * softmax(hardness / temperature)``
  (they sum to the number of domains D, as a plain sum's weights do).
- ``"exp"``: exponential boosting, the total loss is ``sum_d exp(L_d / w)`` with ``w`` the
  temperature (``L_d`` divided by ``log(num_classes)`` first when ``balanced``), so each
  domain's gradient is scaled by ``exp(L_d / w) / w``; what a public reimplementation of
  MPNAS does. Normalised to sum to D these weights are the ``softmax`` reading without
  smoothing; unnormalised they also act as a larger step while losses are high.
- ``"dtp"``: Dynamic Task Prioritization (Guo et al. 2018): each domain's loss is weighted by
  the focal term ``-(1 - k)^gamma * log(k)`` of its running training accuracy ``k``
  (exponential moving average, ``smoothing``): domains that are still poorly solved get more.

``normalise=True`` rescales any reading's weights to sum to D, so that only the
prioritisation differs from a uniform sum and not the overall step size. The weights are
constants in the backward pass except in ``"exp"``, whose total is the differentiable
``sum exp(L_d / w)`` itself (unless normalised). ``mode="uniform"`` gives the plain sum.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

READINGS = ("softmax", "exp", "dtp")


class PathController(nn.Module):
    def __init__(self, num_choices: Sequence[int]):
        super().__init__()
        self.logits = nn.ParameterList(nn.Parameter(torch.zeros(n)) for n in num_choices)

    def probabilities(self) -> list[Tensor]:
        return [torch.softmax(lg.detach(), 0) for lg in self.logits]

    def sample(self, generator: torch.Generator) -> tuple[int, ...]:
        return tuple(int(torch.multinomial(p, 1, generator=generator)) for p in self.probabilities())

    def log_prob(self, path: Sequence[int]) -> Tensor:
        return sum(torch.log_softmax(lg, 0)[c] for lg, c in zip(self.logits, path))

    def most_likely(self) -> tuple[int, ...]:
        return tuple(int(lg.detach().argmax()) for lg in self.logits)

    def entropy(self) -> float:
        """Entropy of the whole path distribution (nats): the sum over layers."""
        return float(sum(-(p * p.clamp_min(1e-12).log()).sum() for p in self.probabilities()))

    def max_entropy(self) -> float:
        """Entropy of the uniform controller, where every search starts."""
        return float(sum(math.log(len(lg)) for lg in self.logits))

    def mean_top_probability(self) -> float:
        """Mean over layers of the most likely choice's probability (1/choices at the start, 1 when decided)."""
        probs = self.probabilities()
        return float(sum(float(p.max()) for p in probs) / len(probs))


class Reinforce:
    """REINFORCE with a moving-average baseline for one controller (Adam on its logits, TuNAS settings)."""

    def __init__(self, controller: PathController, lr: float = 0.2, momentum: float = 0.95,
                 betas: tuple[float, float] = (0.0, 0.999)):
        self.controller = controller
        self.optimizer = torch.optim.Adam(controller.parameters(), lr=lr, betas=betas)
        self.momentum = momentum
        self.baseline: float | None = None

    def step(self, path: Sequence[int], reward: float) -> float:
        """One policy-gradient step; returns the advantage ``R - b`` it used."""
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        self.optimizer.zero_grad(set_to_none=True)
        (-advantage * self.controller.log_prob(path)).backward()
        self.optimizer.step()
        self.baseline = self.momentum * self.baseline + (1 - self.momentum) * reward
        return advantage


def absolute_reward(accuracy: float, cost: float, target: float, beta: float) -> float:
    """TuNAS's reward ``accuracy + beta * |cost / target - 1|`` (beta < 0 penalises both sides)."""
    return accuracy + beta * abs(cost / target - 1.0)


def check_convergence(start: float, final: float, threshold: float = 0.3) -> dict:
    """A search has converged when its final entropy is at most ``threshold`` of its start."""
    ratio = final / start if start > 0 else 0.0
    return {"entropy_start": start, "entropy_final": final, "entropy_ratio": ratio, "converged": ratio <= threshold}


class ABDP:
    """Domain-loss weights; ``combine(losses, accuracies)`` returns the total loss and the weights used."""

    def __init__(self, num_classes: Sequence[int], mode: str = "abdp", temperature: float = 1.0,
                 smoothing: float = 0.9, balanced: bool = True, reading: str = "softmax", gamma: float = 2.0,
                 normalise: bool = False):
        if mode not in ("abdp", "uniform"):
            raise ValueError(f"domain loss mode {mode!r} unknown; allowed: ['abdp', 'uniform']")
        if reading not in READINGS:
            raise ValueError(f"ABDP reading {reading!r} unknown; allowed: {list(READINGS)}")
        if temperature <= 0 or not 0 <= smoothing < 1 or gamma < 0:
            raise ValueError("ABDP needs temperature > 0, 0 <= smoothing < 1 and gamma >= 0")
        self.mode, self.reading, self.temperature, self.smoothing = mode, reading, temperature, smoothing
        self.gamma, self.normalise = gamma, normalise
        self.scale = torch.tensor([math.log(max(k, 2)) if balanced else 1.0 for k in num_classes])
        self.hardness: Tensor | None = None
        self.accuracy: Tensor | None = None

    def _ema(self, old: Tensor | None, new: Tensor) -> Tensor:
        return new if old is None else self.smoothing * old + (1 - self.smoothing) * new

    def weights(self, losses: Tensor, accuracies: Tensor | None = None) -> Tensor:
        """The weight each domain's loss gets (constants; for ``exp`` the gradient scale of its total)."""
        losses = losses.detach().float().cpu()
        n = len(losses)
        if self.mode == "uniform":
            return torch.ones_like(losses)
        scale = self.scale[:n]
        if self.reading == "softmax":
            self.hardness = self._ema(self.hardness, losses / scale)
            w = n * torch.softmax(self.hardness / self.temperature, 0)
        elif self.reading == "exp":
            w = torch.exp(losses / scale / self.temperature) / (self.temperature * scale)
        else:
            if accuracies is None:
                raise ValueError("the 'dtp' ABDP reading needs each domain's batch accuracy")
            self.accuracy = self._ema(self.accuracy, accuracies.detach().float().cpu())
            k = self.accuracy.clamp(1e-3, 1 - 1e-6)
            w = (1 - k) ** self.gamma * -torch.log(k)
        return n * w / w.sum() if self.normalise else w

    def combine(self, losses: Tensor, accuracies: Tensor | None = None) -> tuple[Tensor, Tensor]:
        w = self.weights(losses, accuracies)
        if self.mode == "abdp" and self.reading == "exp" and not self.normalise:
            scale = self.scale[: len(losses)].to(losses.device)
            return torch.exp(losses / scale / self.temperature).sum(), w
        return (w.to(losses.device) * losses).sum(), w
