"""Pretrain the shipped task-agnostic backbone on ``synth-source`` and write its manifest entry.

The source pool (``cl_lab.data.streams.SYNTH_SOURCE``: 18 procedural domains of textures,
shapes, layouts, counts, symmetry, curves, gratings, spectra, lattices, junctions, blur, ...)
is disjoint from synth-10's tasks. All source tasks are learnt jointly, one head per task;
each mini-batch mixes all domains (so BatchNorm's statistics describe the mixture, in training
and at evaluation alike).

Recipes (``--recipe``):

- ``standard`` (the shipped default): SGD with Nesterov momentum 0.9, learning rate
  0.1 x batch/128 with one warm-up epoch and a cosine decay, weight decay 5e-4 on conv and
  linear weights, label smoothing 0.1, random translations of up to 4 pixels (reflect padding
  and crop; no flips, since several source labels are orientations or directions), 15 epochs
  of batch 128, channels-last layout;
- ``v1``: the first shipped backbone's recipe (the 5 original source domains, Adam 2e-3
  with a one-cycle schedule, no augmentation, 12 epochs of batch 64), kept so the two can
  be compared (``benchmarks/linear_probe.py``, ``benchmarks/backbone_table.py``).

Only the backbone body is saved. The manifest records the recipe, the source validation and
test accuracy, the wall time and the thread count. Validation accuracy on the source tasks
(never synth-10) is what the recipe was chosen on.

    python data_scripts/pretrain_backbone.py                  # rebuild the shipped checkpoint
    python data_scripts/pretrain_backbone.py --recipe v1      # rebuild the first one
    python data_scripts/pretrain_backbone.py --check          # verify every shipped file's SHA-256
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cl_lab._io import atomic_write, atomic_write_json, sha256_file
from cl_lab.data import TaskStream, load_stream
from cl_lab.models import MultiHead, build_backbone
from cl_lab.models.weights import CHECKPOINT_DIR, MANIFEST, shipped_checkpoints, shipped_path
from cl_lab.train.runner import seed_everything

V1_DOMAINS = ("gratings", "bar-count", "layout", "curves", "symmetry")

STANDARD = {"domains": "all", "optimizer": "sgd-nesterov", "lr": 0.1, "weight_decay": 5e-4,
            "schedule": "warmup1-cosine", "label_smoothing": 0.1, "translate": 4, "epochs": 15, "batch_size": 128}
RECIPES = {
    "standard": {"name": "resnet8.synth-source-v3", "stream": "synth-source", **STANDARD},
    "v2": {"name": "resnet8.synth-source-v2", "aliases": ["resnet8-synth-source-v2"], "stream": "synth-source@2",
           **STANDARD},
    "v1": {"name": "resnet8.synth-source-v1", "aliases": ["resnet8-synth-source"], "stream": "synth-source@2",
           "domains": list(V1_DOMAINS), "optimizer": "adam", "lr": 2e-3, "weight_decay": 0.0, "schedule": "one-cycle",
           "label_smoothing": 0.0, "translate": 0, "epochs": 12, "batch_size": 64},
}
"""Checkpoints are named ``arch.tag`` (as timm names weights); ``aliases`` are the names a checkpoint
was first shipped under, which runs made then recorded."""


def translate(x: torch.Tensor, pixels: int, g: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``pixels`` in x and y (reflect padding, then a random crop)."""
    if pixels == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pixels,) * 4, mode="reflect")
    dx = torch.randint(0, 2 * pixels + 1, (n,), generator=g)
    dy = torch.randint(0, 2 * pixels + 1, (n,), generator=g)
    rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(n, x.shape[1], h, w + 2 * pixels)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :].expand(n, x.shape[1], h, w)
    return out.gather(3, cols)


