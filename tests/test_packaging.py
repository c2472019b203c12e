import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_ALIASES = {"pytorch": "torch"}


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
    assert out.stdout.split() == ["16", "False", "False", "cl_lab.methods.clr"]


def test_top_level_lazy_submodules():
    import subprocess
    import sys

    code = ("import sys, cl_lab; assert 'torch' not in sys.modules; "
            "print(callable(cl_lab.results.load), cl_lab.Task.__name__, cl_lab.metrics.bwt.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["True", "Task", "bwt"]
