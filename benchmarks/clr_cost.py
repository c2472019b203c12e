"""CLR cost: the per-task parameter table, and training compute vs SGD on the same backbone.

Prints (1) CLR's per-task parameters (CLR kernels, BN affine, BN statistics, head) as
counts and % of the frozen backbone for torchvision ResNet-50, ResNet-18 and cl_lab's
ResNet-8; (2) training MACs per image and measured throughput of CLR and SGD, side by
side in one process on the same data, normalised to SGD = 1, with stored bytes per task.

    python benchmarks/clr_cost.py [--backbone resnet8] [--epochs 2] [--repeats 3] [--classes 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import pandas as pd
import torch

import cl_lab
from cl_lab.data import TaskStream, load_stream
from cl_lab.methods.clr import clr_parameter_table
from cl_lab.models import build_backbone


def parameter_table(classes: int) -> pd.DataFrame:
    rows = []
    for arch in ("resnet50", "resnet18", "resnet8"):
        for variant in ("clr", "full"):
            row = clr_parameter_table(build_backbone(arch), classes, variant)
            row["variant"] = variant
            rows.append(row)
    cols = ["backbone", "variant", "backbone_params", "clr", "clr_pct", "bn", "bn_pct", "bn_stats", "head", "head_pct",
            "total", "total_pct"]
    return pd.DataFrame(rows)[cols]


def methods_table(classes: int) -> pd.DataFrame:
    """Parameters stored for a task that is not the first (10-class head), per method and backbone."""
    from cl_lab.methods import StreamInfo, get_method
    from cl_lab.models.backbones import count_params

    rows = []
    for arch in ("resnet50", "resnet18", "resnet8"):
        for name in ("ccll", "efts", "confit", "rcm", "clr"):
            bb = build_backbone(arch)
            n = count_params(bb)
            cls = get_method(name)
            m = cls(bb, cls.Config(), StreamInfo((classes, classes), ("a", "b")))
            m.add_task(0, classes)
            m.add_task(1, classes)
            total = m.cost_breakdown(1)["total"] if hasattr(m, "cost_breakdown") else m.cost().task_params[1]
            stats = m.cost().extra_bytes // 2 // 4 if name == "confit" else 0
            rows.append({"backbone": arch, "method": name, "params": total, "pct": 100 * total / n,
                         "stored_statistics": stats})
    return pd.DataFrame(rows)


def compute_table(backbone: str, epochs: int, repeats: int) -> pd.DataFrame:
    task = load_stream("synth-10")[0]
    stream = TaskStream("bench", [task])
    samples: dict[str, list[dict]] = {"sgd": [], "clr": []}
    for i in range(repeats):
        for method in (("sgd", "clr") if i % 2 == 0 else ("clr", "sgd")):
            with tempfile.TemporaryDirectory() as out:
                r = cl_lab.run(method, stream, backbone=backbone, epochs=epochs, out=out, progress=False, device="cpu")
                c = r.costs.iloc[0]
                samples[method].append({"ips": c.images_per_second, "macs": c.train_macs_per_image,
                                        "stored": c.task_params * 4 + c.extra_bytes, "backbone": c.backbone_params})
    rows = []
    for method, runs in samples.items():
        rows.append({"method": method, "images_per_second": statistics.median(r["ips"] for r in runs),
                     "train_macs_per_image": runs[0]["macs"], "stored_bytes_per_task": runs[0]["stored"],
                     "backbone_bytes": runs[0]["backbone"] * 4})
    df = pd.DataFrame(rows).set_index("method")
    df["throughput_vs_sgd"] = df.images_per_second / df.loc["sgd", "images_per_second"]
    df["macs_vs_sgd"] = df.train_macs_per_image / df.loc["sgd", "train_macs_per_image"]
    df["time_vs_sgd"] = 1 / df.throughput_vs_sgd
    df["stored_pct_of_backbone"] = 100 * df.stored_bytes_per_task / df.backbone_bytes
    return df


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--classes", type=int, default=10)
    args = p.parse_args()
    pd.set_option("display.width", 200)
    print(f"CLR parameters per task ({args.classes}-class head), % of the frozen backbone:")
    print(parameter_table(args.classes).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nPer-task storage of the per-task-module methods ({args.classes}-class head, a task after the first):")
    print(methods_table(args.classes).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"\nTraining compute on {args.backbone}, synth-10 task 1, normalised to SGD = 1:")
    compute = compute_table(args.backbone, args.epochs, args.repeats)
    print(compute.to_string(float_format=lambda v: f"{v:.3f}"))
    print(json.dumps({"clr_vs_sgd_throughput": round(float(compute.loc["clr", "throughput_vs_sgd"]), 3),
                      "backbone": args.backbone, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
