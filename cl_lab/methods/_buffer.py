"""Reservoir-sampled replay buffer (Vitter's algorithm R), shared by ER and DER++.

Every example seen so far is in the buffer with the same probability ``size / seen``.
Random draws use the global torch RNG, which the runner seeds per task, so a resumed run
replays exactly what an uninterrupted one does. The buffer's tensors live in the method's
state dict (as extra state), so they round-trip through checkpoints.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from .base import Cost, Method


def reservoir_slots(seen: int, batch: int, size: int) -> list[tuple[int, int]]:
    """For a batch arriving after ``seen`` examples: (index in batch, buffer slot) pairs to write."""
    out = []
    for i in range(batch):
        n = seen + i
        if n < size:
            out.append((i, n))
        else:
            j = int(torch.randint(0, n + 1, (1,)))
            if j < size:
                out.append((i, j))
    return out


class ReservoirBuffer:
    """Fixed-size store of examples, labels, task ids and optional logits."""

    def __init__(self, size: int, logit_width: int = 0):
        self.size = size
        self.logit_width = logit_width
        self.seen = 0
        self.x: Tensor | None = None
        self.y = torch.zeros(size, dtype=torch.long)
        self.task = torch.zeros(size, dtype=torch.long)
        self.logits = torch.zeros(size, logit_width) if logit_width else None

    def __len__(self) -> int:
        return min(self.seen, self.size)

    def add(self, x: Tensor, y: Tensor, task_id: int, logits: Tensor | None = None) -> None:
        if self.x is None:
            self.x = torch.zeros(self.size, *x.shape[1:], dtype=x.dtype)
        for i, slot in reservoir_slots(self.seen, len(x), self.size):
            self.x[slot] = x[i].detach().cpu()
            self.y[slot] = y[i].cpu()
            self.task[slot] = task_id
            if self.logits is not None and logits is not None:
                self.logits[slot].zero_()
                self.logits[slot, : logits.shape[1]] = logits[i].detach().float().cpu()
        self.seen += len(x)

    def sample(self, n: int, like: Tensor) -> dict[str, Tensor]:
        """``n`` stored examples drawn uniformly without replacement (fewer if the buffer holds fewer), on
        the device of the batch ``like`` and with its images in that batch's memory layout (a replayed
        batch concatenated with a channels-last one stays channels-last, and so does its forward pass)."""
        idx = torch.randperm(len(self))[: min(n, len(self))]
        device = like.device
        out = {"x": batch_like(self.x[idx], like), "y": self.y[idx].to(device), "task": self.task[idx].to(device)}
        if self.logits is not None:
            out["logits"] = self.logits[idx].to(device)
        return out

    def nbytes(self) -> int:
        total = 0
        for t in (self.x, self.y, self.task, self.logits):
            if t is not None:
                total += t[: len(self)].numel() * t.element_size()
        return total

    def state(self) -> dict[str, Any]:
        return {"size": self.size, "seen": self.seen, "x": self.x, "y": self.y, "task": self.task,
                "logits": self.logits}

    def load(self, state: dict[str, Any]) -> None:
        if state["size"] != self.size:
            raise ValueError(f"buffer size in checkpoint ({state['size']}) != configured buffer_size ({self.size})")
        self.seen, self.x, self.y, self.task, self.logits = (state["seen"], state["x"], state["y"], state["task"],
                                                             state["logits"])


def as_float(x: Tensor) -> Tensor:
    """Stored images as float in [0, 1] (uint8 images are divided by 255)."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def batch_like(stored: Tensor, x: Tensor) -> Tensor:
    """Stored images as a batch to concatenate with ``x``: on its device, float in [0, 1], in its
    memory layout (channels-last when ``x`` is)."""
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return as_float(stored.to(x.device)).contiguous(memory_format=fmt)


def per_task_loss(method, x: Tensor, task: Tensor, fn) -> Tensor:
    """Mean over examples of ``fn(logits, index)`` with each example scored on its own task's head."""
    feats = method.backbone(x)
    total = feats.new_zeros(())
    for t in task.unique().tolist():
        mask = task == t
        total = total + fn(method.heads(feats[mask], t), mask) * mask.sum()
    return total / len(x)


class ReplayMethod(Method):
    """A method with a ``self.buffer``: its bytes count in the cost, its contents in the checkpoint.

    ``loss`` calls ``remember(x, y, task_id[, logits])``; the batch enters the buffer after the
    optimiser step (so this step's replay samples never include the batch itself).
    """

    stores_logits: ClassVar[bool] = False
    """True when the buffer also keeps the logits each example had when it was stored (DER++)."""
    _pending: tuple | None = None

    def __init__(self, backbone, config, stream):
        super().__init__(backbone, config, stream)
        self.buffer = ReservoirBuffer(config.buffer_size,
                                      logit_width=max(stream.num_classes) if self.stores_logits else 0)

    def set_scenario(self, scenario: str) -> None:
        super().set_scenario(scenario)
        if self.stores_logits and scenario == "class":  # logits over every class of the stream
            self.buffer = ReservoirBuffer(self.cfg.buffer_size, logit_width=sum(self.stream.num_classes))

    def remember(self, x: Tensor, y: Tensor, task_id: int, logits: Tensor | None = None) -> None:
        self._pending = (x, y, task_id, logits)

    def after_step(self) -> None:
        if self._pending is not None:
            self.buffer.add(*self._pending)
            self._pending = None

    def cost(self) -> Cost:
        c = super().cost()
        c.extra_bytes += self.buffer.nbytes()
        return c

    def get_extra_state(self) -> Any:
        return self.buffer.state()

    def set_extra_state(self, state: Any) -> None:
        self.buffer.load(state)
