"""What this machine gives a bare PyTorch training step, before any runner is involved.

``loop_overhead.py`` compares the runner with a plain contiguous loop; the runner cannot beat
the fastest bare loop by much, so ``runner_vs_plain`` is bounded by what the layout (and
precision) give the bare loop on this CPU. This script measures that bound directly: the
same SGD step (batch 64, 32x32 inputs, cross-entropy, momentum 0.9) on random data, for
each backbone, in

- ``contiguous``: PyTorch's default NCHW layout (the plain loop);
- ``channels_last``: model and images channels-last (what the runner uses on CPU);
- ``channels_last_bf16``: the same under CPU bfloat16 autocast (the runner keeps float32
  on CPU: bf16 changes results, and gains little without AMX);
- ``channels_last_compiled``: the step under ``torch.compile`` (only with ``--compile``;
  compiling costs tens of seconds per model, longer than most report runs).

Repeats rotate the order and medians are compared. The last line printed is JSON with each
variant's speed relative to ``contiguous``, per backbone, and the thread count.

    python benchmarks/layout_ceiling.py [--backbones resnet8 resnet18] [--steps 30] [--repeats 3] [--compile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from cl_lab.models import build_backbone


def step_speed(backbone_name: str, memory_format: torch.memory_format, bf16: bool = False, compiled: bool = False,
               batch_size: int = 64, steps: int = 30, warmup: int = 5) -> float:
    """Images per second of ``steps`` SGD steps after ``warmup`` untimed ones."""
    torch.manual_seed(0)
    backbone = build_backbone(backbone_name)
    model = torch.nn.Sequential(backbone, torch.nn.Linear(backbone.out_dim, 10)).to(memory_format=memory_format)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (batch_size,))

    def forward_backward() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss.detach()

    fb: Callable[[], torch.Tensor] = torch.compile(forward_backward) if compiled else forward_backward
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        fb()
        opt.step()
    return steps * batch_size / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbones", nargs="+", default=["resnet8", "resnet18"])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--compile", action="store_true", help="also time the step under torch.compile")
    args = p.parse_args()
    variants: dict[str, dict] = {
        "contiguous": {"memory_format": torch.contiguous_format},
        "channels_last": {"memory_format": torch.channels_last},
        "channels_last_bf16": {"memory_format": torch.channels_last, "bf16": True},
    }
    if args.compile:
        variants["channels_last_compiled"] = {"memory_format": torch.channels_last, "compiled": True}
    names = list(variants)
    ratios: dict[str, dict[str, float]] = {}
    for bb in args.backbones:
        runs: dict[str, list[float]] = {k: [] for k in names}
        for i in range(args.repeats):
            for k in names[i % len(names):] + names[: i % len(names)]:
                runs[k].append(step_speed(bb, batch_size=args.batch_size, steps=args.steps, **variants[k]))
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"{bb}, batch {args.batch_size}, {torch.get_num_threads()} threads")
        for k in names:
            print(f"  {k:24s} {med[k]:8.1f} images/s  x{med[k] / med['contiguous']:.2f}")
        ratios[bb] = {k: round(med[k] / med["contiguous"], 3) for k in names if k != "contiguous"}
    print(json.dumps({"vs_contiguous": ratios, "batch_size": args.batch_size, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
