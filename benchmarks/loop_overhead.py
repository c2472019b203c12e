"""Runner overhead: SGD through ``cl_lab.run`` vs a bare PyTorch loop, side by side in one process.

Same model (ResNet-8 + linear head, same init seed), same data, batch size and epochs;
both train from the same float tensors. Prints images/second of each and the ratio
runner / bare (target: >= 0.95). Repeats alternate the order to cancel drift.

    python benchmarks/loop_overhead.py [--epochs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

import cl_lab
from cl_lab.data import TaskStream, load_stream
from cl_lab.models import build_backbone
from cl_lab.train.runner import seed_everything


def bare_loop(task, epochs: int, batch_size: int, seed: int) -> float:
    seed_everything(seed)
    backbone = build_backbone("resnet8")
    head = torch.nn.Linear(backbone.out_dim, task.num_classes)
    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    x, y = task.train.float_images(), task.train.labels()
    g = torch.Generator().manual_seed(seed)
    backbone.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for b in range(0, len(y), batch_size):
            idx = perm[b: b + batch_size]
            if len(idx) < 2:
                continue
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(head(backbone(x[idx])), y[idx])
            loss.backward()
            opt.step()
            float(loss.detach())
    return epochs * len(y) / (time.perf_counter() - t0)


def runner_loop(task, epochs: int, batch_size: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        r = cl_lab.run("sgd", TaskStream("bench", [task]), pretrained=None, epochs=epochs, batch_size=batch_size,
                       seed=seed, out=out, progress=False, device="cpu")
        return float(r.costs["images_per_second"].iloc[0])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    task = load_stream("synth-10")[0]
    bare, runner = [], []
    for i in range(args.repeats):
        order = (bare_loop, runner_loop) if i % 2 == 0 else (runner_loop, bare_loop)
        for fn in order:
            ips = fn(task, args.epochs, args.batch_size, seed=i)
            (bare if fn is bare_loop else runner).append(ips)
    b, r = statistics.median(bare), statistics.median(runner)
    print(f"task {task.name}: {len(task.train)} images x {args.epochs} epochs, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads")
    print(f"bare loop : {b:8.1f} images/s  (runs: {', '.join(f'{v:.0f}' for v in bare)})")
    print(f"runner    : {r:8.1f} images/s  (runs: {', '.join(f'{v:.0f}' for v in runner)})")
    print(f"ratio runner/bare = {r / b:.3f}  (target >= 0.95)")


if __name__ == "__main__":
    main()
