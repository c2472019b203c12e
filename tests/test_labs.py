"""Course labs: otter-grader builds them, the instructor solutions pass every check, an untouched
student version runs to the end and fails every check with a helpful message, and a wrong answer
gets the message written for it."""

import re

import nbformat
import pytest
from nbclient import NotebookClient

pytest.importorskip("otter")

from cl_lab.lab import labs  # noqa: E402

CHECK = re.compile(r'grader\.check\("(q\d+)"\)')


def execute(path, edit=None):
    nb = nbformat.read(path, as_version=4)
    if edit:
        edit(nb)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def check_outputs(nb) -> dict[str, str]:
    """{question: text grader.check printed} for every check cell."""
    out = {}
    for cell in nb.cells:
        m = CHECK.search(cell.source) if cell.cell_type == "code" else None
        if m and "check_all" not in cell.source:
            out[m.group(1)] = "".join(str(o.get("data", {}).get("text/plain", o.get("text", ""))) for o in cell.outputs)
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return labs.build(tmp_path_factory.mktemp("labs"))


def test_every_lab_builds_with_three_to_five_checked_exercises(built):
    assert set(built) == set(labs.lab_names()) and len(built) >= 5
    for name, paths in built.items():
        assert paths["zip"].exists() and paths["autograder"].exists()
        student = nbformat.read(paths["student"], as_version=4)
        questions = sorted({m.group(1) for c in student.cells for m in [CHECK.search(c.source)] if m})
        assert 3 <= len(questions) <= 5, f"{name}: {questions}"
        text = "\n".join(c.source for c in student.cells)
        assert "# SOLUTION" not in text and "BEGIN SOLUTION" not in text, f"{name}: a solution leaked"


def test_instructor_solutions_pass_every_check(built):
    for name, paths in built.items():
        results = check_outputs(execute(paths["autograder"]))
        assert results, name
        failed = {q: t for q, t in results.items() if "All test cases passed" not in t}
        assert not failed, f"{name}: {failed}"


def test_untouched_student_versions_fail_every_check_without_crashing(built):
    for name, paths in built.items():
        results = check_outputs(execute(paths["student"]))  # raises if any cell errors
        assert results, name
        for q, text in results.items():
            assert "failed" in text.lower(), f"{name} {q} passes untouched: {text}"
            assert "placeholder" in text or "returns no" in text or "nothing yet" in text, f"{name} {q}: {text}"


def test_a_wrong_answer_gets_its_own_message(built):
    def flip_bwt(nb):
        cell = next(c for c in nb.cells if "bwt = ..." in c.source)
        cell.source = cell.source.replace("bwt = ...", "bwt = -sum(R[2, j] - R[j, j] for j in range(2)) / 2")

    results = check_outputs(execute(built["lab1_forgetting"]["student"], flip_bwt))
    assert "the sign is flipped" in results["q2"]
    assert "failed" in results["q1"].lower()  # the others are still untouched


def test_unknown_lab_is_refused_before_work(tmp_path):
    with pytest.raises(Exception, match="unknown lab"):
        labs.build(tmp_path, ["lab9"])
    assert not any(tmp_path.iterdir())


def test_lab_page_before_and_after_an_answer(built):
    """Screenshots (tests/artifacts/) of lab 1's first exercise as a student sees it in the browser:
    untouched, the check fails with its message; answered, it passes."""
    import shutil
    from pathlib import Path

    from nbconvert import HTMLExporter

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    pytest.importorskip("playwright")
    if exe is None:
        pytest.skip("no Chromium browser installed (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    def answer(nb):
        cell = next(c for c in nb.cells if c.source.strip() == "avg_final = ...")
        cell.source = "avg_final = np.nanmean(R[-1])"

    shots = Path(__file__).resolve().parent / "artifacts"
    shots.mkdir(exist_ok=True)
    student = built["lab1_forgetting"]["student"]
    pages = {}
    for label, edit in (("before", None), ("after", answer)):
        nb = execute(student, edit)
        assert ("All test cases passed" in check_outputs(nb)["q1"]) == (label == "after")
        html, _ = HTMLExporter().from_notebook_node(nb)
        pages[label] = student.parent / f"lab1_{label}.html"
        pages[label].write_text(html)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        for label, path in pages.items():
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(path.as_uri())
            q1 = page.locator(".jp-Cell", has_text="Question 1")
            check = page.locator(".jp-Cell", has_text='grader.check("q1")')
            q1.first.scroll_into_view_if_needed()
            box_a, box_b = q1.first.bounding_box(), check.first.bounding_box()
            page.screenshot(path=str(shots / f"lab1_q1_{label}.png"), full_page=True,
                            clip={"x": 0, "y": box_a["y"], "width": 1100,
                                  "height": box_b["y"] + box_b["height"] - box_a["y"]})
            text = check.first.inner_text()
            assert ("passed" in text) == (label == "after") and ("failed" in text) == (label == "before"), text
            page.close()
        browser.close()
