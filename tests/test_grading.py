"""Grading a class: one command grades a folder of generated submissions to lab 5 (right, wrong in a way
the public checks catch, wrong in a way only the hidden checks catch, calling the library, blank,
crashing, a kernel that dies, an endless loop, a file that is no notebook) into one gradebook CSV,
in parallel, with a per-submission timeout that kills the endless ones."""

import copy
import csv
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("otter")

from cl_lab.lab import labs  # noqa: E402

LAB = "lab5_mpnas_paths"
TIMEOUT = 40  # seconds per submission: a right one takes 6-18 s on a busy 2-core machine
FULL = {"q1": 2.0, "q2": 3.0, "q3": 3.0, "q4": 2.0}
ANSWER = "Sharing happens only where domains pick the same block at the same layer."


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    # the solutions' pass over every check is tested in test_labs.py; skip it here for speed
    return labs.build(tmp_path_factory.mktemp("labs"), [LAB], run_tests=False)[LAB]


def _answer_cells(nb):
    return [c for c in nb.cells if "otter_answer_cell" in c.metadata.get("tags", [])]


def _solved(built):
    """The student version with every answer cell filled in from the instructor's solutions."""
    student = nbformat.read(built["student"], as_version=4)
    solutions = {c.source.splitlines()[0]: c.source for c in nbformat.read(built["autograder"], as_version=4).cells
                 if c.cell_type == "code" and c.source.startswith("def ")}
    for cell in _answer_cells(student):
        if cell.cell_type == "code":
            cell.source = solutions[cell.source.splitlines()[0]]
        else:
            cell.source = ANSWER
    return student


def _edit(nb, first_line, fn):
    nb = copy.deepcopy(nb)
    cell = next(c for c in _answer_cells(nb) if c.source.startswith(first_line))
    edited = fn(cell.source)
    assert edited != cell.source, f"the edit of {first_line!r} changed nothing"
    cell.source = edited
    return nb


