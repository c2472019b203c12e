"""Pretrain the shipped task-agnostic backbone on ``synth-source`` and write its manifest entry.

The source pool (gratings, bar counting, layout, curves, symmetry) is disjoint from
synth-10's domains. All source tasks are learnt jointly, one head per task, each batch
drawn from one task chosen at random. Only the backbone body is saved.

    python data_scripts/pretrain_backbone.py            # rebuild the shipped checkpoint
    python data_scripts/pretrain_backbone.py --check    # verify the shipped file's SHA-256
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cl_lab._io import atomic_torch_save, atomic_write_json, sha256_file
from cl_lab.data import load_stream
from cl_lab.models import MultiHead, build_backbone
from cl_lab.models.weights import CHECKPOINT_DIR, MANIFEST, shipped_path
from cl_lab.train.runner import seed_everything

NAME = "resnet8-synth-source"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(CHECKPOINT_DIR))
    p.add_argument("--check", action="store_true", help="only verify the shipped checkpoint's SHA-256")
    args = p.parse_args(argv)
    if args.check:
        print(f"ok: {shipped_path(NAME)}")
        return 0
    torch.set_num_threads(max(1, torch.get_num_threads()))
    seed_everything(args.seed)
    stream = load_stream("synth-source", seed=0)
    backbone = build_backbone(args.backbone)
    heads = MultiHead(backbone.out_dim)
    for i, t in enumerate(stream):
        heads.add(i, t.num_classes)
    params = list(backbone.parameters()) + list(heads.parameters())
    data = [(t.train.float_images(), t.train.labels()) for t in stream]
    steps_per_epoch = sum(len(y) for _, y in data) // args.batch_size
    opt = torch.optim.Adam(params, lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        backbone.train()
        heads.train()
        order = torch.cat([torch.full((len(y) // args.batch_size,), i) for i, (_, y) in enumerate(data)])
        order = order[torch.randperm(len(order), generator=g)]
        perms = [torch.randperm(len(y), generator=g) for _, y in data]
        cursor = [0] * len(data)
        total = 0.0
        for ti in order.tolist():
            x, y = data[ti]
            idx = perms[ti][cursor[ti]: cursor[ti] + args.batch_size]
            cursor[ti] += args.batch_size
            loss = F.cross_entropy(heads(backbone(x[idx]), ti), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss)
        print(f"epoch {epoch + 1}/{args.epochs} loss {total / len(order):.3f} ({time.perf_counter() - t0:.0f}s)", flush=True)
    backbone.eval()
    heads.eval()
    accs = {}
    with torch.no_grad():
        for i, t in enumerate(stream):
            pred = heads(backbone(t.test.float_images()), i).argmax(1)
            accs[t.name] = round(float((pred == t.test.labels()).float().mean()), 4)
    print("source test accuracy:", accs)
    out = Path(args.out)
    file = out / f"{NAME}.pt"
    atomic_torch_save(file, {k: v.clone() for k, v in backbone.body.state_dict().items()})
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    manifest[NAME] = {
        "file": file.name,
        "arch": backbone.arch,
        "sha256": sha256_file(file),
        "source_stream": "synth-source",
        "source_test_accuracy": accs,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "torch": torch.__version__,
        "reproduce": "python data_scripts/pretrain_backbone.py",
    }
    if out == CHECKPOINT_DIR:
        atomic_write_json(MANIFEST, manifest)
    print(f"wrote {file} ({file.stat().st_size / 1e6:.2f} MB), sha256 {manifest[NAME]['sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
