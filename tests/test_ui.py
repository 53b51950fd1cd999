"""The MLflow UI over a store of real runs, in a real headless Chromium (Debian's chromium)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import STUDY_DESCRIPTION
from mlflow import MlflowClient

from devtools import mlflow_ui as ui
from dsbench.contract import SWEEP_ROLE, Metric, Tag

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study(study_store: str) -> dict[str, str]:
    client = MlflowClient(tracking_uri=study_store)
    experiment = client.get_experiment_by_name("study")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get(Tag.ROLE) == SWEEP_ROLE)
    job = next(r for r in runs if r.data.tags.get(Tag.DOWNSAMPLE) == "blur")
    return {
        "experiment": experiment.experiment_id,
        "sweep": parent.info.run_id,
        "job": job.info.run_id,
        "job_name": job.info.run_name,
        "names": "\n".join(r.info.run_name for r in runs if r.info.run_id != parent.info.run_id),
    }


@pytest.mark.slow
def test_runs_tags_and_dashboard_are_visible(
    study_store: str, study: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    shots = tmp_path_factory.mktemp("ui_screenshots")
    with ui.mlflow_ui(study_store, shots / "mlflow-ui.log") as base, ui.chromium() as driver:
        assert base.startswith("http://127.0.0.1:")

        text = ui.runs_page(driver, base, study_store, study["experiment"])
        driver.save_screenshot(shots / "runs.png")
        assert STUDY_DESCRIPTION in text  # the experiment's note
        # dsbench's view: the job runs only (4, not the sweep's parent), grouped by strategy
        # and head, the question's columns, each run's data and model.
        assert "4 matching runs" in text and text.count("Group: ") == 2
        for column in ("downsample", "head", "seed", "test_error"):  # the first screen
            assert f"\n{column}\n" in text
        assert text.count("\nmodel\n") == 4  # the Models column: each run's logged model
        assert len(re.findall(r"mnist \([0-9a-f]{16}\)\nTraining", text)) == 4  # Dataset

        text = ui.charts_page(driver, metric=Metric.VAL_ACCURACY)
        driver.save_screenshot(shots / "charts.png")
        assert "downsample: max, head: flatten (val_accuracy)" in text  # a line per group
        assert "downsample: blur, head: flatten (val_accuracy)" in text

        text = ui.run_page(driver, base, study["experiment"], study["job"])
        driver.save_screenshot(shots / "run.png")
        assert study["job_name"] in text
        # data_source is a tag only (the runs table shows no tag columns): the tags are shown
        chips = text.replace("\n: ", ": ")  # each tag renders as "key" then ": value"
        for tag in ("downsample: blur", "head: flatten", "data_source: archive"):
            assert tag in chips

        text = ui.dashboard_page(driver, base, study["experiment"], study["sweep"])
        driver.save_screenshot(shots / "dashboard.png")
        assert "study: which downsampling, at what cost" in text and "4 images" in text
    for name in ("runs", "charts", "run", "dashboard"):
        assert (shots / f"{name}.png").read_bytes().startswith(PNG)
    print(f"screenshots in {shots}")


@pytest.mark.slow
def test_screenshots_find_the_sweep_with_a_dashboard(
    study_store: str, study: dict[str, str]
) -> None:
    assert ui.newest_dashboard(study_store, "study") == study["sweep"]


@pytest.mark.slow
def test_ui_cli_rejects_an_unknown_experiment(study_store: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "devtools.mlflow_ui",
            "--experiment",
            "nope",
            "--uri",
            study_store,
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,  # devtools/ is run from the checkout, not installed
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"dsbench: error: no MLflow experiment 'nope' at {study_store}; it has: Default, study"
    ]


@pytest.mark.slow
def test_dsbench_ui_prints_its_view_and_serves_it(study_store: str, study: dict[str, str]) -> None:
    """`dsbench ui` sets the view up, prints its URL and runs the UI there; the URL opens the
    study's runs grouped by strategy in a real Chromium."""
    import subprocess
    import sys

    port = ui.free_port()
    command = [sys.executable, "-m", "dsbench", "ui", f"tracking.uri={study_store}"]
    command += ["tracking.experiment=study", f"port={port}"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/#/experiments/{study['experiment']}/runs?viewStateShareKey=dsbench"
        assert server.stdout.readline().strip() == f"study: {url}&workflowType=machine_learning"
        ui.wait_until_healthy(base, server, "dsbench ui did not start")
        with ui.chromium() as driver:
            driver.get(f"{url}&workflowType=machine_learning")
            text = ui.visible_text(driver, "Group: ")
        assert "4 matching runs" in text and text.count("Group: ") == 2
    finally:
        server.terminate()
        server.wait(timeout=30)
