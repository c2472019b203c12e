"""Grade a folder of lab submissions locally and in parallel, into one gradebook CSV.

Each submission (a notebook, or the zip the notebook's export cell writes) is graded by
otter-grader against the lab's autograder zip (``otter.api.grade_submission``, what
``otter run`` does): the notebook runs top to bottom in a fresh kernel and every test,
public and hidden, scores it. Submissions run in parallel, each in its own process group
with a hard timeout: a submission still running then (``while True: pass``) is killed with
its kernel and everything it started, scores 0 and says so.

Grading executes the students' code as the user who runs it, with that user's files and
network: grade in a container or a throwaway account when that matters.

Writes

- ``OUT`` (default ``gradebook-<lab>.csv``): a first row ``points-possible``, then one row
  per submission: the score of every autograded question, an empty column per written
  (manually graded) question, ``total`` and ``possible`` (autograded), ``status``
  (``graded``, ``timeout`` or ``error``), ``seconds`` and ``errors`` (a timeout, a notebook that
  could not be graded, or the exception a question's test hit, such as a name a crashed cell
  never defined);
- ``<OUT stem>-answers.csv``: every submission's answers to the written questions, for
  grading by hand;
- ``<OUT stem>-logs/<submission>.txt``: otter's per-test report (hidden tests included: it is
  for the instructor) and the grading output.

    python -m cl_lab.lab.grade SUBMISSIONS --lab lab1_forgetting [--out gradebook.csv]
        [--workers N] [--timeout S] [--autograder ZIP]          # what `make grade` runs
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError
from .runs import project_root

POSSIBLE_ROW = "points-possible"
SUFFIXES = (".ipynb", ".zip")


@dataclass
class Graded:
    """One submission's grade."""

    submission: str
    scores: dict[str, float] = field(default_factory=dict)
    possible: dict[str, float] = field(default_factory=dict)
    status: str = "graded"
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return round(float(sum(self.scores.values())), 6)


def find_autograder(lab: str, labs_dir: str | Path = "build/labs") -> Path:
    """The newest autograder zip ``make labs`` wrote for ``lab``."""
    base = Path(labs_dir).expanduser()
    if not base.is_absolute():
        base = project_root(Path(__file__).parent) / base
    zips = sorted((base / lab / "autograder").glob(f"{lab}-autograder_*.zip"))
    if not zips:
        raise ConfigError(f"no autograder zip for {lab!r} under {base}: run `make labs` first (or pass --autograder)")
    return zips[-1]


def autograded_points(autograder: str | Path) -> dict[str, float]:
    """``{question: points}`` of the autograder zip's tests (the sum of their test cases' points,
    or the file's own ``points`` where its cases name none)."""
    out: dict[str, float] = {}
    with zipfile.ZipFile(autograder) as zf:
        for name in sorted(n for n in zf.namelist() if n.startswith("tests/") and n.endswith(".py")):
            code = zf.read(name).decode("utf-8", "replace")
            cases = re.findall(r"@test_case\(points=([0-9.]+)", code)
            whole = re.search(r"^points = ([0-9.]+)\s*$", code, re.M)
            if cases:
                out[Path(name).stem] = sum(float(c) for c in cases)
            elif whole:
                out[Path(name).stem] = float(whole.group(1))
    return out


