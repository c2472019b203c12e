"""How hard is each task of a stream? A small CNN (ResNet-8) trained from scratch on each task alone.

Prints each task's class count and test accuracy after ``--epochs`` epochs of Adam, plus
generation time of the stream. The embedded streams aim for roughly 50-95% on most tasks:
learnable, not trivial.

    python benchmarks/stream_difficulty.py [--stream synth-10] [--epochs 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import cl_lab
from cl_lab.data import TaskStream, load_stream


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stream", default="synth-10")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=2e-3)
    args = p.parse_args()
    t0 = time.perf_counter()
    stream = load_stream(args.stream, cache=False)
    print(f"{args.stream}: generated in {time.perf_counter() - t0:.1f}s")
    inside = 0
    with tempfile.TemporaryDirectory() as out:
        for task in stream:
            r = cl_lab.run("sgd", TaskStream(task.name, [task]), out=out, epochs=args.epochs, pretrained=None,
                           optimizer="adam", lr=args.lr, momentum=0.0, progress=False)
            acc = float(r.R[0, 0])
            inside += 0.5 <= acc <= 0.95
            print(f"{task.name:14s} {task.objective:22s} {task.num_classes:3d} classes  test accuracy {acc:.3f}")
    print(f"{inside}/{len(stream)} tasks between 50% and 95%")


if __name__ == "__main__":
    main()
