"""Course labs: otter-grader builds them, the instructor solutions pass every check (hidden ones
included), an untouched student version runs to the end and fails every check with a helpful message,
a wrong answer gets the message written for it, no student version (nor the README) shows the
instructor's answers, and the autograder zip names a grading environment with cl_lab and a CPU torch."""

import json
import re
import zipfile
from fractions import Fraction
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

pytest.importorskip("otter")

from cl_lab.lab import labs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHECK = re.compile(r'grader\.check\("(q\d+)"\)')

# What each lab asks for on its own data (evaluated in the executed instructor notebook), and how it
# could be written out: none of these renderings may appear in a student version or in the README.
ANSWERS = {
    # (lab 1's drop is read off the run's matrix, which the notebook prints on purpose)
    "lab1_forgetting": {"final_average(R)": "float", "bwt(R)": "float", "forgetting(R)": "float"},
    "lab2_ewc": {"max_lambda": "float"},
    "lab3_clr": {"clr_kernel_count(model)": "int", "cost": "pct"},
    "lab4_rescl_folding": {"rescl_start[0]": "float", "rescl_start[1]": "float"},
    "lab5_mpnas_paths": {"shared_saving": "float", "ceiling": "frac"},
    "lab6_scenarios": {"task_il_accuracy(logits, y, classes_per_task)": "float", "class_il_accuracy(logits, y, 6)": "float"},
}


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


@pytest.fixture(scope="module")
def instructor(built):
    """{lab: (executed instructor notebook, {answer expression: value})}."""
    out = {}
    for name, paths in built.items():
        exprs = list(ANSWERS[name])

        def report(nb, exprs=exprs):
            nb.cells.append(nbformat.v4.new_code_cell(
                f"import json\nprint('ANSWERS=' + json.dumps({{e: float(eval(e)) for e in {exprs!r}}}))"))

        nb = execute(paths["autograder"], report)
        text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
        out[name] = (nb, json.loads(text.split("ANSWERS=", 1)[1]))
    return out


def renderings(value: float, kind: str) -> set[str]:
    """How an answer could be printed: 3 and 4 decimals, its shortest form, its exact 2 decimals,
    a percentage's usual forms, a simple fraction's a/b, an integer with and without thousands commas."""
    if kind == "int":
        n = int(round(value))
        return {str(n), f"{n:,}"}
    out = {f"{value:.3f}", f"{value:.4f}", f"{value:g}"}
    if abs(round(value, 2) - value) < 1e-9:
        out.add(f"{value:.2f}")
    if kind == "pct":
        out |= {f"{value:.2f}", f"{value:.1f}%"}
    if kind == "frac":
        f = Fraction(value).limit_denominator(12)
        if abs(float(f) - value) < 1e-9 and f.denominator > 2:
            out.add(f"{f.numerator}/{f.denominator}")
    return out


def specific(value: float, kind: str) -> bool:
    """Whether an answer is specific enough to search the README for: the README's tables hold
    many numbers of one or two significant digits (0.5, 0.25), so those are searched in the
    student versions only, unless negative."""
    digits = f"{abs(value):g}".replace(".", "").lstrip("0")
    return kind in ("int", "frac") or value < 0 or len(digits) >= 3


def _strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


def student_text(paths) -> str:
    """Every string in every file of a student version (cell sources, outputs, the public tests in
    the metadata), decoded."""
    parts = []
    for f in sorted(paths["student"].parent.rglob("*")):
        if f.suffix == ".ipynb":
            parts += _strings(json.loads(f.read_text()))
        elif f.is_file() and f.suffix in (".py", ".txt", ".md", ".json", ".yml", ".yaml"):
            parts.append(f.read_text())
    return "\n".join(parts)


