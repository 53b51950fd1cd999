"""Run the real entry points in a subprocess and read the real MLflow store they wrote."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.entities import Run, ViewType

TINY = (  # a few hundred images: enough to exercise the whole path in seconds
    "dataset.source=archive",
    "dataset.train_subset=512",
    "dataset.test_subset=256",
    "dataset.val_fraction=0.01",
    "trainer.epochs=1",
    "trainer.verbose=0",
)


# Runs a module as `python -m` does, then says on stdout whether TensorFlow was imported.
PROBE_TF = (
    "import atexit, runpy, sys; atexit.register(lambda: print('tensorflow imported:', "
    "'tensorflow' in sys.modules, flush=True)); sys.argv = [sys.argv[1], *sys.argv[2:]]; "
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)
NO_TF = "tensorflow imported: False"


def dsbench(
    module: str, *overrides: str, cwd: Path, timeout: int = 900, probe_tf: bool = False
) -> subprocess.CompletedProcess:
    """`python -m dsbench.<module> overrides…`; with `probe_tf`, stdout ends with NO_TF
    when the run never imported TensorFlow."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    launch = ["-c", PROBE_TF] if probe_tf else ["-m"]
    return subprocess.run(
        [sys.executable, *launch, f"dsbench.{module}", *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def store_uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


def committed_store(results_folder: Path, tmp: Path) -> str:
    """URI of a copy of a results folder's committed `mlflow.db`: opening a store may migrate
    or lock it, and the committed file must not change."""
    shutil.copy(results_folder / "mlflow.db", tmp / "mlflow.db")
    return store_uri(tmp)


def all_runs(uri: str, view: int = ViewType.ACTIVE_ONLY) -> list[Run]:
    client = mlflow.MlflowClient(tracking_uri=uri)
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return client.search_runs(ids, run_view_type=view) if ids else []


@dataclass(frozen=True)
class Trained:
    """What `train` leaves: the finished command, its store's URI and the runs in that store."""

    out: subprocess.CompletedProcess
    uri: str
    runs: list[Run]


def train(
    folder: Path,
    *overrides: str,
    data: Path | None,
    sweep: bool = False,
    tiny: bool = True,
    timeout: int = 900,
) -> Trained:
    """`python -m dsbench.train [-m] TINY… dataset.archive_dir=<data> tracking.uri=<sqlite
    file in folder> overrides…` run in `folder`; fails the test (stderr's tail) unless it
    exits 0. `data` is the folder of the dataset's archives (None: the overrides say where);
    `tiny=False` leaves out TINY's subsets and epoch."""
    uri = store_uri(folder)
    out = dsbench(
        "train",
        *(["-m"] if sweep else []),
        *(TINY if tiny else ()),
        *([f"dataset.archive_dir={data}"] if data is not None else []),
        f"tracking.uri={uri}",
        *overrides,
        cwd=folder,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return Trained(out, uri, all_runs(uri))


def describe_in_process(*overrides: str) -> dict:
    """What `python -m dsbench.describe overrides… output=json` prints, composed and built in
    this process (no new interpreter, no second TensorFlow import)."""
    from hydra import compose, initialize_config_module

    from dsbench import config
    from dsbench.frameworks.summary import describe
    from dsbench.training.job import make_job

    config.register()
    with initialize_config_module(config.CONFIG_PATH.removeprefix("pkg://"), version_base="1.3"):
        cfg = compose("describe", list(overrides))
    return describe(make_job(cfg, config.DescribeConfig, store=False).cfg)