def _class(built, folder: Path, pid_dir: Path) -> dict[str, tuple[str, dict]]:
    """Write 20 submissions into ``folder``; returns {file: (category, expected scores)}."""
    right = _solved(built)
    blank = nbformat.read(built["student"], as_version=4)
    wrong_public = _edit(right, "def max_saving", lambda s: s.replace("1 - 1 / n_domains", "1 / n_domains"))
    # the Dice coefficient: 1 on the diagonal, symmetric, in [0, 1] (what the public check looks at), but not Jaccard
    jaccard = "len(blocks[a] & blocks[b]) / len(blocks[a] | blocks[b])"
    dice = "2 * len(blocks[a] & blocks[b]) / (len(blocks[a]) + len(blocks[b]))"
    wrong_hidden = _edit(right, "def jaccard_matrix", lambda s: s.replace(jaccard, dice))
    library = _edit(right, "def jaccard_matrix", lambda _: (
        "from cl_lab import metrics as M\n\n\ndef jaccard_matrix(blocks):\n    return M.jaccard_matrix(blocks)\n\n\n"
        "J = jaccard_matrix(blocks)"))
    crash_cell = _edit(right, "def jaccard_matrix", lambda s: 'raise RuntimeError("not finished")\n' + s)
    crash_func = _edit(right, "def saving", lambda s: s.replace("shared / independent", "shared / independant"))
    dies = copy.deepcopy(right)
    dies.cells[2].source += "\nimport os\nos._exit(1)"  # the setup cell: the kernel dies
    expected = {}

    def add(name, category, nb, scores, zipped=False):
        path = folder / f"{name}.ipynb"
        nbformat.write(nb, path)
        if zipped:  # what the export cell hands in
            with zipfile.ZipFile(folder / f"{name}.zip", "w") as zf:
                zf.write(path, f"{LAB}.ipynb")
            path.unlink()
            path = folder / f"{name}.zip"
        expected[path.name] = (category, scores)

    for i in range(7):
        add(f"right{i}", "right", right, FULL, zipped=i == 0)
    for i in range(2):
        add(f"wrong_public{i}", "wrong", wrong_public, {**FULL, "q4": 0.0})
        add(f"wrong_hidden{i}", "wrong", wrong_hidden, {**FULL, "q2": 1.0})
        add(f"library{i}", "library", library, {**FULL, "q2": 1.0})
        add(f"blank{i}", "blank", blank, dict.fromkeys(FULL, 0.0))
    add("crash_cell", "crash", crash_cell, {**FULL, "q2": 0.0})
    add("crash_func", "crash", crash_func, {**FULL, "q3": 0.0})
    add("dies", "error", dies, dict.fromkeys(FULL, 0.0))
    pid_file = pid_dir / "loop.pid"
    loop = _edit(right, "def blocks_of", lambda s: (f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                                                    "while True:\n    pass\n" + s))
    add("loop", "loop", loop, dict.fromkeys(FULL, 0.0))
    (folder / "broken.ipynb").write_text("this is not a notebook")
    expected["broken.ipynb"] = ("error", dict.fromkeys(FULL, 0.0))
    assert len(expected) == 20
    return expected


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_a_class_of_twenty_is_graded_by_one_command(built, tmp_path):
    folder, pids = tmp_path / "submissions", tmp_path / "pids"
    folder.mkdir()
    pids.mkdir()
    expected = _class(built, folder, pids)
    out = tmp_path / "grades" / "gradebook.csv"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cl_lab.lab.grade", str(folder), "--lab", LAB, "--autograder",
                           str(built["zip"]), "--out", str(out), "--workers", "2", "--timeout", str(TIMEOUT)],
                          capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(proc.stdout.strip().splitlines()[-1], f"(wall {wall:.0f} s)")

    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:5] == ["submission", "q1", "q2", "q3", "q4"]
    assert {"q4b", "total", "possible", "status", "seconds", "errors"} <= set(rows[0])
    possible, rows = rows[0], {r["submission"]: r for r in rows[1:]}
    assert possible["submission"] == "points-possible"
    assert {q: float(possible[q]) for q in FULL} == FULL and float(possible["q4b"]) == 2.0
    assert float(possible["total"]) == sum(FULL.values()) == 10
    assert set(rows) == set(expected)

    for name, (category, scores) in expected.items():
        row = rows[name]
        got = {q: float(row[q]) for q in FULL}
        assert got == scores, f"{name} ({category}): {got} != {scores}; errors: {row['errors']}"
        assert float(row["total"]) == sum(scores.values()), name
        assert float(row["possible"]) == 10, name
        assert row["q4b"] == "", name  # written answers are graded by hand
        if category == "loop":
            assert row["status"] == "timeout" and f"timed out after {TIMEOUT} s" in row["errors"], row
            assert TIMEOUT <= float(row["seconds"]) < TIMEOUT + 20, row
        elif category == "error":
            assert row["status"] == "error" and row["errors"], row
        else:
            assert row["status"] == "graded", row
        if category in ("right", "blank", "wrong", "library"):
            assert row["errors"] == "", row
    assert "NameError" in rows["crash_func.ipynb"]["errors"]

    # the endless loop's kernel was killed, not left spinning
    assert list(pids.glob("*.pid"))
    for pid_file in pids.glob("*.pid"):
        pid = int(pid_file.read_text())
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _alive(pid), f"the kernel of {pid_file.stem} still runs"

    with open(out.with_name("gradebook-answers.csv"), newline="") as f:
        answers = {r["submission"]: r["q4b"] for r in csv.DictReader(f)}
    assert answers["right1.ipynb"] == ANSWER and answers["right0.zip"] == ANSWER
    assert "Type your answer here" in answers["blank0.ipynb"]
    logs = out.with_name("gradebook-logs")
    assert all((logs / f"{name}.txt").is_file() for name in expected)
    assert "q2 - 2 result" in (logs / "library0.ipynb.txt").read_text()  # the hidden test's report, for the instructor


def test_grading_refuses_what_it_cannot_grade(built, tmp_path):
    from cl_lab.lab import grade

    assert grade.main([str(tmp_path / "missing"), "--lab", LAB, "--autograder", str(built["zip"])]) == 2
    (tmp_path / "empty").mkdir()
    assert grade.main([str(tmp_path / "empty"), "--lab", LAB, "--autograder", str(built["zip"])]) == 2
    assert grade.main([str(tmp_path / "empty"), "--lab", LAB, "--labs-dir", str(tmp_path / "nowhere")]) == 2


def test_written_answers_are_read_from_notebooks_and_zips(built, tmp_path):
    from cl_lab.lab.grade import written_answers

    nb = _solved(built)
    nbformat.write(nb, tmp_path / "a.ipynb")
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.write(tmp_path / "a.ipynb", "a.ipynb")
        zf.writestr(".OTTER_LOG", "log")
    assert written_answers(tmp_path / "a.ipynb") == [ANSWER] == written_answers(tmp_path / "a.zip")
    (tmp_path / "b.ipynb").write_text(json.dumps({"cells": "nonsense"}))
    assert written_answers(tmp_path / "b.ipynb") == []
    assert os.path.exists(built["zip"])