def manual_solutions(name: str) -> list[str]:
    """The sentences of the instructor's answers to the written questions."""
    sentences, manual, in_solution = [], False, False
    for cell in nbformat.read(labs.lab_dir() / f"{name}.ipynb", as_version=4).cells:
        src = cell.source.strip()
        if cell.cell_type == "raw" and src.startswith("# BEGIN QUESTION"):
            manual = bool(yaml.safe_load(src.split("\n", 1)[1]).get("manual"))
        elif cell.cell_type == "raw" and src.startswith("# BEGIN SOLUTION"):
            in_solution = True
        elif cell.cell_type == "raw" and src.startswith("# END SOLUTION"):
            in_solution = False
        elif manual and in_solution and cell.cell_type == "markdown":
            sentences += [" ".join(t.split()) for t in re.split(r"(?<=[.;:])\s", src) if len(t) > 40]
    return sentences


def test_every_lab_builds_with_three_to_five_checked_exercises(built):
    assert set(built) == set(labs.lab_names()) and len(built) >= 5
    for name, paths in built.items():
        assert paths["zip"].exists() and paths["autograder"].exists()
        student = nbformat.read(paths["student"], as_version=4)
        questions = sorted({m.group(1) for c in student.cells for m in [CHECK.search(c.source)] if m})
        assert 3 <= len(questions) <= 5, f"{name}: {questions}"
        text = "\n".join(c.source for c in student.cells)
        assert "# SOLUTION" not in text and "BEGIN SOLUTION" not in text, f"{name}: a solution leaked"
        assert "_Points:_" in text and "grader.export(" in text, f"{name}: no points or no export cell"
        # a written question has a cell to answer in, graded by hand
        manual = [q for q, v in labs.question_points(name).items() if v["manual"]]
        assert manual and text.count("<!-- BEGIN QUESTION -->") == len(manual), name
        assert "_Type your answer here, replacing this text._" in text, name


def test_hidden_tests_reach_the_autograder_only(built):
    for name, paths in built.items():
        student_tests = nbformat.read(paths["student"], as_version=4).metadata["otter"]["tests"]
        with zipfile.ZipFile(paths["zip"]) as zf:
            zip_tests = {Path(n).stem: zf.read(n).decode() for n in zf.namelist() if n.startswith("tests/")}
        assert set(student_tests) == set(zip_tests), name
        for q, code in zip_tests.items():
            assert "hidden=True" in code and "hidden=False" in code, f"{name} {q}: public and hidden tests"
            assert "hidden=True" not in student_tests[q], f"{name} {q}: a hidden test reached the student version"
            points = labs.question_points(name)[q]["points"]
            assert sum(float(p) for p in re.findall(r"@test_case\(points=([\d.]+)", code)) == points, f"{name} {q}"


def test_the_autograder_zip_installs_cl_lab_and_a_cpu_torch(built):
    for name, paths in built.items():
        with zipfile.ZipFile(paths["zip"]) as zf:
            env = yaml.safe_load(zf.read("environment.yml"))
            wheels = [n for n in zf.namelist() if re.fullmatch(r"files/cl_lab-[^/]+\.whl", n)]
            assert len(wheels) == 1, f"{name}: {zf.namelist()}"
            with zipfile.ZipFile(zf.open(wheels[0])) as wheel:
                assert {"cl_lab/lab/labs.py", "cl_lab/metrics.py"} <= set(wheel.namelist())  # what the tests import
        assert "python=3.11" in env["dependencies"], name
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        requirements = (paths["autograder"].parent / "requirements.txt").read_text().splitlines()
        for lines in (pip, requirements):
            assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines, name
            assert any(re.fullmatch(r"torch==[\d.]+\+cpu", ln) for ln in lines), f"{name}: {lines}"
            assert f"/autograder/source/{wheels[0]}" in lines, f"{name}: cl_lab not installed from the zip's wheel"
        assert any(ln.startswith("otter-grader") for ln in pip), name


def test_cl_lab_can_be_named_by_a_requirement_instead_of_a_wheel():
    lines = labs.autograder_requirements("cl_lab @ git+https://example.org/cl_lab@v0.1.0")
    assert lines[0] == "--extra-index-url https://download.pytorch.org/whl/cpu"
    assert re.fullmatch(r"torch==[\d.]+\+cpu", lines[1]) and re.fullmatch(r"torchvision==[\d.]+\+cpu", lines[2])
    assert lines[-1] == "cl_lab @ git+https://example.org/cl_lab@v0.1.0"


