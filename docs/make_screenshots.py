"""Screenshots of a run in MLflow and TensorBoard for the README (docs/img/), made as a user would:
a run logged with ``loggers=[...]``, each tracker's UI started on 127.0.0.1 (``cl_lab.tracking.TrackerUI``),
the pages loaded in headless Chromium.

    python docs/make_screenshots.py [--out runs/screenshots]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cl_lab
from cl_lab.tracking import TrackerUI

HERE = Path(__file__).resolve().parent


def _try(step) -> None:
    """A cosmetic step (closing a side panel): skipped where the UI differs."""
    try:
        step()
    except Exception as e:  # noqa: BLE001
        print(f"skipped a cosmetic step: {type(e).__name__}")


def _tensorboard_unsmoothed(page) -> None:
    box = page.locator("input.slider-input[type=number]").first  # the first is Smoothing
    box.fill("0")
    box.dispatch_event("input")
    box.dispatch_event("change")
    box.press("Tab")
    page.locator("button[aria-label='Toggle settings side pane']").click(timeout=5000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/screenshots")
    args = ap.parse_args()
    out = Path(args.out)
    r = cl_lab.run("derpp", "synth-10", n_tasks=3, epochs=1, out=str(out), loggers=["mlflow", "tensorboard"],
                   log_every=5, progress=False)
    from mlflow.tracking import MlflowClient
    from playwright.sync_api import sync_playwright

    from cl_lab.tracking import default_mlflow_uri

    c = MlflowClient(default_mlflow_uri(out))
    exp = c.get_experiment_by_name("cl_lab")
    run = [x for x in c.search_runs([exp.experiment_id]) if x.info.run_name == r.run_dir.name][0]
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    with TrackerUI("mlflow", out) as ml, TrackerUI("tensorboard", out) as tb, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{ml.url}#/experiments/{exp.experiment_id}/runs/{run.info.run_id}/model-metrics")
        page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        _try(lambda: page.get_by_text("Model training", exact=True).first.click(timeout=5000))
        _try(lambda: page.mouse.click(1363, 35))  # the assistant side panel's close button
        page.goto(f"{ml.url}#/experiments/{exp.experiment_id}/runs/{run.info.run_id}/model-metrics")
        page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        page.wait_for_timeout(3000)
        page.screenshot(path=str(HERE / "img" / "mlflow-run.png"))
        page.goto(f"{tb.url}?darkMode=false#timeseries&tagFilter=accuracy")
        page.get_by_text("/01_shapes").first.wait_for(timeout=60_000)
        _try(lambda: _tensorboard_unsmoothed(page))
        page.wait_for_timeout(3000)
        page.screenshot(path=str(HERE / "img" / "tensorboard-run.png"))
        browser.close()
    print(f"-> {HERE / 'img'}")


if __name__ == "__main__":
    main()
