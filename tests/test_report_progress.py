"""make run says where it is: a line per report with its position, an estimate and what is left."""

import json

import nbformat

from cl_lab.report import run_report_set
from cl_lab.report.reportset import FIRST_ESTIMATES


def _write_notebook(folder, code: str) -> None:
    """A report notebook named 01_task_stream in ``folder``: a parameters cell, then ``code``."""
    folder.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"},
                                            "language_info": {"name": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, folder / "01_task_stream.ipynb")


def test_the_report_set_prints_progress_and_estimates_from_the_last_run(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    _write_notebook(nbs, "print(x)")
    out = tmp_path / "reports"
    first = run_report_set(out, only=["01_task_stream"], notebook_dir=nbs)
    text = capsys.readouterr().out
    # a first run estimates from the README's measured times (FIRST_ESTIMATES; 01: 5 s)
    estimate = FIRST_ESTIMATES["01_task_stream"]
    assert first[0].ok and (f"[1/1] 01_task_stream: executing (about {estimate:.0f} s; "
                            f"about {estimate / 60:.1f} min left in the set)") in text
    timings = json.loads((out / "timings.json").read_text())
    assert 0 < timings["01_task_stream"] == round(first[0].seconds, 1)
    run_report_set(out, only=["01_task_stream"], notebook_dir=nbs)
    again = capsys.readouterr().out
    assert f"executing (about {timings['01_task_stream']:.0f} s;" in again and "[1/1] 01_task_stream: ok" in again


def test_a_notebook_that_trains_prints_a_line_per_finished_run(tmp_path, capsys):
    """Minutes of training inside one notebook are not silent: the runs its kernel finishes appear as they end."""
    nbs = tmp_path / "nbs"
    _write_notebook(nbs, "from cl_lab.lab.runs import run_methods\n"
                         f"rs = run_methods(['sgd', 'sgd-ll'], 'synth-mini', epochs=1, n_tasks=2, pretrained=None, "
                         f"progress=False, out={str(tmp_path / 'runs')!r})")
    (o,) = run_report_set(tmp_path / "reports", only=["01_task_stream"], notebook_dir=nbs)
    text = capsys.readouterr().out
    assert o.ok, o.error
    lines = [line for line in text.splitlines() if "01_task_stream: run " in line]
    assert len(lines) == 2, text
    assert "run 1 done at" in lines[0] and "sgd on synth-mini" in lines[0] and "avg acc" in lines[0]
    assert "sgd-ll on synth-mini" in lines[1]
    assert not list((tmp_path / "reports").glob(".*.runs.log"))  # the progress file is removed
    # inside the notebook: one line per run with its position and what is left
    import nbformat as nbf

    cell = nbf.read(str(tmp_path / "reports" / "01_task_stream.ipynb"), as_version=4).cells[-1]
    shown = "".join(out.get("text", "") for out in cell.outputs)
    assert "[1/2] sgd: avg acc" in shown and "min left" in shown and "[2/2] sgd-ll: avg acc" in shown
