"""benchmarks/gpu_check.py on the CPU (``--allow-cpu --quick``), with the lab extras and torchvision
made unimportable: the GPU machine has neither them nor an installed cl_lab."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"

ABSENT = ("torchvision", "plotly", "papermill", "jupyter", "jupyterlab", "ipywidgets", "anywidget", "seaborn",
          "nbconvert", "nbformat", "ipykernel", "yaml", "ray", "otter", "playwright")

BLOCKER = f'''import sys
from importlib.abc import MetaPathFinder


class Absent(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, Absent())
'''


@pytest.fixture
def env(tmp_path):
    """Only the repository root on the import path (as ``PYTHONPATH=.``), plus a ``sitecustomize``
    that makes the optional packages fail to import, in this process's children too."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def test_blocker_works(env):
    out = subprocess.run([sys.executable, "-c", "import plotly"], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "No module named 'plotly'" in out.stderr


def test_cpu_run_writes_the_table_and_a_json_line(tmp_path, env):
    out = tmp_path / "gpu"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--allow-cpu", "--quick", "--out", str(out)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert line["ok"] is True and line["measurement_errors"] == 0 and line["skipped_methods"] == []
    assert line["torch"] == torch.__version__ and set(line["images_per_second"]) == {"sgd", "sgd-ll"}

    report = json.loads((out / "gpu_check.json").read_text())
    env_ = report["environment"]
    assert env_["device"] == "cpu" and env_["torch"] == torch.__version__ and "cuda" in env_ and env_["device_name"]
    tests = report["tests"]
    if not torch.cuda.is_available():  # every CUDA test is skipped, none fails
        assert tests["ok"] and tests["skipped"] == tests["total"] > 0 and tests["passed"] == tests["failed"] == 0
    assert (out / "pytest.log").exists()
    rows = {r["method"]: r for r in report["throughput"]}
    assert list(rows) == ["sgd", "sgd-ll"]
    for r in rows.values():
        assert r["contiguous"] > 0 and r["channels_last"] > 0 and "bf16" not in r and r["errors"] == {}
    assert rows["sgd"]["vs_sgd"] == 1.0 and rows["sgd-ll"]["vs_sgd"] > 0
    assert report["setup"]["stream"] == "synth-mini" and report["setup"]["n_tasks"] == 1

    md = (out / "gpu_check.md").read_text().splitlines()
    header = next(i for i, s in enumerate(md) if s.startswith("| method"))
    assert [c.strip() for c in md[header].strip("|").split("|")] == [
        "method", "contiguous (eager)", "channels-last", "bf16 autocast", "vs SGD"]
    table = [[c.strip() for c in s.strip("|").split("|")] for s in md[header + 2: header + 4]]
    assert [r[0] for r in table] == ["sgd", "sgd-ll"] and all(r[3] == "n/a" for r in table)
    assert table[0][4] == "1.00" and float(table[1][1]) > 0


def test_the_compiled_column(tmp_path, env):
    """``--compile`` adds a fourth setting, channels-last with compile=True, to the JSON and the table."""
    from cl_lab.models import compiled

    if compiled.unavailable() is not None:
        pytest.skip(f"torch.compile is unavailable here: {compiled.unavailable()}")
    out = tmp_path / "gpu"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--allow-cpu", "--quick", "--skip-tests", "--compile",
                           "--methods", "sgd", "--out", str(out)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["setup"]["settings"]["compiled"] == {"memory_format": "auto", "amp": False, "compile": True}
    rows = {r["method"]: r for r in report["throughput"]}
    assert rows["sgd"]["compiled"] > 0 and rows["sgd"]["errors"] == {} and rows["sgd"]["compiled_vs_channels_last"] > 0
    md = (out / "gpu_check.md").read_text().splitlines()
    header = next(s for s in md if s.startswith("| method"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "method", "contiguous (eager)", "channels-last", "bf16 autocast", "compiled", "vs SGD"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_it_refuses_in_one_line(tmp_path, env):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "gpu")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "no CUDA device" in proc.stderr and "--allow-cpu" in proc.stderr
    assert not (tmp_path / "gpu").exists()
