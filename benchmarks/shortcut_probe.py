"""Shortcut probe: how much of each task colour statistics or a random frozen network already solve.

Per task of each stream: chance (most frequent test class), the colour-statistics probe (21
global colour features), a linear probe on a random frozen ResNet-8 (mean over
``--random-seeds``) and on the default shipped backbone. Every probe is a logistic regression
fitted on train with C chosen on validation, scored once on test (``cl_lab.probes``). Prints
a table per stream and a last line of JSON.

    python benchmarks/shortcut_probe.py [--stream synth-10 synth-10@2] [--random-seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import torch

from cl_lab.data import load_stream
from cl_lab.models import build_backbone
from cl_lab.models.weights import default_checkpoint, load_weights
from cl_lab.probes import chance, colour_probe, linear_probe, random_backbone_probe


def probe_stream(name: str, random_seeds: list[int], arch: str) -> pd.DataFrame:
    stream = load_stream(name)
    shipped = default_checkpoint(build_backbone(arch).arch)
    rows = []
    for task in stream:
        row = {"task": task.name, "classes": task.num_classes, "test images": len(task.test),
               "chance": chance(task), "colour": colour_probe(task).test,
               "random": float(np.mean([random_backbone_probe(task, arch, s).test for s in random_seeds]))}
        if shipped is not None:
            bb = build_backbone(arch)
            load_weights(bb, shipped)
            row["shipped"] = linear_probe(bb, task).test
        row["colour - chance"] = row["colour"] - row["chance"]
        rows.append(row)
        print(f"{name:12s} {task.name:14s} " + " ".join(f"{k}={v:.3f}" for k, v in row.items()
                                                          if isinstance(v, float)), flush=True)
    return pd.DataFrame(rows).set_index("task")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stream", nargs="+", default=["synth-10", "synth-10@2"])
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--random-seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args()
    out = {}
    pd.set_option("display.width", 200)
    for name in args.stream:
        df = probe_stream(name, args.random_seeds, args.backbone)
        print(f"\n{name}: test accuracy of logistic-regression probes ({args.backbone}, "
              f"{torch.get_num_threads()} threads; random = mean of seeds {args.random_seeds}; "
              f"shipped = {default_checkpoint(build_backbone(args.backbone).arch)}):")
        print(df.to_string(float_format=lambda v: f"{v:.3f}"))
        out[name] = {t: {k: round(float(v), 4) for k, v in r.items()} for t, r in df.iterrows()}
    print(json.dumps({"probes": out}))


if __name__ == "__main__":
    main()
