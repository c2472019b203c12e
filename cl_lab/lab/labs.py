"""Course labs: instructor notebooks with self-checking exercises, built with otter-grader.

The instructor notebooks live in ``notebooks/labs/`` in otter-grader's assign format (a
``# ASSIGNMENT CONFIG`` cell, then per question a prompt, a solution and test cells).
``build`` runs ``otter assign`` on each: it executes the solutions against every check
(an assignment whose solutions fail is not built), then writes

- ``<out>/<lab>/student/<lab>.ipynb``: solutions replaced by ``...``, each question ending
  in ``grader.check("qN")``, which prints what is wrong on a wrong answer;
- ``<out>/<lab>/autograder/<lab>.ipynb`` and ``<lab>-autograder_*.zip``: the solutions and
  the grading configuration (``otter run -a ZIP submission.ipynb`` grades one submission
  locally; ``otter grade`` grades a folder of them in containers).

    python -m cl_lab.lab.labs [--out build/labs] [LAB ...]       # what `make labs` runs
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from ..config import ConfigError
from .runs import project_root


def lab_dir() -> Path:
    return project_root(Path(__file__).parent) / "notebooks" / "labs"


def lab_names() -> list[str]:
    return sorted(p.stem for p in lab_dir().glob("*.ipynb"))


def build(out: str | Path = "build/labs", names: list[str] | None = None, timeout: int = 600) -> dict[str, dict]:
    """Build the student and autograder versions of the labs (all by default) under ``out``.

    Returns ``{lab: {"student": path, "autograder": path, "zip": path}}``. Raises ``RuntimeError``
    naming the lab when otter-grader fails (for example, a solution that no longer passes its checks).
    """
    try:
        import otter  # noqa: F401
    except ImportError as e:
        raise ConfigError("building the labs needs otter-grader: pip install 'cl_lab[grading]' (make setup installs it)"
                          ) from e
    available = lab_names()
    names = list(names or available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(f"unknown lab(s) {unknown}; allowed: {available}")
    out = Path(out).expanduser()
    if not out.is_absolute():
        out = project_root(Path(__file__).parent) / out
    built = {}
    for name in names:
        dest = out / name
        if dest.exists():
            shutil.rmtree(dest)
        proc = subprocess.run([sys.executable, "-m", "otter", "assign", str(lab_dir() / f"{name}.ipynb"), str(dest)],
                              capture_output=True, text=True, timeout=timeout, cwd=lab_dir())
        zips = sorted((dest / "autograder").glob("*.zip")) if dest.exists() else []
        if proc.returncode != 0 or not zips:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"otter assign failed for lab {name!r} (exit {proc.returncode}):\n{tail}")
        built[name] = {"student": dest / "student" / f"{name}.ipynb",
                       "autograder": dest / "autograder" / f"{name}.ipynb", "zip": zips[-1]}
    return built


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build the course labs' student and autograder versions with otter-grader.")
    p.add_argument("labs", nargs="*", help=f"labs to build (default: all of {lab_names()})")
    p.add_argument("--out", default="build/labs", help="output directory (relative paths: from the project root)")
    args = p.parse_args(argv)
    try:
        built = build(args.out, args.labs or None)
    except (ConfigError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, paths in built.items():
        print(f"{name}: student {paths['student']}  autograder {paths['zip']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