def test_instructor_solutions_pass_every_check(built, instructor):
    for name, (nb, _) in instructor.items():
        results = check_outputs(nb)
        assert results, name
        failed = {q: t for q, t in results.items() if "All test cases passed" not in t}
        assert not failed, f"{name}: {failed}"


def test_no_student_version_nor_the_readme_shows_an_answer(built, instructor):
    readme = (ROOT / "README.md").read_text()
    for name, (_, values) in instructor.items():
        text = student_text(built[name])
        assert text and set(values) == set(ANSWERS[name])
        for expr, value in values.items():
            for r in renderings(value, ANSWERS[name][expr]):
                pattern = re.compile(r"(?<![\w./])" + re.escape(r) + r"(?![\d/])")
                places = [("the student version", text)] + [("README.md", readme)] * specific(value, ANSWERS[name][expr])
                for where, haystack in places:
                    m = pattern.search(haystack)
                    assert m is None, (f"{name}: {expr} = {value} appears as {r!r} in {where}: "
                                       f"...{haystack[max(0, m.start() - 80): m.end() + 40]}...")
        flat = " ".join(text.split())
        for sentence in manual_solutions(name):
            assert sentence not in flat, f"{name}: a written answer's solution is in the student version: {sentence}"
        assert "cl_lab.metrics as M" not in text and "clr_parameter_table" not in text, name


def test_the_search_finds_an_answer_however_it_is_printed():
    def found(value, kind, text):
        return any(re.search(r"(?<![\w./])" + re.escape(r) + r"(?![\d/])", text) for r in renderings(value, kind))

    assert found(-0.28000000000000003, "float", "BWT (-0.280) compares with the diagonal")
    assert found(0.305, "float", "forgetting (0.305)") and found(2 / 3, "frac", "no model saves more than 2/3.")
    assert found(4176, "int", "4,176 kernels") and found(3.405342, "pct", "| 5,946 (3.41%) |")
    assert not found(0.305, "float", "0.3051 and 10.305") and not found(2 / 3, "frac", "12/3 or 2/30")
    assert specific(-0.5, "float") and specific(0.305, "float") and not specific(0.25, "float")


def test_a_library_call_does_not_answer_an_exercise():
    import numpy as np

    from cl_lab import metrics as M

    R = np.array([[0.9, np.nan], [0.5, 0.8]])

    def own(R):
        return float(np.mean([R[-1, j] - R[j, j] for j in range(R.shape[0] - 1)]))

    def calls(R):
        return M.bwt(R)

    def imports(R):
        import cl_lab.metrics

        return cl_lab.metrics.bwt(R)

    assert labs.library_uses(own) == [] and labs.library_uses(np.mean) == []
    assert labs.library_uses(calls) == ["cl_lab.metrics"] and labs.library_uses(M.bwt) == ["cl_lab.metrics.bwt"]
    assert labs.library_uses(lambda R: calls(R)) == ["cl_lab.metrics"]
    assert labs.library_uses(imports) == []  # a run-time import is caught by without_library instead
    with labs.without_library("cl_lab.metrics"):
        assert own(R) == pytest.approx(-0.4)
        with pytest.raises(AssertionError, match="cl_lab.metrics.bwt"):
            imports(R)
    assert imports(R) == pytest.approx(-0.4)  # restored


def test_untouched_student_versions_fail_every_check_without_crashing(built):
    for name, paths in built.items():
        results = check_outputs(execute(paths["student"]))  # raises if any cell errors
        assert results, name
        for q, text in results.items():
            assert "failed" in text.lower(), f"{name} {q} passes untouched: {text}"
            assert "placeholder" in text or "returns no" in text or "nothing yet" in text, f"{name} {q}: {text}"


def test_a_wrong_answer_gets_its_own_message(built):
    def flip_bwt(nb):
        cell = next(c for c in nb.cells if c.source.startswith("def bwt(R):"))
        cell.source = "def bwt(R):\n    return -np.mean([R[-1, j] - R[j, j] for j in range(len(R) - 1)])"

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
        cell = next(c for c in nb.cells if c.source.startswith("def final_average(R):"))
        cell.source = "def final_average(R):\n    return float(np.mean(R[-1]))"

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
