"""MPNAS size and compute vs domain-independent NAS (the paper's headline: -78% size, -32% FLOPs).

Runs the MDL setups side by side in one process on the same domains, search steps and
epochs (or reads a finished run with ``--run``) and prints, per setup, mean accuracy,
unique parameters, mean MACs per domain path, and both as ratios to domain-independent NAS.

    python benchmarks/mpnas_cost.py                  # the default lab setting (5 synth domains)
    python benchmarks/mpnas_cost.py --quick          # 3 domains, short search, for a quick look
    python benchmarks/mpnas_cost.py --run runs/synth-10-mdl-seed0
"""

from __future__ import annotations

import argparse
import tempfile

from cl_lab.mdl import run_mdl
from cl_lab.results import load_mdl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="read a finished MDL run directory instead of running")
    ap.add_argument("--quick", action="store_true", help="3 domains, 60 search steps, 3 epochs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.run:
        run_dir = args.run
    else:
        kw = {"domains": "3", "search_steps": 60, "train_epochs": 3, "max_train": 300} if args.quick else {}
        run_dir = run_mdl(out=tempfile.mkdtemp(prefix="mpnas_cost_"), seed=args.seed, **kw)
    s = load_mdl(run_dir)["summary"]
    cols = ["setup", "mean_accuracy", "unique_params", "mean_macs", "params_vs_independent", "macs_vs_independent"]
    print(s[[c for c in cols if c in s]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if {"mpnas", "independent"} <= set(s.setup):
        m = s.set_index("setup").loc["mpnas"]
        print(f"\nMPNAS vs domain-independent NAS: size {100 * (m.params_vs_independent - 1):+.0f}%, "
              f"MACs {100 * (m.macs_vs_independent - 1):+.0f}% (paper: -78%, -32%)")


if __name__ == "__main__":
    main()
