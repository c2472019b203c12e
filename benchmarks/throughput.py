"""Training throughput of every method, contiguous vs channels-last, side by side in one process.

Each method trains the first two synth-10 tasks (the second task is where replay, penalties
and teachers cost) for ``--epochs`` epochs through ``cl_lab.run`` with its defaults, once
with ``memory_format="contiguous"`` (PyTorch's default layout, the runner before it chose
one) and once with ``"auto"`` (channels-last). The two layouts alternate order per method.
Prints images/second per method and layout, the speed-up, and a last line of JSON.

    python benchmarks/throughput.py [--methods sgd clr ...] [--epochs 1] [--backbone resnet8]
"""

from __future__ import annotations

import argparse
import json
import tempfile

import pandas as pd
import torch

import cl_lab
from cl_lab.methods import method_names


def images_per_second(method: str, fmt: str, epochs: int, backbone: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        r = cl_lab.run(method, "synth-10", n_tasks=2, backbone=backbone, epochs=epochs, out=out, progress=False,
                       device="cpu", memory_format=fmt)
        c = r.costs
        return float((c.images_per_second * c.train_seconds).sum() / c.train_seconds.sum())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--methods", nargs="+", default=method_names())
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--backbone", default="resnet8")
    args = p.parse_args()
    rows = []
    for i, m in enumerate(args.methods):
        order = ("contiguous", "auto") if i % 2 == 0 else ("auto", "contiguous")
        ips = {fmt: images_per_second(m, fmt, args.epochs, args.backbone) for fmt in order}
        rows.append({"method": m, "contiguous": ips["contiguous"], "channels_last": ips["auto"],
                     "speedup": ips["auto"] / ips["contiguous"]})
        print(f"{m:12s} {ips['contiguous']:8.1f} -> {ips['auto']:8.1f} images/s", flush=True)
    df = pd.DataFrame(rows).set_index("method")
    print(f"\nimages/s training the first two synth-10 tasks, {args.backbone}, {torch.get_num_threads()} threads:")
    print(df.to_string(float_format=lambda v: f"{v:.2f}"))
    print(json.dumps({"median_speedup": round(float(df.speedup.median()), 3),
                      "min_speedup": round(float(df.speedup.min()), 3), "threads": torch.get_num_threads(),
                      "images_per_second": {m: round(float(v), 1) for m, v in df.channels_last.items()}}))


if __name__ == "__main__":
    main()
