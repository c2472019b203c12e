"""Per-domain RL controllers (TuNAS-style) and the ABDP loss.

``PathController``: one independent categorical distribution per layer decision, logits
starting at 0 (uniform). ``Reinforce`` updates it with REINFORCE and a moving-average
baseline: ``loss = -(R - b) * log p(path)``, then ``b <- m b + (1 - m) R``. The reward is
``accuracy + beta * |cost / target - 1|`` (TuNAS's absolute-value reward, beta < 0).

``ABDP`` (adaptive balanced domain prioritisation). The paper's summary gives the idea, not
the formula; our reading, every part a parameter:
- each domain's hardness is its current loss divided by the loss of a uniform guess,
  ``log(num_classes)`` (``balanced=True``), so domains with more classes do not look
  harder just because their cross-entropy scale is larger;
- hardness is smoothed with an exponential moving average (``smoothing``), since one
  batch's loss is noisy;
- weights are ``D * softmax(hardness / temperature)``: they sum to the number of domains
  D (a uniform sum has every weight 1), and a harder domain gets a larger weight;
- the weights are constants in the backward pass (no gradient through them).
``mode="uniform"`` gives the plain sum of domain losses.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn


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
        return float(sum(-(p * p.clamp_min(1e-12).log()).sum() for p in self.probabilities()))


class Reinforce:
    """REINFORCE with a moving-average baseline for one controller (Adam on its logits)."""

    def __init__(self, controller: PathController, lr: float = 0.05, momentum: float = 0.9):
        self.controller = controller
        self.optimizer = torch.optim.Adam(controller.parameters(), lr=lr)
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


class ABDP:
    """Domain weights from current hardness; ``combine(losses)`` returns the weighted sum and weights."""

    def __init__(self, num_classes: Sequence[int], mode: str = "abdp", temperature: float = 1.0,
                 smoothing: float = 0.9, balanced: bool = True):
        if mode not in ("abdp", "uniform"):
            raise ValueError(f"domain loss mode {mode!r} unknown; allowed: ['abdp', 'uniform']")
        if temperature <= 0 or not 0 <= smoothing < 1:
            raise ValueError("ABDP needs temperature > 0 and 0 <= smoothing < 1")
        self.mode, self.temperature, self.smoothing = mode, temperature, smoothing
        self.scale = torch.tensor([math.log(max(k, 2)) if balanced else 1.0 for k in num_classes])
        self.hardness: Tensor | None = None

    def weights(self, losses: Tensor) -> Tensor:
        losses = losses.detach().float().cpu()
        if self.mode == "uniform":
            return torch.ones_like(losses)
        h = losses / self.scale[: len(losses)]
        self.hardness = h if self.hardness is None else self.smoothing * self.hardness + (1 - self.smoothing) * h
        return len(losses) * torch.softmax(self.hardness / self.temperature, 0)

    def combine(self, losses: Tensor) -> tuple[Tensor, Tensor]:
        w = self.weights(losses)
        return (w.to(losses.device) * losses).sum(), w