def find_submissions(folder: str | Path) -> list[Path]:
    """The notebooks and zips directly in ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"no folder of submissions at {folder}")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES and not p.name.startswith("."))
    if not found:
        raise ConfigError(f"no submissions ({' or '.join(SUFFIXES)} files) in {folder}")
    return found


def written_answers(submission: Path) -> list[str]:
    """The text of each written question's answer cells, in order (the cells between otter's
    ``<!-- BEGIN QUESTION -->`` and ``<!-- END QUESTION -->`` markers, the prompt excepted)."""
    try:
        if submission.suffix == ".zip":
            with zipfile.ZipFile(submission) as zf:
                name = next(n for n in zf.namelist() if n.endswith(".ipynb") and "/." not in f"/{n}")
                nb = json.loads(zf.read(name))
        else:
            nb = json.loads(submission.read_text(encoding="utf-8"))
    except (OSError, ValueError, StopIteration, zipfile.BadZipFile):
        return []
    cells = nb.get("cells") if isinstance(nb, dict) else None
    answers, current = [], None
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, dict):
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        if current is not None and "<!-- END QUESTION -->" in src:
            answers.append("\n\n".join(current).strip())
            current = None
        if "<!-- BEGIN QUESTION -->" in src:
            current = []
            continue
        if current is not None:
            current.append(src)
    return answers


# -- one submission, in a child process of its own --

def _set_subreaper() -> None:
    """Make this process adopt its orphaned descendants (Linux), so that none outlives the grading."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid``, its process group, and every descendant with theirs (a kernel starts a
    session of its own, so killing the group alone would leave it running)."""
    own = os.getpgrp()
    for p in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError):
            group = os.getpgid(p)
            if group != own:  # a child that has not yet left the grader's group: only itself
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)


def _grade_one(submission: str, autograder: str, result: str, log: str, workdir: str) -> None:
    """Child process: grade one submission with otter and write the result as JSON."""
    os.setsid()
    _set_subreaper()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    os.environ["TMPDIR"] = workdir
    tempfile.tempdir = workdir
    out: dict[str, Any] = {}
    try:
        from otter.api import grade_submission

        results = grade_submission(submission, autograder, quiet=False)
        if results.has_catastrophic_failure():
            out["error"] = f"otter could not grade it: {results.catastrophic_error}"
        else:
            out["scores"], out["possible"], out["errors"] = {}, {}, []
            for name, tf in results.to_dict().items():
                out["scores"][name] = float(tf["score"])
                out["possible"][name] = float(tf["possible"])
                for r in tf.get("test_case_results", []):
                    message = str(r.get("message", ""))
                    if not r.get("passed") and "AssertionError" not in message:
                        lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
                        if lines and f"{name}: {lines[-1]}" not in out["errors"]:
                            out["errors"].append(f"{name}: {lines[-1]}")
            print("\n" + results.summary())
    except BaseException as e:  # noqa: B036 -- whatever happens, the parent gets a reason
        traceback.print_exc()
        out["error"] = f"{type(e).__name__}: {e}".strip()[:500]
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        for p in _descendants(os.getpid()):
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        Path(result).write_text(json.dumps(out))


def _noop() -> None:
    pass


def _context() -> multiprocessing.context.BaseContext:
    """A fork server that has imported otter once, so that each submission starts in a fraction of
    a second (spawn where there is no fork server). It is started here, before any submission's
    clock runs."""
    try:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["otter.api"])
    except ValueError:
        ctx = multiprocessing.get_context("spawn")
    from . import grade as this

    warm = ctx.Process(target=this._noop)
    warm.start()
    warm.join()
    return ctx


def grade_one(submission: Path, autograder: Path, timeout: float, logs: Path, ctx=None,
              running: set[int] | None = None) -> Graded:
    """Grade one submission in a child process; kill it with everything it started after ``timeout``
    seconds. ``running`` holds the pids of the children still grading (for the caller to kill on
    an interrupt)."""
    ctx = ctx or _context()
    running = set() if running is None else running
    graded = Graded(submission.name)
    log = logs / f"{submission.name}.txt"
    workdir = Path(tempfile.mkdtemp(prefix="cl_lab-grade-"))
    result = workdir / "result.json"
    start = time.monotonic()
    try:
        from . import grade as this  # the child unpickles the target by this module's real name

        proc = ctx.Process(target=this._grade_one, args=(str(submission.resolve()), str(autograder.resolve()),
                                                         str(result), str(log), str(workdir)))
        proc.start()
        running.add(proc.pid)
        proc.join(timeout)
        timed_out = proc.is_alive()
        if timed_out:
            _kill_tree(proc.pid)
            proc.join()
        running.discard(proc.pid)
        if timed_out:
            graded.status = "timeout"
            graded.errors.append(f"timed out after {timeout:g} s: killed (an endless loop, or a cell that runs too long)")
            return graded
        try:
            out = json.loads(result.read_text())
        except (OSError, ValueError):
            out = {"error": f"the grading process died (exit code {proc.exitcode})"}
        if "error" in out:
            graded.status = "error"
            graded.errors.append(out["error"])
        else:
            graded.scores, graded.possible = out["scores"], out["possible"]
            graded.errors += out.get("errors", [])
        return graded
    finally:
        graded.seconds = round(time.monotonic() - start, 1)
        shutil.rmtree(workdir, ignore_errors=True)


def grade_folder(folder: str | Path, autograder: str | Path, *, out: str | Path, workers: int = 2,
                 timeout: float = 300, manual: dict[str, float] | None = None,
                 questions: dict[str, float] | None = None, progress: bool = True) -> list[Graded]:
    """Grade every submission in ``folder`` (``workers`` at a time) and write the gradebook ``out``,
    the written answers next to it and one log per submission. ``manual``: the written questions
    and their points, in notebook order (columns left empty for grading by hand); ``questions``:
    the autograded ones and their points (else read from the graded submissions). An interrupt
    kills every submission still running, with everything it started."""
    submissions = find_submissions(folder)
    autograder = Path(autograder).expanduser()
    if not autograder.is_file():
        raise ConfigError(f"no autograder zip at {autograder}")
    if workers < 1 or timeout <= 0:
        raise ConfigError(f"workers must be >= 1 and timeout > 0; got {workers} and {timeout}")
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    logs = out.with_name(f"{out.stem}-logs")
    logs.mkdir(exist_ok=True)
    manual = dict(manual or {})
    ctx = _context()
    running: set[int] = set()
    stop = threading.Event()

    def one(sub: Path) -> Graded:
        if stop.is_set():
            raise KeyboardInterrupt
        g = grade_one(sub, autograder, timeout, logs, ctx, running)
        g.answers = dict(zip(manual, written_answers(sub)))
        if progress:
            print(f"{g.submission}: {g.status}, {g.total:g} points in {g.seconds:g} s"
                  + (f" ({'; '.join(g.errors)[:200]})" if g.errors else ""), flush=True)
        return g

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(one, sub) for sub in submissions]
        graded = [f.result() for f in futures]
    except BaseException:
        stop.set()
        for pid in list(running):
            _kill_tree(pid)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    write_gradebook(graded, out, manual, questions)
    return graded


def write_gradebook(graded: list[Graded], out: Path, manual: dict[str, float],
                    questions: dict[str, float] | None = None) -> None:
    possible: dict[str, float] = dict(questions or {})
    for g in graded:
        for q, p in g.possible.items():
            possible.setdefault(q, p)
    questions = sorted(possible, key=lambda q: (len(q), q))
    auto_possible = round(sum(possible.values()), 6)
    cols = ["submission", *questions, *manual, "total", "possible", "status", "seconds", "errors"]
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerow([POSSIBLE_ROW, *(possible[q] for q in questions), *manual.values(), auto_possible, auto_possible,
                    "", "", ""])
        for g in graded:
            w.writerow([g.submission, *(g.scores.get(q, 0.0) for q in questions), *("" for _ in manual), g.total,
                        auto_possible, g.status, g.seconds, "; ".join(g.errors)])
    if manual:
        with open(out.with_name(f"{out.stem}-answers.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["submission", *manual])
            for g in graded:
                w.writerow([g.submission, *(g.answers.get(q, "") for q in manual)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Grade a folder of lab submissions (notebooks or export zips) with "
                                            "otter-grader, in parallel, into one gradebook CSV. This runs the "
                                            "students' code as you: see the README.")
    p.add_argument("submissions", help="folder holding the submissions (.ipynb or the export cell's .zip)")
    p.add_argument("--lab", required=True, help="the lab, e.g. lab1_forgetting")
    p.add_argument("--autograder", default=None, help="autograder zip (default: the newest `make labs` built)")
    p.add_argument("--labs-dir", default="build/labs", help="where `make labs` wrote the labs (default build/labs)")
    p.add_argument("--out", default=None, help="gradebook CSV (default gradebook-<lab>.csv)")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                   help="submissions graded at once (default: half the CPUs)")
    p.add_argument("--timeout", type=float, default=300,
                   help="seconds one submission may take before it is killed and scores 0 (default 300)")
    args = p.parse_args(argv)
    try:
        from .labs import lab_names, question_points

        autograder = Path(args.autograder) if args.autograder else find_autograder(args.lab, args.labs_dir)
        if not autograder.is_file():
            raise ConfigError(f"no autograder zip at {autograder}")
        questions = autograded_points(autograder)
        if not questions:
            raise ConfigError(f"{autograder} holds no tests/: not an autograder zip (make labs writes "
                              f"<lab>-autograder_*.zip)")
        manual = ({q: v["points"] for q, v in question_points(args.lab).items() if v["manual"]}
                  if args.lab in lab_names() else {})
        out = Path(args.out or f"gradebook-{args.lab}.csv")
        start = time.monotonic()
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread:  # a kill ends the graded code too
            previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        try:
            graded = grade_folder(args.submissions, autograder, out=out, workers=args.workers, timeout=args.timeout,
                                  manual=manual, questions=questions)
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
    except (ConfigError, zipfile.BadZipFile) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    wall = time.monotonic() - start
    counts = {s: sum(g.status == s for g in graded) for s in ("graded", "timeout", "error")}
    print(f"{len(graded)} submissions in {wall:.0f} s ({wall / len(graded):.1f} s each with {args.workers} workers): "
          + ", ".join(f"{n} {s}" for s, n in counts.items()) + f" -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
