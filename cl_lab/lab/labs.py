"""Course labs: instructor notebooks with self-checking exercises, built with otter-grader.

The instructor notebooks live in ``notebooks/labs/`` in otter-grader's assign format (a
``# ASSIGNMENT CONFIG`` cell, then per question a prompt, a solution and test cells; a test
cell whose config says ``hidden: true`` is a hidden test, a question with ``manual: true`` is
a written answer graded by hand). ``build`` runs ``otter assign`` on each: it executes the
solutions against every check, hidden ones included (an assignment whose solutions fail is
not built), then writes

- ``<out>/<lab>/student/<lab>.ipynb``: solutions replaced by ``...``, written answers by a
  cell to type into, each autograded question ending in ``grader.check("qN")`` (public tests
  only), the notebook ending in an export cell that zips it for handing in;
- ``<out>/<lab>/autograder/<lab>.ipynb`` and ``<lab>-autograder_*.zip``: the solutions and
  the grading configuration, public and hidden tests, and the grading environment
  (``environment.yml``: Python 3.11, a CPU build of torch from the PyTorch index and
  ``cl_lab`` itself, from the wheel this build puts into the zip, or from
  ``cl_lab_requirement``).

``python -m cl_lab.lab.grade`` (``make grade``) grades a folder of submissions against the zip.

    python -m cl_lab.lab.labs [--out build/labs] [LAB ...]       # what `make labs` runs

The checks call ``library_uses`` and ``without_library`` (below) so that an exercise asking for
a function ``cl_lab`` already has cannot be answered by calling it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import inspect
import re
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, Callable, Iterator

from ..config import ConfigError
from .runs import project_root

CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# Gradescope (and any image built from the zip the same way) unpacks the zip here before setup.sh runs
AUTOGRADER_SOURCE = "/autograder/source"
GRADING_PYTHON = "3.11"


def lab_dir() -> Path:
    return project_root(Path(__file__).parent) / "notebooks" / "labs"


def lab_names() -> list[str]:
    return sorted(p.stem for p in lab_dir().glob("*.ipynb"))


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist).split("+")[0]


def autograder_requirements(cl_lab_requirement: str) -> list[str]:
    """The pip lines of the grading environment: CPU-only torch and torchvision at the versions this
    environment has (the PyTorch CPU index, as an extra index so that otter-grader still comes from
    PyPI), then ``cl_lab_requirement`` (a wheel path or any pip requirement naming cl_lab)."""
    return [f"--extra-index-url {CPU_TORCH_INDEX}",
            f"torch=={_version('torch')}+cpu",
            f"torchvision=={_version('torchvision')}+cpu",
            cl_lab_requirement]


def build_wheel(dest: Path) -> Path:
    """A wheel of this checkout's cl_lab in ``dest`` (pip, without dependencies or build isolation)."""
    root = project_root(Path(__file__).parent)
    if not (root / "pyproject.toml").is_file():
        raise ConfigError("no cl_lab checkout to build a wheel from: pass cl_lab_requirement "
                          "(e.g. 'cl_lab @ git+https://...') to name cl_lab for the grading image")
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(dest), str(root)], capture_output=True, text=True)
    wheels = sorted(dest.glob("cl_lab-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise RuntimeError(f"building the cl_lab wheel failed:\n{(proc.stdout + proc.stderr).strip()[-2000:]}")
    return wheels[-1]


def _staged_notebook(name: str, stage: Path, requirements: list[str], files: list[str]) -> Path:
    """A copy of the lab's instructor notebook in ``stage`` whose assignment config also names the
    grading requirements and the files to put into the autograder zip."""
    import nbformat
    import yaml

    nb = nbformat.read(lab_dir() / f"{name}.ipynb", as_version=4)
    cell = next((c for c in nb.cells if c.cell_type == "raw" and c.source.lstrip().startswith("# ASSIGNMENT CONFIG")),
                None)
    if cell is None:
        raise RuntimeError(f"lab {name!r} has no '# ASSIGNMENT CONFIG' cell")
    config = yaml.safe_load(cell.source.split("\n", 1)[1]) or {}
    config["requirements"] = requirements
    config["autograder_files"] = files
    config.setdefault("python_version", GRADING_PYTHON)
    cell.source = "# ASSIGNMENT CONFIG\n" + yaml.safe_dump(config, sort_keys=False).strip()
    path = stage / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def build(out: str | Path = "build/labs", names: list[str] | None = None, timeout: int = 600, *,
          run_tests: bool = True, cl_lab_requirement: str | None = None) -> dict[str, dict]:
    """Build the student and autograder versions of the labs (all by default) under ``out``.

    The autograder zip names its grading environment: a CPU torch and cl_lab, from a wheel of this
    checkout put into the zip (``files/``) unless ``cl_lab_requirement`` names cl_lab otherwise (a pip
    requirement such as ``cl_lab @ git+https://...``). ``run_tests=False`` skips otter's check of the
    solutions against every test (faster; the build no longer proves the solutions pass).

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
    with tempfile.TemporaryDirectory(prefix="cl_lab-labs-") as tmp:
        wheel = None if cl_lab_requirement else build_wheel(Path(tmp) / "wheel")
        requirement = cl_lab_requirement or f"{AUTOGRADER_SOURCE}/files/{wheel.name}"
        for name in names:
            dest = out / name
            if dest.exists():
                shutil.rmtree(dest)
            stage = Path(tmp) / name
            stage.mkdir()
            files = []
            if wheel is not None:
                shutil.copy(wheel, stage / wheel.name)
                files.append(wheel.name)
            master = _staged_notebook(name, stage, autograder_requirements(requirement), files)
            cmd = [sys.executable, "-m", "otter", "assign", str(master), str(dest)]
            if not run_tests:
                cmd.append("--no-run-tests")
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=stage)
            zips = sorted((dest / "autograder").glob("*.zip")) if dest.exists() else []
            if proc.returncode != 0 or not zips:
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                raise RuntimeError(f"otter assign failed for lab {name!r} (exit {proc.returncode}):\n{tail}")
            built[name] = {"student": dest / "student" / f"{name}.ipynb",
                           "autograder": dest / "autograder" / f"{name}.ipynb", "zip": zips[-1]}
    return built


def question_points(name: str) -> dict[str, dict[str, Any]]:
    """``{question: {"points": total, "manual": bool}}`` of a lab, read from its instructor notebook
    (a question's points are those of its test cells, or its own ``points`` when it has none)."""
    import nbformat
    import yaml

    questions: dict[str, dict[str, Any]] = {}
    current = None
    for cell in nbformat.read(lab_dir() / f"{name}.ipynb", as_version=4).cells:
        src = cell.source.lstrip()
        if cell.cell_type == "raw" and src.startswith("# BEGIN QUESTION"):
            cfg = yaml.safe_load(src.split("\n", 1)[1]) or {}
            current = cfg["name"]
            questions[current] = {"points": cfg.get("points"), "manual": bool(cfg.get("manual")), "tests": 0.0}
        elif cell.cell_type == "raw" and src.startswith("# END QUESTION"):
            current = None
        elif current and cell.cell_type == "code" and "# BEGIN TEST CONFIG" in src.split("\n", 1)[0]:
            cfg = yaml.safe_load(re.split(r'"""\s*#\s*END TEST CONFIG', src.split("\n", 1)[1])[0]) or {}
            questions[current]["tests"] += float(cfg.get("points", 0))
    return {q: {"points": float(v["points"] if v["points"] is not None else v["tests"]), "manual": v["manual"]}
            for q, v in questions.items()}


# -- what the checks use to tell a learner's own code from a call into the library --

def _library_name(obj: Any, prefix: str) -> str | None:
    """``obj``'s dotted name when it is a module or a function of package ``prefix``."""
    if isinstance(obj, types.ModuleType):
        module = label = obj.__name__
    elif inspect.isroutine(obj):
        module = getattr(obj, "__module__", None) or ""
        label = f"{module}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"
    else:
        return None
    return label if module == prefix or module.startswith(prefix + ".") else None


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def library_uses(fn: Callable, prefix: str = "cl_lab") -> list[str]:
    """The functions and modules of package ``prefix`` that ``fn`` can reach: ``fn`` itself, what it
    wraps (``functools.partial``, ``__wrapped__``), the globals its code names (its nested functions and
    lambdas included), its closure and default values, and, through the functions of its own module
    (the notebook's ``__main__``) it names, theirs. Empty for a function written with numpy or torch alone."""
    found: list[str] = []
    seen: set[int] = set()
    todo: list[Any] = [fn]
    home = getattr(getattr(fn, "__func__", fn), "__module__", "__main__")  # the learner's namespace
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        hit = _library_name(obj, prefix)
        if hit:
            found.append(hit)
            continue
        if isinstance(obj, functools.partial):
            todo += [obj.func, *obj.args, *obj.keywords.values()]
            continue
        try:
            wrapped = getattr(obj, "__wrapped__", None)
        except Exception:  # objects whose attribute lookup fails in their own way
            wrapped = None
        if wrapped is not None:
            todo.append(wrapped)
        func = getattr(obj, "__func__", obj)
        code = getattr(func, "__code__", None)
        own = obj is fn or getattr(func, "__module__", None) in (None, home)
        if not isinstance(code, types.CodeType) or not own:  # descend into the learner's code only, not numpy's
            continue
        env = getattr(func, "__globals__", {})
        for c in _code_objects(code):
            todo += [env[n] for n in c.co_names if n in env]
        for cell in getattr(func, "__closure__", None) or ():
            with contextlib.suppress(ValueError):  # an empty cell
                todo.append(cell.cell_contents)
        todo += [*(getattr(func, "__defaults__", None) or ()), *(getattr(func, "__kwdefaults__", None) or {}).values()]
    return sorted(set(found))


@contextlib.contextmanager
def without_library(*modules: str) -> Iterator[None]:
    """Within the block every public function of these modules raises ``AssertionError`` naming
    itself: a learner's function that calls one (however it was imported) fails its check."""
    saved = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        for attr, obj in list(vars(module).items()):
            if attr.startswith("_") or not inspect.isfunction(obj) or obj.__module__ != module.__name__:
                continue

            def banned(*args: Any, _name: str = f"{module_name}.{attr}", **kwargs: Any) -> Any:
                raise AssertionError(f"this calls {_name}, the library's version of the exercise: write it yourself")

            saved.append((module, attr, obj))
            setattr(module, attr, banned)
    try:
        yield
    finally:
        for module, attr, obj in saved:
            setattr(module, attr, obj)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build the course labs' student and autograder versions with otter-grader.")
    p.add_argument("labs", nargs="*", help=f"labs to build (default: all of {lab_names()})")
    p.add_argument("--out", default="build/labs", help="output directory (relative paths: from the project root)")
    p.add_argument("--cl-lab-requirement", default=None,
                   help="pip requirement naming cl_lab in the grading image (default: a wheel of this checkout, "
                        "put into the autograder zip)")
    args = p.parse_args(argv)
    try:
        built = build(args.out, args.labs or None, cl_lab_requirement=args.cl_lab_requirement)
    except (ConfigError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, paths in built.items():
        print(f"{name}: student {paths['student']}  autograder {paths['zip']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
