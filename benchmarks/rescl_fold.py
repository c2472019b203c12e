"""ResCL inference latency: folded network vs the original network vs the unfolded combined network.

All three are timed side by side in one process on the same inputs, alternating order
over repeats; medians are reported with the ratios folded/original (target 1.00) and
combined/folded (expected about 2x).

    python benchmarks/rescl_fold.py [--backbone resnet8] [--batch 64] [--repeats 30]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from cl_lab.methods.rescl import Combined, combine_networks, fold_network
from cl_lab.models import build_backbone


@torch.no_grad()
def latency(net: torch.nn.Module, x: torch.Tensor, iters: int) -> float:
    net(x)
    t0 = time.perf_counter()
    for _ in range(iters):
        net(x)
    return (time.perf_counter() - t0) / iters


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--iters", type=int, default=5)
    args = p.parse_args()
    torch.manual_seed(0)
    original = build_backbone(args.backbone).eval()
    target = copy.deepcopy(original)
    combined = copy.deepcopy(original)
    combined.body = combine_networks(original.body, target.body)
    combined.eval()
    folded = copy.deepcopy(combined)
    fold_network(folded.body)
    folded.eval()
    assert not any(isinstance(m, Combined) for m in folded.modules())
    x = torch.rand(args.batch, 3, 32, 32)
    nets = {"original": original, "folded": folded, "combined": combined}
    times: dict[str, list[float]] = {k: [] for k in nets}
    for r in range(args.repeats):
        order = list(nets) if r % 2 == 0 else list(reversed(nets))
        for k in order:
            times[k].append(latency(nets[k], x, args.iters))
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"{args.backbone}, batch {args.batch}, {torch.get_num_threads()} threads, median of {args.repeats} x {args.iters}")
    for k, v in med.items():
        print(f"{k:9s} {v:8.3f} ms/batch")
    print(f"folded / original  = {med['folded'] / med['original']:.3f}  (target 1.00)")
    print(f"combined / folded  = {med['combined'] / med['folded']:.3f}  (expected about 2)")


if __name__ == "__main__":
    main()
