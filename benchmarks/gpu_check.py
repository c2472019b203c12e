"""The GPU check in one command: the CUDA tests, then every method's training throughput on the GPU.

    PYTHONPATH=. python3 benchmarks/gpu_check.py [--out benchmarks/results/gpu]    (or benchmarks/gpu_check.sh)

1. runs ``pytest -m cuda tests/test_cuda.py`` in a subprocess and counts passed, failed, errors
   and skipped tests (its whole output goes to ``pytest.log``);
2. trains the first two synth-10 tasks with every method through ``cl_lab.run`` (the functions of
   ``throughput.py``), each method in three settings measured back to back in a rotating order:
   contiguous layout, channels-last (the runner's default) and channels-last with bfloat16
   autocast (``amp=True``, where the device supports bfloat16), and with ``--compile`` a fourth,
   channels-last with ``compile=True``; one warm-up run per setting first (none with ``--quick``
   on the CPU), so the compiled column includes compiling only what a method's backbone adds to
   the warm-up's SGD graphs;
3. writes ``gpu_check.json`` (device, torch, CUDA and cuDNN versions, test counts, the table) and
   ``gpu_check.md`` (the table: images/s per setting and the ratio to SGD) into ``--out``.

The last line printed is JSON. Exit status: 0 when no test failed (on CUDA: and some ran) and
every measurement ran, 1 otherwise (the files are written either way), 2 without a CUDA device unless
``--allow-cpu`` is given: then everything runs on the CPU, without the bfloat16 column, which with
``--quick`` (the first synth-mini task, SGD and SGD-LL, one epoch: three steps) is how
``tests/test_gpu_check.py`` checks this script. Methods not started within ``--budget-s`` seconds
are listed as skipped, not measured. Needs only torch, numpy, pandas, scikit-learn, matplotlib,
tqdm, filelock and pytest, not an installed cl_lab: the repository root goes on the import path.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gpu"
QUICK_METHODS = ["sgd", "sgd-ll"]
COLUMNS = {"contiguous": "contiguous (eager)", "channels_last": "channels-last", "bf16": "bf16 autocast",
           "compiled": "compiled"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(DEFAULT_OUT), help="directory for gpu_check.json, gpu_check.md, pytest.log")
    p.add_argument("--methods", nargs="+", default=None, help="methods to time (default: all; SGD is always added)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per task (default 2, 1 with --quick)")
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="start no further method after this many seconds (tests included)")
    p.add_argument("--pytest-timeout-s", type=float, default=240.0)
    p.add_argument("--skip-tests", action="store_true", help="only the throughput table")
    p.add_argument("--compile", action="store_true",
                   help="a fourth setting: channels-last with compile=True (the warm-up compiles SGD's backbone; "
                        "a method's images/s include compiling what its backbone adds: adapters, masks, contexts)")
    p.add_argument("--quick", action="store_true", help="tiny settings: one synth-mini task, SGD and SGD-LL, one epoch")
    p.add_argument("--allow-cpu", action="store_true", help="run on the CPU when there is no CUDA device")
    return p.parse_args(argv)


def environment(device: str) -> dict[str, Any]:
    """What the numbers were measured on."""
    env: dict[str, Any] = {
        "device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": git_commit(),
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        env.update(device_name=props.name, capability=f"{props.major}.{props.minor}",
                   memory_gib=round(props.total_memory / 2**30, 1), bf16=torch.cuda.is_bf16_supported())
    else:
        env.update(device_name=platform.processor() or platform.machine(), capability=None, memory_gib=None, bf16=False)
    return env


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def run_tests(out: Path, timeout_s: float) -> dict[str, Any]:
    """``pytest -m cuda tests/test_cuda.py`` in a subprocess: counts from its JUnit XML, output in pytest.log."""
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-q", "-p", "no:cacheprovider"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        try:
            proc = subprocess.run(cmd + [f"--junitxml={junit}"], cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=timeout_s)
            rc, log = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as e:
            rc = None
            log = "".join(s.decode(errors="replace") if isinstance(s, bytes) else (s or "") for s in (e.stdout, e.stderr))
            log += f"\ngpu_check: pytest stopped after {timeout_s:.0f} s\n"
        counts = junit_counts(junit) if junit.exists() else None
    (out / "pytest.log").write_text(log)
    res: dict[str, Any] = {"command": " ".join(cmd[2:]), "returncode": rc, "seconds": round(time.perf_counter() - t0, 1),
                           "timed_out": rc is None}
    if counts is None:
        res.update(passed=0, failed=0, errors=1, skipped=0, total=0, failures=[],
                   note="no test report: see pytest.log (last lines: " + " | ".join(log.strip().splitlines()[-3:]) + ")")
    else:
        res.update(counts)
    res["ok"] = rc == 0 and res["failed"] == 0 and res["errors"] == 0
    return res


def junit_counts(path: Path) -> dict[str, Any]:
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures = []
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = [child.tag for child in case]
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if "failure" in kinds or "error" in kinds:
            key = "failed" if "failure" in kinds else "errors"
            counts[key] += 1
            message = (case.find("failure" if key == "failed" else "error").get("message") or "").strip()
            failures.append({"test": name, "message": message.splitlines()[0][:300] if message else ""})
        elif "skipped" in kinds:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return {**counts, "total": sum(counts.values()), "failures": failures}


def warm_up(device: str, settings: dict[str, dict[str, Any]], backbone: str) -> None:
    """One short run per setting, so the first measured method pays no CUDA start-up or kernel loading."""
    from throughput import side_by_side

    side_by_side("sgd", settings, errors={}, epochs=1, backbone=backbone, device=device, stream="synth-mini", n_tasks=1)


def measure(methods: list[str], settings: dict[str, dict[str, Any]], *, device: str, epochs: int, backbone: str,
            stream: str, n_tasks: int, deadline: float) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of images/s per method and setting; the methods not started before ``deadline`` are returned apart."""
    from throughput import side_by_side

    rows, skipped = [], []
    for i, m in enumerate(methods):
        if time.perf_counter() > deadline:
            skipped.append(m)
            continue
        errors: dict[str, str] = {}
        t0 = time.perf_counter()
        ips = side_by_side(m, settings, rotate=i, errors=errors, epochs=epochs, backbone=backbone, device=device,
                           stream=stream, n_tasks=n_tasks)
        row = {"method": m, **{k: None if math.isnan(v) else round(v, 1) for k, v in ips.items()},
               "seconds": round(time.perf_counter() - t0, 1), "errors": errors}
        rows.append(row)
        shown = "  ".join(f"{k} {_fmt(row.get(k))}" for k in settings)
        print(f"{m:12s} {shown} images/s" + (f"  errors: {errors}" if errors else ""), flush=True)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    sgd = next((r for r in rows if r["method"] == "sgd"), None)
    for r in rows:
        r["channels_last_vs_contiguous"] = _ratio(r.get("channels_last"), r.get("contiguous"))
        r["bf16_vs_channels_last"] = _ratio(r.get("bf16"), r.get("channels_last"))
        r["compiled_vs_channels_last"] = _ratio(r.get("compiled"), r.get("channels_last"))
        r["vs_sgd"] = _ratio(r.get("channels_last"), sgd and sgd.get("channels_last"))
    return rows, skipped


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _fmt(v: float | None, digits: int = 0) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    env, tests, setup = report["environment"], report["tests"], report["setup"]
    lines = ["# GPU check", ""]
    where = f"{env['device_name']} ({env['device']}"
    if env["capability"]:
        where += f", compute capability {env['capability']}, {env['memory_gib']} GiB"
    lines.append(f"{where}); torch {env['torch']}, CUDA {env['cuda'] or 'none'}, cuDNN {env['cudnn'] or 'none'}, "
                 f"Python {env['python']}, {env['threads']} CPU threads; {env['date']}"
                 + (f", commit {env['commit']}" if env["commit"] else "") + ".")
    lines.append("")
    if tests is None:
        lines.append("Tests: not run (`--skip-tests`).")
    else:
        lines.append(f"Tests (`{tests['command']}`, {tests['seconds']} s): {tests['passed']} passed, {tests['failed']} "
                     f"failed, {tests['errors']} errors, {tests['skipped']} skipped"
                     + (", stopped by the time limit" if tests["timed_out"] else "") + ".")
        for f in tests["failures"]:
            lines.append(f"- `{f['test']}`: {f['message']}")
        if tests.get("note"):
            lines.append(f"- {tests['note']}")
    n, e = setup["n_tasks"], setup["epochs"]
    tasks = f"the first {setup['stream']} task" if n == 1 else f"the first {n} {setup['stream']} tasks"
    lines += ["", f"Training images/s over {tasks} ({e} epoch{'s' if e != 1 else ''} each, {setup['backbone']}, "
              "each method's defaults through `cl_lab.run`), the settings of a method measured back to back; "
              "bf16 autocast is channels-last with `amp=True`; vs SGD compares channels-last (the runner's default "
              "layout):", ""]
    cols = [c for c in COLUMNS if c in setup["settings"]]
    shown = [c for c in COLUMNS if c != "compiled" or c in cols]  # bf16 is n/a where the device has none
    lines.append("| method | " + " | ".join(COLUMNS[c] for c in shown) + " | vs SGD |")
    lines.append("|---" * (len(shown) + 2) + "|")
    for r in report["throughput"]:
        cells = [("error" if c in r["errors"] else _fmt(r.get(c))) if c in cols else "n/a" for c in shown]
        lines.append(f"| {r['method']} | " + " | ".join(cells) + f" | {_fmt(r['vs_sgd'], 2)} |")
    if report["skipped_methods"]:
        lines += ["", f"Not measured within the {setup['budget_s']:.0f} s budget: {', '.join(report['skipped_methods'])}."]
    errs = [(r["method"], k, v) for r in report["throughput"] for k, v in r["errors"].items()]
    if errs:
        lines += ["", "Errors:", ""] + [f"- {m}, {COLUMNS[k]}: {v}" for m, k, v in errs]
    s = report["summary"]
    lines += ["", f"Medians: channels-last / contiguous {_fmt(s['median_channels_last_vs_contiguous'], 2)}, "
              f"bf16 / channels-last {_fmt(s['median_bf16_vs_channels_last'], 2)}. Total {report['seconds']} s.", ""]
    return "\n".join(lines)


