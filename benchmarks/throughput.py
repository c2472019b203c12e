"""Training throughput of every method, contiguous vs channels-last, side by side in one process.

Each method trains the first two synth-10 tasks (the second task is where replay, penalties
and teachers cost) for ``--epochs`` epochs through ``cl_lab.run`` with its defaults, once
with ``memory_format="contiguous"`` (PyTorch's default layout, the runner before it chose
one) and once with ``"auto"`` (channels-last). The two layouts alternate order per method.
Prints images/second per method and layout, the speed-up, and a last line of JSON.

    python benchmarks/throughput.py [--methods sgd clr ...] [--epochs 1] [--backbone resnet8] [--device cpu]

``images_per_second`` and ``side_by_side`` also take a device, bfloat16 autocast, a stream and a
task count: ``gpu_check.py`` measures the same table on a GPU with them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from typing import Any

import pandas as pd
import torch

import cl_lab
from cl_lab.methods import method_names

LAYOUTS = {"contiguous": {"fmt": "contiguous"}, "channels_last": {"fmt": "auto"}}
"""The two settings of the table: PyTorch's default layout and the runner's (``auto`` is channels-last)."""


def images_per_second(method: str, fmt: str, epochs: int, backbone: str, *, device: str = "cpu", amp: bool = False,
                      stream: str = "synth-10", n_tasks: int = 2) -> float:
    """Training images/second of one run through ``cl_lab.run`` (its training time only, all tasks pooled)."""
    with tempfile.TemporaryDirectory() as out:
        r = cl_lab.run(method, stream, n_tasks=n_tasks, backbone=backbone, epochs=epochs, out=out, progress=False,
                       device=device, memory_format=fmt, amp=amp)
        c = r.costs
        return float((c.images_per_second * c.train_seconds).sum() / c.train_seconds.sum())


def side_by_side(method: str, settings: dict[str, dict[str, Any]], *, rotate: int = 0,
                 errors: dict[str, str] | None = None, **common: Any) -> dict[str, float]:
    """images/s of ``method`` under each named setting (keyword arguments of ``images_per_second``
    on top of ``common``), measured back to back in an order rotated by ``rotate`` so that drift
    favours no setting. With an ``errors`` dict, a setting that raises measures NaN and its
    message goes there instead of stopping the others."""
    names = list(settings)
    k = rotate % len(names)
    ips = {}
    for name in names[k:] + names[:k]:
        try:
            ips[name] = images_per_second(method, **{**common, **settings[name]})
        except Exception as e:
            if errors is None:
                raise
            errors[name] = f"{type(e).__name__}: {e}".splitlines()[0]
            ips[name] = float("nan")
    return {name: ips[name] for name in names}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--methods", nargs="+", default=method_names())
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = p.parse_args()
    rows = []
    for i, m in enumerate(args.methods):
        ips = side_by_side(m, LAYOUTS, rotate=i, epochs=args.epochs, backbone=args.backbone, device=args.device)
        rows.append({"method": m, "contiguous": ips["contiguous"], "channels_last": ips["channels_last"],
                     "speedup": ips["channels_last"] / ips["contiguous"]})
        print(f"{m:12s} {ips['contiguous']:8.1f} -> {ips['channels_last']:8.1f} images/s", flush=True)
    df = pd.DataFrame(rows).set_index("method")
    print(f"\nimages/s training the first two synth-10 tasks, {args.backbone} on {args.device}, "
          f"{torch.get_num_threads()} threads:")
    print(df.to_string(float_format=lambda v: f"{v:.2f}"))
    print(json.dumps({"median_speedup": round(float(df.speedup.median()), 3),
                      "min_speedup": round(float(df.speedup.min()), 3), "threads": torch.get_num_threads(),
                      "images_per_second": {m: round(float(v), 1) for m, v in df.channels_last.items()}}))


if __name__ == "__main__":
    main()
