"""Every notebook executes under papermill with tiny parameters; bad parameters fail clearly; grids; a real browser."""

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

import cl_lab
from cl_lab.config import ConfigError
from cl_lab.lab import NotebookParameterError, check_parameters, defaults
from cl_lab.report import REPORT_SET, execute, load_grid, run_grid, write_plotly_js

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "00_quickstart": {"stream": "synth-mini", "methods": ["sgd", "clr"], "epochs": 1},
    "01_task_stream": {"method": "clr", "stream": "synth-mini", "epochs": 1, "hyperparameters": {"lr": 0.002}},
    "02_clr": {"stream": "synth-mini", "n_tasks": 2, "compare": ["sgd"], "ablation": True, "epochs": 1},
    "03_rescl": {"stream": "synth-mini", "epochs": 1, "rescl_lambdas": [0.0], "lwf_alphas": [1.0], "sgd_lrs": [0.01],
                 "fe_lrs": [0.01]},
    "04_mpnas": {"stream": "synth-mini", "domains": "3", "setups": "mpnas,mpnas-uniform,single-path",
                 "search_steps": 4, "train_epochs": 1, "max_train": 40},
    "05_baselines": {"stream": "synth-mini", "methods": ["sgd", "er", "ccll", "lwf", "sgd-ll"], "n_tasks": 2, "epochs": 1,
                     "bn_stats_methods": ["sgd"], "scratch_methods": ["psp", "supsup"], "scratch_stream": "synth-mini",
                     "scratch_tasks": ["counting", "blood-cells"], "scratch_epochs": 1},
    "07_scenarios": {"methods": ["sgd", "icarl"], "scenarios": ["class"], "n_tasks": 3, "epochs": 1, "eval_every": 3},
}


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run every notebook once, in order, into one report directory (06 reads what 00-05 wrote)."""
    out = tmp_path_factory.mktemp("reports")
    write_plotly_js(out)
    runs = out / "runs"
    outcomes = {}
    for name, params in TINY.items():
        outcomes[name] = execute(name, {**params, "out_dir": str(runs)}, out / f"{name}.ipynb", out / f"{name}.html",
                                 cwd=out)
    mdl = next(runs.glob("*-mdl-seed*"))
    outcomes["06_dashboard"] = execute("06_dashboard", {"results_dir": str(runs), "mdl_dir": str(mdl)},
                                       out / "06_dashboard.ipynb", out / "06_dashboard.html", cwd=out)
    return out, outcomes


def test_the_report_set_and_the_tests_cover_every_notebook():
    on_disk = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert on_disk == sorted(REPORT_SET) == sorted([*TINY, "06_dashboard"])
    for name in on_disk:
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), name
        assert "check_parameters(globals()" in code[1].source, name
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name}: outputs not stripped"


@pytest.mark.parametrize("name", sorted(REPORT_SET))
def test_parameters_cell_declares_exactly_the_parameter_class(name):
    """One source of truth: the tagged cell assigns the class's names with the class's defaults."""
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    namespace: dict = {}
    exec(cell.source, namespace)  # the cell is plain assignments
    assigned = {k: v for k, v in namespace.items() if not k.startswith("__")}
    assert assigned == defaults(name)


@pytest.mark.parametrize("name", [*TINY, "06_dashboard"])
def test_notebook_executes_and_renders(name, executed):
    out, outcomes = executed
    o = outcomes[name]
    assert o.ok, o.error
    html = (out / f"{name}.html").read_text()
    assert "Traceback" not in html
    assert 'class="plotly-graph-div' in html, f"{name}: no figure in the report"
    assert 'src="plotly.min.js"' in html, f"{name}: figures must load plotly.js from next to the report"
    assert "require.min.js" not in html, "require.js would hide window.Plotly from the static figures"
    # offline: nothing fetched from the network (MathJax, widget managers, ES modules)
    assert not re.search(r"""(src=["']|import\(["'])https?://""", html), f"{name}: the page would fetch from the network"
    assert "widgetRendererSrc" not in html
    assert len(html.encode()) < 5_000_000, f"{name}: {len(html.encode()) / 1e6:.1f} MB"


def test_the_static_dashboard_page_has_working_dropdowns_instead_of_widgets(executed):
    out, _ = executed
    html = (out / "06_dashboard.html").read_text()
    assert html.count('class="plotly-graph-div') >= 5  # task accuracy, cost, matrix, paths: heatmap, paths, entropy
    layouts = _plotly_layouts(html)
    menus = [lay["updatemenus"][0]["buttons"] for lay in layouts if lay.get("updatemenus")]
    assert menus, "the static dashboards offer their choices as plotly dropdowns"
    # the task dashboard (first): it opens on the main comparison, the stream with the most methods (05's), then
    # one button per (stream, task), each showing some traces
    import cl_lab

    first = menus[0]
    acc = cl_lab.results.load(out / "runs")
    main = acc.groupby("stream").method.nunique().idxmax()
    assert set(TINY["05_baselines"]["methods"]) <= set(acc[acc.stream == main].method)  # 05's, not a side sweep
    labels = [b["label"] for b in first if b["label"].startswith(f"{main} ·")]
    assert first[0]["label"] == labels[0] == f"{main} · task 1: shapes" and labels[1] == f"{main} · task 2: counting"
    assert all(b["method"] == "update" and sum(b["args"][0]["visible"]) >= 1 for b in first)
    masks = [tuple(b["args"][0]["visible"]) for b in first]
    assert len(set(masks)) == len(masks), "each choice shows its own traces"
    assert all("task" in b["args"][1]["title"]["text"] for b in first)


def _plotly_layouts(html: str) -> list[dict]:
    """The layout argument of every ``Plotly.newPlot(id, data, layout, config)`` in a page."""
    dec, out = json.JSONDecoder(), []
    for m in re.finditer(r"Plotly\.newPlot\(\s*", html):
        i = m.end()
        _, i = dec.raw_decode(html, i)  # the div id
        for _ in range(2):
            while html[i] in ", \n\t":
                i += 1
            obj, i = dec.raw_decode(html, i)
        out.append(obj)
    return out


def test_task_stream_notebook_writes_its_run_directory(executed):
    out, _ = executed
    from cl_lab.lab import recorded_runs

    [recorded] = recorded_runs(out / "01_task_stream.ipynb")
    run = Path(recorded)
    assert run.name.startswith("synth-mini_clr_resnet8_seed0-") and run.parent == out / "runs"
    for f in ("config.json", "accuracy.csv", "metrics.csv", "costs.csv", "summary.json", "checkpoint.pt"):
        assert (run / f).exists(), f
    assert json.loads((run / "config.json").read_text())["method_config"]["lr"] == 0.002


def test_mpnas_and_baseline_notebooks_write_their_results(executed):
    out, _ = executed
    mdl = next((out / "runs").glob("*-mdl-seed*"))
    assert {"summary.csv", "jaccard.csv", "blocks.csv", "paths.json"} <= {p.name for p in mdl.iterdir()}
    configs = [json.loads(p.read_text()) for p in (out / "runs").glob("*/config.json") if "method" in p.read_text()]
    assert {"sgd", "er", "ccll", "clr"} <= {c["method"] for c in configs}
    # 05's from-random-weights comparison: PSP, SupSup and SGD without the shipped weights, on the named tasks
    scratch = {c["method"]: c for c in configs if c["stream"]["name"] == "synth-mini[counting,blood-cells]"}
    assert set(scratch) == {"sgd", "psp", "supsup"}
    assert scratch["sgd"]["pretrained"] is None and scratch["sgd"]["epochs"] == 1
    html = (out / "05_baselines.html").read_text()
    assert "sgd (random weights)" in html and "Drop of task 1 from when it was learnt" in html


def test_bad_parameters_fail_in_the_validation_cell_with_a_clear_message(tmp_path):
    params = {"method": "nope", "stream": "synth-mini", "epochs": 0, "learning_rate": 0.1, "out_dir": str(tmp_path / "r")}
    o = execute("01_task_stream", params, tmp_path / "bad.ipynb", tmp_path / "bad.html", cwd=tmp_path)
    assert not o.ok
    msg = o.error["error"]
    assert "NotebookParameterError" in msg and "unknown method 'nope'" in msg
    assert "learning_rate" in msg and "epochs=0 is out of range" in msg
    nb = nbformat.read(tmp_path / "bad.ipynb", as_version=4)
    failing = [c for c in nb.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(failing) == 1 and "check_parameters" in failing[0].source
    assert "unknown method" in (tmp_path / "bad.html").read_text()
    assert not (tmp_path / "r").exists(), "nothing may run before the parameters are valid"


def test_baselines_scratch_parameters_are_checked_before_anything_runs():
    ok = {**defaults("05_baselines"), "In": []}
    assert check_parameters(ok, "05_baselines")["scratch_tasks"] == ["scenes", "art-styles", "textures"]
    with pytest.raises(NotebookParameterError, match=r"scratch_tasks=\['scenes', 'moon'\] must name distinct tasks "
                                                     r"of 'synth-10'; allowed: \['shapes'"):
        check_parameters({**ok, "scratch_tasks": ["scenes", "moon"]}, "05_baselines")
    with pytest.raises(NotebookParameterError, match="unknown method 'pspp'"):
        check_parameters({**ok, "scratch_methods": ["pspp"]}, "05_baselines")
    assert check_parameters({**ok, "scratch_methods": [], "scratch_tasks": []}, "05_baselines")["scratch_methods"] == []


def test_check_parameters_rules():
    ok = {"method": "sgd", "stream": "synth-mini", "n_tasks": None, "backbone": "resnet8", "hyperparameters": {},
          "epochs": 1, "seed": 0, "out_dir": "x", "In": [], "_": None}
    assert check_parameters(ok, "01_task_stream")["method"] == "sgd"
    with pytest.raises(NotebookParameterError, match=r"epochs must be an integer; got True"):
        check_parameters({**ok, "epochs": True}, "01_task_stream")
    with pytest.raises(NotebookParameterError, match="n_tasks"):
        check_parameters({**ok, "n_tasks": 0}, "01_task_stream")
    with pytest.raises(NotebookParameterError, match="unknown parameter 'momentum_x'"):
        check_parameters({**ok, "hyperparameters": {"momentum_x": 1}}, "01_task_stream")
    with pytest.raises(NotebookParameterError, match=r"\['seed'\] missing"):
        check_parameters({k: v for k, v in ok.items() if k != "seed"}, "01_task_stream")
    # rerunning in the same kernel: names later cells defined are not parameters; injected ones are
    assert check_parameters({**ok, "r": object(), "pd": 1}, "01_task_stream")["seed"] == 0
    injected = "# Parameters\nmethod = 'sgd'\nlearning_rate = 0.1\n"
    with pytest.raises(NotebookParameterError, match="unknown parameter 'learning_rate'"):
        check_parameters({**ok, "learning_rate": 0.1, "In": ["", injected, "x = 1"]}, "01_task_stream")


def test_grid_runs_in_parallel_reports_failures_and_skips_finished(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("notebook: 01_task_stream\nworkers: 2\n"
                    "grid:\n  n_tasks: [2, 5]\n  seed: [0, 1]\n"
                    "fixed:\n  method: sgd\n  stream: synth-mini\n  epochs: 1\n")
    out = tmp_path / "grid"
    records = run_grid(grid, out=out, progress=False)
    assert len(records) == 4
    ok = [r for r in records if r["ok"]]
    bad = [r for r in records if not r["ok"]]
    assert {r["params"]["n_tasks"] for r in ok} == {2} and len(bad) == 2
    assert all("only 3 tasks" in r["error"]["error"] and r["error"]["cell"] is not None for r in bad)
    summary = (out / "summary.html").read_text()
    assert "failed" in summary and "only 3 tasks" in summary and "mean" in summary and "std" in summary
    assert all((out / f"{r['name']}.html").exists() for r in records)
    again = run_grid(grid, out=out, progress=False)
    assert sum(bool(r.get("skipped")) for r in again) == 2


@pytest.mark.parametrize("text,match", [
    ("grid: {method: [sgd]}\nnotebok: 01_task_stream\n", "unknown parameter .notebok.*Did you mean .notebook."),
    ("grid: {methd: [sgd]}\n", "methd"),
    ("grid: {method: []}\n", "non-empty list"),
    ("grid: [1, 2\n", "not valid YAML"),
    ("notebook: 99_nothing\ngrid: {method: [sgd]}\n", "unknown notebook"),
    ("grid: {method: [sgd]}\nworkers: 0\n", "workers"),
    ("grid: {epochs: ['1', 1]}\n", "would share a point name"),
    ("grid: {epochs: ['2', 1]}\n", "epochs must be an integer; got '2'"),
    ("grid: {stream: [7]}\n", "stream must be a string"),
    ("grid: {method: [sgd, sgd]}\n", "share a point name"),
    ("grid: {method: [sgd, nope]}\n", "unknown method 'nope'"),
    ("grid: {" + ", ".join(f"k{i}: [{', '.join(str(v) for v in range(40))}]" for i in range(6)) + "}\n",
     "4,096,000,000 points"),
])
def test_bad_grid_files_are_rejected_before_running(text, match, tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_grid(f)
    with pytest.raises(FileNotFoundError):
        load_grid(tmp_path / "missing.yaml")


def _browser():
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        return None, "playwright is not installed (pip install playwright)"
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        return None, "no Chromium browser installed (Debian: apt-get install chromium)"
    return exe, ""


def test_a_real_browser_renders_every_report_offline_and_the_static_dropdowns_redraw(executed):
    exe, why = _browser()
    if exe is None:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    out, _ = executed
    shots = ROOT / "tests" / "artifacts"
    shots.mkdir(exist_ok=True)
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-background-networking"])
        for name in [*TINY, "06_dashboard"]:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r, n=name: problems.append(f"{n}: request {r.url}")
                    if not r.url.startswith(("file:", "data:", "blob:", "about:")) else None)
            page.on("console", lambda m, n=name: problems.append(f"{n}: console {m.text}") if m.type == "error" else None)
            page.goto((out / f"{name}.html").as_uri())
            page.wait_for_function("document.querySelectorAll('div.plotly-graph-div .main-svg').length > 0",
                                   timeout=20000)
            figures = page.locator("div.plotly-graph-div").count()
            drawn = page.locator("div.plotly-graph-div:has(.main-svg)").count()
            assert figures >= 1 and drawn == figures, f"{name}: {drawn} of {figures} figures drawn"
            if name == "00_quickstart":
                assert figures == 2  # one accuracy heatmap per method
                page.screenshot(path=str(shots / "00_quickstart.png"), full_page=True)
            if name == "06_dashboard":  # pick another task in the first static dashboard: the figure redraws
                title = "() => document.querySelectorAll('.plotly-graph-div')[0].layout.title.text"
                before = page.evaluate(title)
                page.locator(".plotly-graph-div").first.locator(".updatemenu-header-group").click()
                page.locator(".updatemenu-dropdown-button", has_text="task 2: counting").first.click()
                page.wait_for_timeout(500)
                after = page.evaluate(title)
                assert before != after and "counting" in after
                page.locator(".plotly-graph-div").first.screenshot(path=str(shots / "06_static_dropdown.png"))
            page.close()
        browser.close()
    assert not problems, problems


def test_run_all_twice_in_one_kernel(tmp_path):
    """A student's second Run All (after editing a parameter) must work in the same kernel."""
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "00_quickstart.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source += f"\nmethods = ['sgd']\nout_dir = {str(tmp_path / 'runs')!r}\n"
    client = NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        for _ in range(2):  # raises CellExecutionError if any cell fails
            for i, cell in enumerate(nb.cells):
                if cell.cell_type == "code":
                    client.execute_cell(cell, i)
    validation = next(c for c in nb.cells if "check_parameters(globals()" in c.source)
    assert not any(o.get("output_type") == "error" for o in validation.outputs)


def test_result_paths_are_anchored_at_the_project_root_wherever_the_kernel_starts(tmp_path, monkeypatch):
    from cl_lab.lab.runs import find_mdl_run, find_results, project_root

    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # where JupyterLab starts a notebook's kernel
    assert project_root() == tmp_path.resolve()
    ns = {"results_dir": "runs/notebooks", "mdl_dir": None}
    P = check_parameters(ns, "06_dashboard")
    assert ns["results_dir"] == P["results_dir"] == str(tmp_path.resolve() / "runs" / "notebooks")
    # no runs anywhere: one clear error naming both places
    with pytest.raises(FileNotFoundError, match="make run"):
        find_results("runs/notebooks")
    # only `make run` results: the dashboard falls back to them
    batch = tmp_path / "reports" / "runs"
    cl_lab.run("sgd", "synth-mini", epochs=1, n_tasks=1, out=str(batch), progress=False)
    assert find_results("runs/notebooks") == str(batch.resolve())
    # the notebooks' own runs win once there are some
    cl_lab.run("sgd", "synth-mini", epochs=1, n_tasks=1, out=str(tmp_path / "runs" / "notebooks"), progress=False)
    assert find_results("runs/notebooks") == str(tmp_path.resolve() / "runs" / "notebooks")
    assert find_mdl_run(tmp_path) is None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LAB_JS = """async ({op, count}) => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  if (op === 'ready') { await panel.context.ready; await panel.sessionContext.ready; return true; }
  if (op === 'run') { await app.commands.execute('notebook:run-all-cells'); return true; }
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  const counts = cells.map(c => c.model.executionCount);
  const status = panel.sessionContext.session && panel.sessionContext.session.kernel
      ? panel.sessionContext.session.kernel.status : 'none';
  const errors = [];
  for (const c of cells) {
    for (const o of c.model.outputs.toJSON()) {
      if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
    }
  }
  return {counts, status, errors};
}"""


def test_live_jupyterlab_as_make_lab_starts_it_runs_06_twice_and_a_control_redraws(tmp_path):
    """`make lab`'s command line (with --allow-root when run as root) serves JupyterLab on the loopback;
    notebook 06 runs top to bottom twice in one kernel with no error, and picking another task in the
    first dashboard's dropdown redraws its live figure."""
    import os
    import secrets
    import shlex
    import urllib.request

    exe, why = _browser()
    if exe is None:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    proj = tmp_path / "proj"
    (proj / "notebooks").mkdir(parents=True)
    (proj / "pyproject.toml").write_text("[project]\nname = 'labtest'\n")
    shutil.copy(ROOT / "notebooks" / "06_dashboard.ipynb", proj / "notebooks")
    for method in ("sgd", "clr"):
        cl_lab.run(method, "synth-mini", n_tasks=2, epochs=1, out=str(proj / "runs" / "notebooks"), progress=False)
    line = subprocess.run(["make", "-s", "-n", "lab"], cwd=ROOT, capture_output=True, text=True).stdout
    cmd = shlex.split(next(ln for ln in line.splitlines() if "jupyter lab" in ln))
    if os.geteuid() == 0:
        assert "--allow-root" in cmd, "make lab must pass --allow-root when run as root"
    cmd[0] = str(ROOT / cmd[0]) if not os.path.isabs(cmd[0]) else cmd[0]
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "settings"  # no "get Jupyter news?" prompt over the figures
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false"}')
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    server = subprocess.Popen(
        [*cmd, "--no-browser", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={proj}", "--LabApp.expose_app_in_browser=True"],
        cwd=proj, env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "lab.log").open("w"))
    shots = ROOT / "tests" / "artifacts"
    shots.mkdir(exist_ok=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "lab.log").read_text()[-2000:]
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(f"{base}/lab/tree/notebooks/06_dashboard.ipynb?token={token}")
            page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                                   "&& window.jupyterapp.shell.currentWidget.sessionContext", timeout=90000)
            page.evaluate(LAB_JS, {"op": "ready", "count": 0})
            last = 0
            for run in (1, 2):
                page.evaluate(LAB_JS, {"op": "run", "count": 0})
                deadline = time.time() + 240
                while True:
                    s = page.evaluate(LAB_JS, {"op": "state", "count": 0})
                    done = all(c is not None and c > last for c in s["counts"]) and s["status"] == "idle"
                    if done or time.time() > deadline:
                        break
                    time.sleep(1)
                assert done, f"run {run} did not finish: {s}"
                assert not s["errors"], f"run {run}: {s['errors']}"
                last = max(s["counts"])
            figure = page.locator(".jp-OutputArea .js-plotly-plot").first
            figure.wait_for(timeout=60000)
            title = "el => el.layout && el.layout.title ? el.layout.title.text : ''"
            before = figure.evaluate(title)
            figure.screenshot(path=str(shots / "06_live_before.png"))
            selects = page.locator(".jp-OutputArea .widget-dropdown select")
            select = next(selects.nth(i) for i in range(selects.count())
                          if len(selects.nth(i).locator("option").all_inner_texts()) >= 2)  # the task control
            options = select.locator("option").all_inner_texts()
            select.select_option(label=options[1])
            page.wait_for_function("(t) => { const el = document.querySelector('.jp-OutputArea .js-plotly-plot'); "
                                   "return el && el.layout && el.layout.title && el.layout.title.text !== t; }",
                                   arg=before, timeout=30000)
            after = figure.evaluate(title)
            figure.screenshot(path=str(shots / "06_live_after.png"))
            assert after != before and options[1].split(":")[-1].strip() in after, (before, after)
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_every_cell_has_an_id_so_nbformat_validates_without_warnings():
    import warnings

    import nbformat

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            nb = nbformat.read(path, as_version=4)
            nbformat.validate(nb)
        ids = [c.get("id") for c in nb.cells]
        assert all(ids) and len(set(ids)) == len(ids), path.name