def _median(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return round(statistics.median(v), 3) if v else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    if torch.cuda.is_available():
        device = "cuda"
    elif args.allow_cpu:
        device = "cpu"
    else:
        print(f"gpu_check: no CUDA device here (torch {torch.__version__}, built with CUDA "
              f"{torch.version.cuda or 'none'}); run it on a GPU machine, or pass --allow-cpu for a CPU run", file=sys.stderr)
        return 2
    for path in (ROOT, Path(__file__).resolve().parent):  # a checkout, not an installed package; throughput.py
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    from cl_lab.methods import method_names

    out = Path(args.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    methods = list(args.methods or (QUICK_METHODS if quick else method_names()))
    unknown = sorted(set(methods) - set(method_names()))
    if unknown:
        print(f"gpu_check: unknown method(s) {unknown}; known: {method_names()}", file=sys.stderr)
        return 2
    if "sgd" not in methods:
        methods.insert(0, "sgd")
    setup = {"stream": "synth-mini" if quick else "synth-10", "n_tasks": 1 if quick else 2,
             "epochs": args.epochs if args.epochs is not None else (1 if quick else 2), "backbone": args.backbone,
             "budget_s": args.budget_s, "quick": quick}
    env = environment(device)
    print(f"gpu_check on {env['device_name']} ({device}), torch {env['torch']}, CUDA {env['cuda']}", flush=True)

    tests = None if args.skip_tests else run_tests(out, args.pytest_timeout_s)
    if tests is not None and device.startswith("cuda") and tests["passed"] == 0:
        tests["ok"] = False  # on a GPU machine the CUDA tests must run, not skip
    if tests is not None:
        print(f"tests: {tests['passed']} passed, {tests['failed']} failed, {tests['errors']} errors, "
              f"{tests['skipped']} skipped ({tests['seconds']} s)", flush=True)

    from throughput import LAYOUTS

    settings = dict(LAYOUTS)
    if env["bf16"]:
        settings["bf16"] = {**LAYOUTS["channels_last"], "amp": True}
    if args.compile:
        settings["compiled"] = {**LAYOUTS["channels_last"], "compile": True}
    setup["settings"] = {k: {"memory_format": v["fmt"], "amp": v.get("amp", False), "compile": v.get("compile", False)}
                         for k, v in settings.items()}
    if device.startswith("cuda") or not quick:
        warm_up(device, settings, args.backbone)
    rows, skipped = measure(methods, settings, device=device, epochs=setup["epochs"], backbone=args.backbone,
                            stream=setup["stream"], n_tasks=setup["n_tasks"], deadline=t_start + args.budget_s)
    summary = {
        "median_channels_last_vs_contiguous": _median([r["channels_last_vs_contiguous"] for r in rows]),
        "median_bf16_vs_channels_last": _median([r["bf16_vs_channels_last"] for r in rows]),
        "measurement_errors": sum(len(r["errors"]) for r in rows),
    }
    ok = (tests is None or tests["ok"]) and summary["measurement_errors"] == 0
    report = {"ok": ok, "environment": env, "setup": setup, "tests": tests, "throughput": rows,
              "skipped_methods": skipped, "summary": summary, "seconds": round(time.perf_counter() - t_start, 1)}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    line = {"ok": ok, "device": env["device_name"], "torch": env["torch"], "cuda": env["cuda"],
            "tests": None if tests is None else {k: tests[k] for k in ("passed", "failed", "errors", "skipped")},
            **{k: v for k, v in summary.items() if k != "measurement_errors"},
            "measurement_errors": summary["measurement_errors"], "skipped_methods": skipped,
            "images_per_second": {r["method"]: r.get("channels_last") for r in rows}, "out": str(out),
            "seconds": report["seconds"]}
    print(json.dumps(line))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