def source_stream(name: str, domains: str | list[str]) -> TaskStream:
    stream = load_stream(name, seed=0)
    if domains == "all":
        return stream
    names = [t.name for t in stream]
    missing = [d for d in domains if d not in names]
    if missing:
        raise SystemExit(f"pretrain: domain(s) {missing} are not in {name}; allowed: {names}")
    return TaskStream(stream.name, [t for t in stream if t.name in domains], stream.meta)


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@torch.no_grad()
def accuracy(backbone, heads, stream: TaskStream, split: str) -> dict[str, float]:
    backbone.eval()
    heads.eval()
    out = {}
    for i, t in enumerate(stream):
        s = t.split(split)
        x = s.float_images().contiguous(memory_format=torch.channels_last)
        pred = torch.cat([heads(backbone(x[b: b + 512]), i).argmax(1) for b in range(0, len(x), 512)])
        out[t.name] = round(float((pred == s.labels()).float().mean()), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", choices=sorted(RECIPES), default="standard")
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None,
                   help="at most this many training images per domain (a quick check of the script, not a backbone)")
    p.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'cuda:N' (the shipped file was built on CPU)")
    p.add_argument("--out", default=str(CHECKPOINT_DIR))
    p.add_argument("--check", action="store_true", help="only verify the shipped checkpoints' SHA-256")
    args = p.parse_args(argv)
    if args.check:
        for name in shipped_checkpoints():
            print(f"ok: {shipped_path(name)}")
        return 0
    recipe = dict(RECIPES[args.recipe])
    if args.epochs is not None:
        recipe["epochs"] = args.epochs
    device = torch.device(args.device)
    seed_everything(args.seed)
    t_data = time.perf_counter()
    stream = source_stream(recipe["stream"], recipe["domains"])
    data_seconds = time.perf_counter() - t_data
    backbone = build_backbone(args.backbone)
    heads = MultiHead(backbone.out_dim)
    for i, t in enumerate(stream):
        heads.add(i, t.num_classes)
    backbone.to(device, memory_format=torch.channels_last)
    heads.to(device)
    params = list(backbone.parameters()) + list(heads.parameters())
    bs = recipe["batch_size"]
    data = [(t.train.float_images()[: args.limit].to(device), t.train.labels()[: args.limit].to(device))
            for t in stream]
    steps_per_epoch = sum(len(y) for _, y in data) // bs
    total = recipe["epochs"] * steps_per_epoch
    if recipe["optimizer"] == "adam":
        opt = torch.optim.Adam(params, lr=recipe["lr"])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=total)
        base_lr = None
    else:
        decay = [q for q in params if q.dim() > 1]
        rest = [q for q in params if q.dim() <= 1]
        base_lr = recipe["lr"] * bs / 128
        opt = torch.optim.SGD([{"params": decay, "weight_decay": recipe["weight_decay"]},
                               {"params": rest, "weight_decay": 0.0}], lr=base_lr, momentum=0.9, nesterov=True)
        sched = None
    g = torch.Generator().manual_seed(args.seed)
    threads = torch.get_num_threads()
    print(f"{args.recipe}: {len(stream)} source domains, {sum(len(y) for _, y in data)} training images, "
          f"{recipe['epochs']} epochs of batch {bs}, {threads} threads (data {data_seconds:.0f}s)", flush=True)
    # Mixed mini-batches: every batch draws from all domains, the shared features are computed once and
    # each domain's head sees its own rows. BatchNorm's batch statistics during training are then the
    # same mixture its running statistics hold at evaluation (one-domain batches left them describing
    # whichever domains came last, and domains with unusual statistics were evaluated near chance).
    x_all = torch.cat([x for x, _ in data])
    y_all = torch.cat([y for _, y in data])
    d_all = torch.cat([torch.full((len(y),), i, device=device) for i, (_, y) in enumerate(data)])
    n = len(y_all)
    t0, step = time.perf_counter(), 0
    for epoch in range(recipe["epochs"]):
        backbone.train()
        heads.train()
        perm = torch.randperm(n, generator=g).to(device)
        loss_sum = torch.zeros((), device=device)
        for b in range(0, n - bs + 1, bs):
            idx = perm[b: b + bs]
            xb = translate(x_all[idx], recipe["translate"], g).contiguous(memory_format=torch.channels_last)
            feats = backbone(xb)
            yb, db = y_all[idx], d_all[idx]
            loss = sum(F.cross_entropy(heads(feats[db == i], i), yb[db == i], reduction="sum",
                                       label_smoothing=recipe["label_smoothing"])
                       for i in db.unique().tolist()) / len(idx)
            if base_lr is not None:
                for group in opt.param_groups:
                    group["lr"] = lr_at(step, total, steps_per_epoch, base_lr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            loss_sum += loss.detach()
        print(f"epoch {epoch + 1}/{recipe['epochs']} loss {float(loss_sum) / steps_per_epoch:.3f} "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)
    train_seconds = time.perf_counter() - t0
    backbone.to("cpu", memory_format=torch.contiguous_format)
    heads.to("cpu")
    val, test = accuracy(backbone, heads, stream, "val"), accuracy(backbone, heads, stream, "test")
    mean_val = round(sum(val.values()) / len(val), 4)
    print(f"source validation accuracy (mean {mean_val}):", val)
    out = Path(args.out)
    name = recipe.pop("name")
    source = recipe.pop("stream")
    file = out / f"{name}.pt"
    state = {k: v.clone() for k, v in backbone.body.state_dict().items()}
    atomic_write(file, lambda tmp: torch.save(state, tmp))
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    if args.recipe == "standard":  # one default per architecture
        for entry in manifest.values():
            if entry.get("arch") == backbone.arch:
                entry["default"] = False
    manifest[name] = {
        "file": file.name,
        "arch": backbone.arch,
        "sha256": sha256_file(file),
        "default": args.recipe == "standard",
        "source_stream": source,
        "source_domains": [t.name for t in stream],
        "recipe": args.recipe,
        **recipe,
        "seed": args.seed,
        "source_val_accuracy": val,
        "source_val_mean": mean_val,
        "source_test_accuracy": test,
        "train_seconds": round(train_seconds),
        "threads": threads,
        "device": str(device),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "reproduce": "python data_scripts/pretrain_backbone.py" + ("" if args.recipe == "standard"
                                                                   else f" --recipe {args.recipe}"),
    }
    if out == CHECKPOINT_DIR:
        atomic_write_json(MANIFEST, manifest)
    print(f"wrote {file} ({file.stat().st_size / 1e6:.2f} MB) in {train_seconds / 60:.1f} min, "
          f"sha256 {manifest[name]['sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
