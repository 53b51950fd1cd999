"""MLflow tracking: one run per training job, one parent run per Hydra sweep.

Kept free of Keras so that Hydra can load it (as a callback) before the Keras backend is
chosen. Every run ends with a status: FINISHED, FAILED (with a `failure_reason` tag) or
KILLED (Ctrl-C / SIGTERM); none is left RUNNING.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dsbench.config import TrackingConfig, TrainConfig, validate
from dsbench.errors import DsbenchError

log = logging.getLogger(__name__)

PARENT_ENV = "DSBENCH_PARENT_RUN_ID"  # read by the sweep's jobs, in this or child processes
ROOT = Path(__file__).resolve().parents[2]
CODE = ("src", "conf", "experiments", "pyproject.toml", "requirements.lock")  # what makes numbers


def open_experiment(tracking: TrackingConfig) -> str:
    """Point MLflow at the store and return the experiment id (created if new)."""
    import mlflow

    _check_writable(tracking.uri)
    mlflow.set_tracking_uri(tracking.uri)
    try:
        experiment_id = mlflow.set_experiment(tracking.experiment).experiment_id
        if tracking.description:  # the note the MLflow UI shows above the runs
            mlflow.set_experiment_tag("mlflow.note.content", tracking.description.strip())
        return experiment_id
    except mlflow.exceptions.MlflowException as e:
        raise DsbenchError(
            f"cannot use MLflow experiment {tracking.experiment!r} at {tracking.uri}: "
            f"{e.message.splitlines()[0]}"
        ) from None


def _check_writable(uri: str) -> None:
    """Refuse a local store we could not write, before any training is spent."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        path = Path(uri.removeprefix("sqlite:///"))
    elif parsed.scheme in ("", "file"):
        path = Path(parsed.path)  # the store folder: MLflow creates it in an existing parent
    else:
        return  # a server or database: MLflow reports its own errors
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise DsbenchError(
            f"tracking.uri {uri}: folder {folder} does not exist or is not writable; "
            "use an existing writable folder, e.g. tracking.uri=sqlite:///mlflow.db"
        )


def git_commit() -> str:
    """HEAD's commit, with "-dirty" when the code or configs have uncommitted changes.

    Only what produces numbers counts: results/ and docs regenerated from a clean checkout
    leave the commit clean.
    """

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = git("diff", "--quiet", "HEAD", "--", *CODE).returncode == 1
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty else "")


def run_name(cfg: TrainConfig) -> str:
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    return (
        f"{cfg.dataset.name}/{cfg.model.name}/{cfg.downsample.name}+{cfg.head.name}"
        f"/s{cfg.trainer.seed}"
    )


def in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode.name == "MULTIRUN"


