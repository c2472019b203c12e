"""make run says where it is: a line per report with its position, an estimate and what is left."""

import json

import nbformat

from cl_lab.report import run_report_set


def test_the_report_set_prints_progress_and_estimates_from_the_last_run(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"},
                                            "language_info": {"name": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(x)")]
    nbformat.write(nb, nbs / "01_task_stream.ipynb")
    out = tmp_path / "reports"
    first = run_report_set(out, only=["01_task_stream"], notebook_dir=nbs)
    text = capsys.readouterr().out
    assert first[0].ok and "[1/1] 01_task_stream: executing (about 90 s; about 1.5 min left in the set)" in text
    timings = json.loads((out / "timings.json").read_text())
    assert 0 < timings["01_task_stream"] == round(first[0].seconds, 1)
    run_report_set(out, only=["01_task_stream"], notebook_dir=nbs)
    again = capsys.readouterr().out
    assert f"executing (about {timings['01_task_stream']:.0f} s;" in again and "[1/1] 01_task_stream: ok" in again
