"""The accuracy matrices of a fixed set of runs, for checking that a refactoring changes no number.

One run per method on the embedded ``synth-mini`` stream (seed 0, 1 epoch, one thread),
plus SGD with per-task BN statistics, EWC with clipping, and SGD, LwF and DER++ in the class
(synth-mini) and domain (split-digits) scenarios. Each matrix is written exactly (``float.hex``)
to a JSON file; ``--compare OLD.json`` reports every run whose matrix differs bit for bit.

    python benchmarks/fixed_runs.py --save benchmarks/results/fixed_runs.json
    python benchmarks/fixed_runs.py --compare benchmarks/results/fixed_runs.json

The last line printed is a JSON object: runs, identical, differing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from cl_lab.methods import method_names  # noqa: E402
from cl_lab.train.runner import run  # noqa: E402

EXTRA = {"sgd+per-task-bn": ("sgd", {"bn_stats": "per-task"}), "ewc+clip": ("ewc", {"max_grad_norm": 1.0}),
         **{f"{m}+class": (m, {"scenario": "class"}) for m in ("sgd", "lwf", "derpp")},
         **{f"{m}+domain": (m, {"scenario": "domain", "stream": "split-digits"}) for m in ("sgd", "lwf", "derpp")}}
"""Beyond one run per method (in its first scenario): settings whose code paths the defaults miss."""


def matrices(memory_format: str = "auto") -> dict[str, list[list[str]]]:
    torch.set_num_threads(1)
    from cl_lab.methods import get_method

    plan = {m: (m, {"scenario": get_method(m).scenarios[0]}) for m in method_names()} | EXTRA
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, (method, kw) in plan.items():
            kw = dict(kw)
            res = run(method, kw.pop("stream", "synth-mini"), epochs=1, seed=0, out=tmp, run_name=key, progress=False,
                      memory_format=memory_format, **kw)
            out[key] = [[float(v).hex() for v in row] for row in res.R]
            print(key, res.R[-1].round(4).tolist(), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", help="write the matrices to this JSON file")
    g.add_argument("--compare", help="compare with the matrices in this JSON file")
    ap.add_argument("--memory-format", default="auto", choices=["auto", "channels_last", "contiguous"],
                    help="the runs' layout (results differ between layouts as between thread counts)")
    a = ap.parse_args(argv)
    now = matrices(a.memory_format)
    if a.save:
        with open(a.save, "w") as fh:
            json.dump({"threads": torch.get_num_threads(), "torch": torch.__version__,
                       "memory_format": a.memory_format, "runs": now}, fh, indent=1)
        print(json.dumps({"runs": len(now), "saved": a.save}))
        return 0
    old = json.load(open(a.compare))["runs"]
    differing = sorted(k for k in old if now.get(k) != old[k])
    print(json.dumps({"runs": len(old), "identical": len(old) - len(differing), "differing": differing}))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