class Tracker:
    """The open MLflow run of one job (or nothing, with tracking.enabled=false)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.enabled:
            import mlflow

            # One batched call; written off the training thread.
            mlflow.log_metrics(metrics, step=step, synchronous=False)

    def log_params(self, params: dict[str, Any]) -> None:
        if self.enabled:
            import mlflow

            mlflow.log_params(params)

    def log_text(self, text: str, path: str) -> None:
        if self.enabled:
            import mlflow

            mlflow.log_text(text, path)

    def log_artifacts(self, folder: Path, path: str) -> None:
        if self.enabled and folder.is_dir():
            import mlflow

            mlflow.log_artifacts(str(folder), path)

    def set_tags(self, tags: dict[str, Any]) -> None:
        if self.enabled:
            import mlflow

            mlflow.set_tags(tags)


@contextmanager
def tracked_run(cfg: TrainConfig, tags: dict[str, Any]) -> Iterator[Tracker]:
    """Open a run for the block; end it FINISHED, FAILED (reason tagged) or KILLED."""
    if not cfg.tracking.enabled:
        yield Tracker(enabled=False)
        return
    import mlflow

    open_experiment(cfg.tracking)
    parent = os.environ.get(PARENT_ENV) if in_sweep() else None
    run = mlflow.start_run(
        run_name=run_name(cfg),
        tags=tags,
        parent_run_id=parent,
        log_system_metrics=cfg.tracking.system_metrics,
    )
    log.info("MLflow run %s (%s) in %s", run.info.run_id, run_name(cfg), cfg.tracking.uri)
    try:
        yield Tracker(enabled=True)
    except KeyboardInterrupt:
        mlflow.set_tag("failure_reason", "interrupted (Ctrl-C or SIGTERM)")
        mlflow.end_run("KILLED")
        raise
    except BaseException as e:
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        mlflow.set_tag("failure_reason", reason)
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


class SweepParentRun(Callback):
    """Hydra callback: a multirun is one parent MLflow run; its jobs are nested runs.

    When the sweep ends, its comparison table, plots and dashboard are logged to the parent.
    """

    tracking: TrackingConfig | None = None  # set when a parent run was opened

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra only warns when a callback raises; with bad input, open no parent and let
        # the first job stop the sweep with the error.
        job_part = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        try:
            cfg = validate(job_part)
        except DsbenchError:
            return
        if not cfg.tracking.enabled or cfg.dry_run:
            return
        from mlflow import MlflowClient

        experiment_id = open_experiment(cfg.tracking)
        sweep_dir = Path(config.hydra.sweep.dir)  # HydraConfig is not set yet here
        run = MlflowClient().create_run(
            experiment_id,
            run_name=f"sweep {sweep_dir.name}",
            tags={"dsbench.role": "sweep", "sweep_dir": str(sweep_dir), "git_commit": git_commit()},
        )
        os.environ[PARENT_ENV] = run.info.run_id
        self.tracking = cfg.tracking
        log.info("MLflow sweep parent run %s", run.info.run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        parent = os.environ.get(PARENT_ENV)
        close_sweep(aborted=False)
        if parent and self.tracking is not None:
            report(self.tracking, parent, Path(config.hydra.sweep.dir) / "analysis")


def report(tracking: TrackingConfig, parent_run_id: str, out_dir: Path) -> None:
    """Tables, plots and dashboard of a finished sweep, logged to its parent run.

    A failure here must not turn a finished sweep into an error: it is logged, and
    `python -m dsbench.analyze sweep=<id>` can be run again later.
    """
    from dsbench import analyze  # pandas and matplotlib: only once a sweep has ended

    try:
        sweep = "`python -m dsbench.train " + " ".join(sys.argv[1:]) + "`"
        analyze.analyze(
            tracking.experiment,
            tracking.uri,
            out_dir,
            sweep=parent_run_id,
            command=f"the end of the sweep {sweep}",
        )
    except Exception as e:
        log.error("analysis of sweep %s failed (%s: %s)", parent_run_id, type(e).__name__, e)


# Jobs of the last sweep of this process that did not finish (the CLI's exit code).
last_sweep_failures = 0


def close_sweep(aborted: bool) -> None:
    """End the sweep's parent run: FINISHED if every job finished, else FAILED.

    A sweep aborted before any job started a run leaves nothing behind: its empty parent
    is deleted.
    """
    parent = os.environ.pop(PARENT_ENV, None)
    if not parent:
        return
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment_id = client.get_run(parent).info.experiment_id
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    statuses = [c.info.status for c in children]
    failed = sum(s != "FINISHED" for s in statuses)
    if not children and aborted:
        client.set_terminated(parent, "KILLED")
        client.delete_run(parent)
        return
    from mlflow.entities import RunTag

    tags = [RunTag("jobs", str(len(children))), RunTag("jobs_failed", str(failed))]
    client.log_batch(parent, tags=tags)
    global last_sweep_failures
    last_sweep_failures = failed
    status = "FAILED" if failed or aborted else "FINISHED"
    client.set_terminated(parent, status)
    log.info("sweep parent %s: %d jobs, %d not finished: %s", parent, len(children), failed, status)
