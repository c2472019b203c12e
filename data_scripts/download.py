"""Fetch and prepare the real streams (needs internet), verifying checksums; safe to re-run.

    python data_scripts/download.py --stream split-cifar100 --root ~/.cache/cl_lab/datasets
    python data_scripts/download.py --stream decathlon-lite --root DIR [--datasets cifar100 svhn dtd]
    python data_scripts/download.py --stream decathlon-lite --root DIR --check

torchvision downloads each archive and checks its MD5. CIFAR-100 and SVHN stay in their
original formats; the other Decathlon members are written as 32x32 PNGs in
``decathlon-lite/<dataset>/<split>/<class>/``. A SHA-256 manifest of every prepared file is
written to ``<root>/cl_lab_manifest.json``; ``--check`` verifies it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cl_lab._io import atomic_write_json, sha256_file
from cl_lab.data.real import DECATHLON

TV = {
    "gtsrb": ("GTSRB", {"split": "train"}, {"split": "test"}),
    "dtd": ("DTD", {"split": "train"}, {"split": "test"}),
    "flowers102": ("Flowers102", {"split": "train"}, {"split": "test"}),
    "omniglot": ("Omniglot", {"background": True}, {"background": False}),
    "fgvc_aircraft": ("FGVCAircraft", {"split": "train"}, {"split": "test"}),
}


def _export(name: str, root: Path, size: int) -> None:
    import torchvision

    cls_name, train_kw, test_kw = TV[name]
    cls = getattr(torchvision.datasets, cls_name)
    for split, kw in (("train", train_kw), ("test", test_kw)):
        ds = cls(root=str(root / "raw"), download=True, **kw)
        out = root / "decathlon-lite" / name / split
        for i in range(len(ds)):
            img, label = ds[i]
            d = out / f"{int(label):04d}"
            d.mkdir(parents=True, exist_ok=True)
            img.convert("RGB").resize((size, size)).save(d / f"{i:06d}.png")
        print(f"{name}/{split}: {len(ds)} images")


def fetch(stream: str, root: Path, datasets: list[str], size: int) -> None:
    import torchvision

    root.mkdir(parents=True, exist_ok=True)
    if stream == "split-cifar100" or "cifar100" in datasets:
        torchvision.datasets.CIFAR100(root=str(root), train=True, download=True)
        torchvision.datasets.CIFAR100(root=str(root), train=False, download=True)
    if stream == "decathlon-lite":
        for name in datasets:
            if name == "svhn":
                for split in ("train", "test"):
                    torchvision.datasets.SVHN(root=str(root / "svhn"), split=split, download=True)
            elif name in TV:
                _export(name, root, size)


def manifest(root: Path) -> dict[str, str]:
    files = [p for sub in ("cifar-100-python", "svhn", "decathlon-lite") for p in sorted((root / sub).rglob("*"))
             if p.is_file()]
    return {str(p.relative_to(root)): sha256_file(p) for p in files}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="fetch the real streams")
    p.add_argument("--stream", required=True, choices=["split-cifar100", "decathlon-lite"])
    p.add_argument("--root", required=True)
    p.add_argument("--datasets", nargs="+", default=list(DECATHLON), choices=list(DECATHLON))
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--check", action="store_true", help="verify the SHA-256 manifest only")
    args = p.parse_args(argv)
    root = Path(args.root).expanduser()
    mpath = root / "cl_lab_manifest.json"
    if args.check:
        if not mpath.exists():
            print(f"no manifest at {mpath}; run without --check first", file=sys.stderr)
            return 1
        want = json.loads(mpath.read_text())
        bad = [f for f, h in want.items() if not (root / f).exists() or sha256_file(root / f) != h]
        print(f"{len(want) - len(bad)}/{len(want)} files verified" + (f"; bad: {bad[:10]}" if bad else ""))
        return 1 if bad else 0
    fetch(args.stream, root, args.datasets, args.image_size)
    atomic_write_json(mpath, manifest(root))
    print(f"prepared {args.stream} under {root}; manifest {mpath}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
