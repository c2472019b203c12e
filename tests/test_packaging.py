import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_ALIASES = {"pytorch": "torch", "ray-core": "ray"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in py["dependencies"]}
    for extra in py["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = set()
    pip_section = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section += dep.get("pip", [])
        else:
            conda.add(CONDA_ALIASES.get(_name(dep), _name(dep)))
    conda -= {"python", "pip"}
    assert conda == wanted, f"only in environment.yml: {conda - wanted}; only in pyproject: {wanted - conda}"
    assert "-e ." in pip_section
    assert "python=3.11" in env["dependencies"]


def test_pins_agree():
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    env = (ROOT / "environment.yml").read_text()
    assert f"pytorch={pins['torch']}" in env and f"torchvision={pins['torchvision']}" in env


def test_readme_commands_exist_and_ci_calls_the_test_command():
    readme = (ROOT / "README.md").read_text()
    make = (ROOT / "Makefile").read_text()
    for target in ("run", "test"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", make, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_methods_register_where_defined_and_the_registry_stays_light():
    import subprocess
    import sys

    code = ("import sys, cl_lab.methods as m; print(len(m.method_names()), 'plotly' in sys.modules, "
            "'cl_lab.train' in sys.modules, m.get_method('clr').__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["21", "False", "False", "cl_lab.methods.clr"]


def test_top_level_lazy_submodules():
    import subprocess
    import sys

    code = ("import sys, cl_lab; assert 'torch' not in sys.modules; "
            "print(callable(cl_lab.results.load), cl_lab.Task.__name__, cl_lab.metrics.bwt.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["True", "Task", "bwt"]


LAYERS = [
    # leaf utilities, usable by every layer (results: the run-directory format, written by train, read by all)
    {"config", "_io", "_paths", "rundir", "metrics", "results", "registry", "parallel"},
    {"data"}, {"models"}, {"methods"}, {"train", "mdl", "experiments", "tune", "probes"}, {"viz"},
    {"lab", "report", "cli", "__main__", "__init__"},
]


def _layer(module: str) -> int:
    top = module.split(".")[0]
    # a name that is no module (``from .. import __version__``) is a constant of the package root
    return next((i for i, names in enumerate(LAYERS) if top in names), 0)


def test_import_graph_runs_one_way():
    """data -> models -> methods -> train -> results/metrics -> viz -> lab/report/cli: no module imports
    from a layer above its own (lazy imports inside functions included)."""
    import ast

    bad = []
    for path in sorted((ROOT / "cl_lab").rglob("*.py")):
        rel = path.relative_to(ROOT / "cl_lab").with_suffix("")
        here = ".".join(rel.parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = list(rel.parts[:-1])[: len(rel.parts) - node.level] if node.level > 1 else list(rel.parts[:-1])
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                targets = [target] if target else [f"{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cl_lab."):
                targets = [node.module[len("cl_lab."):]]
            else:
                continue
            for t in targets:
                if t and _layer(t) > _layer(here):
                    bad.append(f"{here} imports {t}")
    assert not bad, bad
