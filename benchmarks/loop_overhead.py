"""Runner speed: SGD through ``cl_lab.run`` vs bare PyTorch loops, side by side in one process.

Same model (ResNet-8 + linear head, same init seed), same data, batch size and epochs;
all train from the same float tensors. Three loops:

- ``plain``: a bare loop in PyTorch's default (contiguous NCHW) layout;
- ``bare channels-last``: the same loop with model and images channels-last;
- ``runner``: ``cl_lab.run("sgd", ...)`` with its defaults (``memory_format="auto"``);
- ``runner compiled``: the same with ``compile=True``, after one untimed run that compiles (graphs
  are kept across runs of the process; the first run's extra seconds are printed as ``compile_s``).

The best bare loop is the faster of the two bare loops. Repeats rotate the order to cancel
drift; medians are compared. The last line printed is JSON:
``{"runner_vs_plain": x, "runner_vs_best_bare": y, "runner_compiled_vs_best_bare": z, ...}`` (targets on
ResNet-8 with 2 threads: >= 1.8 and >= 0.95; the compiled runner against eager bare loops).

    python benchmarks/loop_overhead.py [--backbone resnet8] [--epochs 2] [--repeats 3] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

import cl_lab
from cl_lab.data import TaskStream, load_stream
from cl_lab.models import build_backbone
from cl_lab.train.runner import seed_everything


def bare_loop(task, epochs: int, batch_size: int, seed: int, backbone_name: str = "resnet8",
              memory_format: torch.memory_format = torch.contiguous_format) -> float:
    seed_everything(seed)
    backbone = build_backbone(backbone_name).to(memory_format=memory_format)
    head = torch.nn.Linear(backbone.out_dim, task.num_classes)
    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    x, y = task.train.float_images().contiguous(memory_format=memory_format), task.train.labels()
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


def runner_loop(task, epochs: int, batch_size: int, seed: int, backbone_name: str = "resnet8",
                compile: bool = False) -> float:
    with tempfile.TemporaryDirectory() as out:
        r = cl_lab.run("sgd", TaskStream("bench", [task]), backbone=backbone_name, pretrained=None, epochs=epochs,
                       batch_size=batch_size, seed=seed, out=out, progress=False, device="cpu", compile=compile)
        if r.config["compile"] != compile:
            raise SystemExit("compile=True ran eagerly: torch.compile is unavailable here (--no-compile skips it)")
        return float(r.costs["images_per_second"].iloc[0])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-compile", dest="compile", action="store_false", help="leave the compiled runner out")
    args = p.parse_args()
    task = load_stream("synth-10")[0]
    loops = {
        "plain": lambda s: bare_loop(task, args.epochs, args.batch_size, s, args.backbone),
        "bare channels-last": lambda s: bare_loop(task, args.epochs, args.batch_size, s, args.backbone,
                                                  torch.channels_last),
        "runner": lambda s: runner_loop(task, args.epochs, args.batch_size, s, args.backbone),
    }
    first_rate = None
    if args.compile:
        loops["runner compiled"] = lambda s: runner_loop(task, args.epochs, args.batch_size, s, args.backbone, True)
        first_rate = loops["runner compiled"](0)  # compiles: its training time includes compiling
    names = list(loops)
    runs: dict[str, list[float]] = {k: [] for k in names}
    for i in range(args.repeats):
        for k in names[i % len(names):] + names[: i % len(names)]:
            runs[k].append(loops[k](i))
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"{args.backbone} on task {task.name}: {len(task.train)} images x {args.epochs} epochs, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads")
    for k in names:
        print(f"{k:20s}: {med[k]:8.1f} images/s  (runs: {', '.join(f'{v:.0f}' for v in runs[k])})")
    best = max(med["plain"], med["bare channels-last"])
    images = args.epochs * len(task.train)
    compile_s = round(images / first_rate - images / med["runner compiled"], 1) if args.compile else None
    compiled = ({"runner_compiled_vs_best_bare": round(med["runner compiled"] / best, 3),
                 "runner_compiled_vs_runner": round(med["runner compiled"] / med["runner"], 3), "compile_s": compile_s}
                if args.compile else {})
    print(json.dumps({"runner_vs_plain": round(med["runner"] / med["plain"], 3),
                      "runner_vs_best_bare": round(med["runner"] / best, 3), **compiled, "backbone": args.backbone,
                      "batch_size": args.batch_size, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
