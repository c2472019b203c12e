"""Transfer check: linear-probe accuracy of frozen backbones on each synth-10 task.

Frozen features (eval mode, global-pooled) + multinomial logistic regression on
standardised features. The inverse regularisation ``C`` is chosen per task on the
task's validation split from a small grid; the test split is scored once, with the chosen
``C``, refitted on train only. Compared: every shipped checkpoint (``manifest.json``) and
randomly initialised backbones (mean over ``--random-seeds``). Prints a table per task and
the mean, and a last line of JSON.

    python benchmarks/linear_probe.py [--backbone resnet8] [--random-seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from cl_lab.data import load_stream
from cl_lab.models import build_backbone
from cl_lab.models.weights import load_weights, shipped_checkpoints
from cl_lab.train.runner import seed_everything

C_GRID = (0.01, 0.1, 1.0, 10.0)


@torch.inference_mode()
def features(backbone, split) -> np.ndarray:
    backbone.eval()
    x = split.float_images()
    return torch.cat([backbone(x[b: b + 512]) for b in range(0, len(x), 512)]).numpy()


def probe(backbone, task) -> tuple[float, float, float]:
    """(validation accuracy, test accuracy, chosen C) of a logistic-regression probe."""
    tr, va, te = (features(backbone, task.split(s)) for s in ("train", "val", "test"))
    scaler = StandardScaler().fit(tr)
    tr, va, te = scaler.transform(tr), scaler.transform(va), scaler.transform(te)
    ytr, yva, yte = (task.split(s).labels().numpy() for s in ("train", "val", "test"))
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in C_GRID:
            clf = LogisticRegression(C=c, max_iter=2000).fit(tr, ytr)
            acc = float((clf.predict(va) == yva).mean())
            if best is None or acc > best[0]:
                best = (acc, c, clf)
    val, c, clf = best
    return val, float((clf.predict(te) == yte).mean()), c


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--random-seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args()
    stream = load_stream("synth-10")
    arch = build_backbone(args.backbone).arch
    sources = {name: name for name, e in shipped_checkpoints().items() if e["arch"] == arch}
    rows = []
    for task in stream:
        row = {"task": task.name, "classes": task.num_classes}
        vals = []
        for s in args.random_seeds:
            seed_everything(s)
            vals.append(probe(build_backbone(args.backbone), task))
        row["random val"] = np.mean([v[0] for v in vals])
        row["random test"] = np.mean([v[1] for v in vals])
        for label, source in sources.items():
            bb = build_backbone(args.backbone)
            load_weights(bb, source)
            v, t, _ = probe(bb, task)
            row[f"{label} val"], row[f"{label} test"] = v, t
        rows.append(row)
        print(f"{task.name:14s} " + " ".join(f"{k}={v:.3f}" for k, v in row.items() if k not in ("task", "classes")),
              flush=True)
    df = pd.DataFrame(rows).set_index("task")
    df.loc["mean"] = df.mean(numeric_only=True)
    df.loc["mean", "classes"] = np.nan
    pd.set_option("display.width", 200)
    print(f"\nlinear-probe accuracy on synth-10 ({args.backbone}, {torch.get_num_threads()} threads; "
          f"C chosen on val from {list(C_GRID)}; random = mean of seeds {args.random_seeds}):")
    print(df.to_string(float_format=lambda v: f"{v:.3f}"))
    means = {c: round(float(df.loc["mean", c]), 4) for c in df.columns if c != "classes"}
    print(json.dumps({"backbone": args.backbone, "mean": means}))


if __name__ == "__main__":
    main()
