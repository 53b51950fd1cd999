"""What a user sees in `make ui`, checked in a real headless Chromium; screenshots of it.

    python -m devtools.mlflow_ui --experiment mnist-downsampling --out results/ui [--uri URI]

Starts `mlflow ui` on a free 127.0.0.1 port over the store, opens the experiment's runs
grouped by the `downsample` tag (as a table and as per-epoch charts), one run's tags, and the
newest sweep's dashboard in MLflow's artifact viewer, and saves a screenshot of each. The
browser test (tests/test_ui.py) runs the same functions. Needs Debian's `chromium` and
`chromium-driver` (`make install`) and selenium.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dsbench.analysis.load import missing_experiment, sweeps
from dsbench.contract import Metric, Tag, tag_column
from dsbench.errors import DsbenchError
from dsbench.tracking.view import ML_VIEW, set_view, view_url

WAIT_S = 60  # for the server to answer and for the single-page app to render
DASHBOARD = "analysis/dashboard.html"  # logged to a sweep's parent run by dsbench.analysis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(
    base: str, server: subprocess.Popen, error: str, seconds: float = WAIT_S
) -> None:
    """Wait for an MLflow server's /health; `error` if it exits or does not answer in time."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2):
                return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise DsbenchError(error) from None
            time.sleep(0.5)


@contextmanager
def mlflow_ui(uri: str, log_file: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """`mlflow ui` over the store on a free port of `host`; yields its base URL."""
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    with open(log_file, "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://{host}:{port}"
    try:
        wait_until_healthy(base, server, f"mlflow ui did not start on {base}; see {log_file}")
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@contextmanager
def chromium(width: int = 1600, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium driven by Selenium (Debian's chromium + chromium-driver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver_path:
        raise DsbenchError(
            "chromium and chromedriver are needed; install them with make install "
            "(Debian packages chromium, chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(arg)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to sandbox as root
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.implicitly_wait(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _xpath_text(text: str) -> str:
    return f"//*[contains(normalize-space(text()), '{text}')]"


def runs_page(driver: Any, base: str, uri: str, experiment_id: str) -> str:
    """The experiment's runs in the view `dsbench ui` sets up (dsbench.tracking.view: grouped
    by strategy and head, the question's columns); returns the page's visible text."""
    from selenium.webdriver.common.by import By

    set_view(uri, experiment_id)
    driver.get(view_url(base, experiment_id))
    driver.find_element(By.XPATH, _xpath_text("matching runs"))
    return visible_text(driver, "Group: ")


def visible_text(driver: Any, shown: str) -> str:
    """The page's visible text, once `shown` is on it (and MLflow's assistant panel is shut)."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, _xpath_text(shown))
    _close_assistant(driver)
    time.sleep(1)  # let the rows finish rendering
    return driver.find_element(By.TAG_NAME, "body").text


def _close_assistant(driver: Any) -> None:
    """MLflow 3 opens an assistant panel beside the page; close it to show the runs."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    driver.implicitly_wait(0)
    try:
        panel = "//*[contains(., 'MLflow Assistant')]/following::button[@aria-label='Close'][1]"
        for button in driver.find_elements(By.XPATH, panel):
            if button.is_displayed():
                button.click()
    except WebDriverException:
        pass  # no panel, or it closed itself: nothing in the way
    finally:
        driver.implicitly_wait(WAIT_S)


def charts_page(driver: Any, metric: str = Metric.VAL_ACCURACY) -> str:
    """From the grouped runs table: the chart view, one line per strategy, for `metric`."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, "//label[.//input[@value='CHART']]").click()
    search = driver.find_element(By.XPATH, "//input[@placeholder='Search metric charts']")
    search.send_keys(metric)
    driver.find_element(By.XPATH, _xpath_text(f"({metric})"))  # a legend entry per group
    time.sleep(2)  # the plots draw after their legends
    return driver.find_element(By.TAG_NAME, "body").text


def run_page(driver: Any, base: str, experiment_id: str, run_id: str) -> str:
    """One run's overview (params, metrics, tags); returns its visible text."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{ML_VIEW}")
    driver.find_element(By.XPATH, _xpath_text("About this run"))  # only the run page has it
    driver.find_element(By.XPATH, _xpath_text(run_id))
    time.sleep(1)
    return driver.find_element(By.TAG_NAME, "body").text


def dashboard_page(driver: Any, base: str, experiment_id: str, run_id: str) -> str:
    """The sweep's dashboard.html in MLflow's artifact viewer; returns the dashboard's text."""
    from selenium.webdriver.common.by import By

    driver.get(
        f"{base}/#/experiments/{experiment_id}/runs/{run_id}/artifacts/{DASHBOARD}?{ML_VIEW}"
    )
    frame = driver.find_element(By.TAG_NAME, "iframe")  # the viewer shows HTML in a frame
    driver.switch_to.frame(frame)
    try:
        text = driver.find_element(By.ID, "dashboard-title").text
        images = len(driver.find_elements(By.TAG_NAME, "img"))
    finally:
        driver.switch_to.default_content()
    time.sleep(1)
    return f"{text}\n{images} images"


def newest_dashboard(uri: str, experiment: str) -> str | None:
    """The newest sweep run that holds `analysis/dashboard.html`, or None."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for run_id in sweeps(uri, experiment)["run_id"]:  # newest first
        # list_artifacts lists a folder: a file's own path lists nothing
        if DASHBOARD in {a.path for a in client.list_artifacts(run_id, "analysis")}:
            return run_id
    return None


def screenshots(uri: str, experiment: str, out: Path) -> list[Path]:
    """Screenshots of the grouped runs and charts, one job run and the newest dashboard."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise missing_experiment(uri, experiment)
    sweep = newest_dashboard(uri, experiment)
    jobs = client.search_runs(
        [found.experiment_id], filter_string=f"{tag_column(Tag.DOWNSAMPLE)} != ''", max_results=1
    )
    if sweep is None or not jobs:
        raise DsbenchError(
            f"experiment {experiment!r} has no sweep with analysis/dashboard.html; "
            "run a sweep (-m) to the end, or dsbench analyze sweep_run=<id>"
        )
    exp_id, job = found.experiment_id, jobs[0].info.run_id
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with mlflow_ui(uri, out / "mlflow-ui.log") as base, chromium() as driver:
        views = {  # in this order: the charts view starts from the grouped runs table
            "runs_grouped_by_downsample": lambda: runs_page(driver, base, uri, exp_id),
            "val_accuracy_by_downsample": lambda: charts_page(driver),
            "run_tags": lambda: run_page(driver, base, exp_id, job),
            "sweep_dashboard": lambda: dashboard_page(driver, base, exp_id, sweep),
        }
        for name, show in views.items():
            show()
            shots.append(out / f"{name}.png")
            driver.save_screenshot(shots[-1])
    (out / "mlflow-ui.log").unlink()
    return shots


def main(argv: list[str] | None = None) -> None:
    from dsbench import cli
    from dsbench.config import default_store_uri

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="mnist-downsampling")
    parser.add_argument("--uri", default=default_store_uri())
    parser.add_argument("--out", type=Path, default=Path("results/ui"))
    args = parser.parse_args(argv)
    from selenium.common.exceptions import WebDriverException

    try:
        for path in screenshots(args.uri, args.experiment, args.out):
            print(path)
    except DsbenchError as e:
        cli.fail(str(e))
    except WebDriverException as e:  # the page did not show what was expected in time
        cli.fail(f"the MLflow UI did not show the expected page: {e.msg}")


if __name__ == "__main__":
    main()
