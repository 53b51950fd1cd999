"""MLflow tracking: one run per training job, one parent run per Hydra sweep.

Kept free of Keras so that Hydra can load it (as a callback) before the Keras backend is
chosen. Every run ends with a status: FINISHED, FAILED (with a `failure_reason` tag) or
KILLED (Ctrl-C / SIGTERM); none is left RUNNING.

Resume: every run carries a `config_hash` tag (`config.config_hash`). A job whose hash has a
FINISHED run in the experiment is skipped; a sweep started again with the same command line
continues in its old parent run, where the attempts a killed process left RUNNING are marked
KILLED.
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
from omegaconf import DictConfig, OmegaConf, read_write

from dsbench.config import TrackingConfig, TrainConfig, config_hash, short_hash, validate
from dsbench.errors import DsbenchError

log = logging.getLogger(__name__)

SWEEP_ROLE = "tags.`dsbench.role` = 'sweep'"
PARENT_ENV = "DSBENCH_PARENT_RUN_ID"  # set in every job of a sweep (hydra.job.env_set)
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


def _deleted(tracking: TrackingConfig, experiment_id: str) -> DsbenchError:
    return DsbenchError(
        f"MLflow experiment {tracking.experiment!r} at {tracking.uri} was deleted; restore it "
        f"(mlflow experiments restore --experiment-id {experiment_id}) or choose another "
        "tracking.experiment"
    )


def _local_store(uri: str) -> Path | None:
    """The sqlite file or the store folder of a local store; None for a server or database."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        return Path(uri.removeprefix("sqlite:///"))
    if parsed.scheme in ("", "file"):
        return Path(parsed.path)
    return None


def _store_exists(uri: str) -> bool:
    path = _local_store(uri)
    if path is None:
        return True
    return path.is_file() if uri.startswith("sqlite:") else path.is_dir()


def finished_run(cfg: TrainConfig) -> Any | None:
    """The newest FINISHED run of the experiment with this job's config hash, or None.

    Creates nothing: a store or experiment that does not exist yet has no runs (so bad
    input found later still leaves no store behind). A deleted experiment is an error.
    """
    if not _store_exists(cfg.tracking.uri):
        return None
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is None:
        return None
    if experiment.lifecycle_stage == "deleted":
        raise _deleted(cfg.tracking, experiment.experiment_id)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.config_hash = '{config_hash(cfg)}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def _check_writable(uri: str) -> None:
    """Refuse a local store we could not write, before any training is spent."""
    path = _local_store(uri)  # a file store's folder: MLflow creates it in an existing parent
    if path is None:
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


def job_tags(cfg: TrainConfig) -> dict[str, str]:
    """The tags a job's run is found and grouped by, from its config alone."""
    return {
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "downsample": cfg.downsample.name,
        "head": cfg.head.name,
        "seed": str(cfg.trainer.seed),
        "backend": cfg.trainer.backend,
        "precision": cfg.trainer.precision,
        "config_hash": config_hash(cfg),
    }


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".splitlines()[0][:500]


RECORDED = "dsbench: recorded in a FAILED run"  # a note on an exception tracked_run recorded


def record_failure(cfg: TrainConfig, error: BaseException) -> None:
    """A job of a sweep that failed before its run opened (data, model building, the
    store) still leaves a FAILED run with the reason, nested in the sweep."""
    if not cfg.tracking.enabled or RECORDED in getattr(error, "__notes__", ()):
        return
    try:
        from mlflow import MlflowClient

        experiment_id = open_experiment(cfg.tracking)
        tags = {**job_tags(cfg), "failure_reason": _reason(error)}
        if os.environ.get(PARENT_ENV):
            tags["mlflow.parentRunId"] = os.environ[PARENT_ENV]
        client = MlflowClient()
        run = client.create_run(experiment_id, run_name=run_name(cfg), tags=tags)
        client.set_terminated(run.info.run_id, "FAILED")
    except Exception as e:  # the store itself may be what failed
        log.error("could not record the failed job in MLflow (%s)", _reason(e))


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
        tags={k: str(v) for k, v in tags.items()},  # a tracking server takes strings only
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
        mlflow.set_tag("failure_reason", _reason(e))
        mlflow.end_run("FAILED")
        e.add_note(RECORDED)
        raise
    mlflow.end_run("FINISHED")


def sweep_key(config: DictConfig) -> str:
    """What makes two sweeps the same sweep: the experiment, the command line's overrides and
    the sweeper's parameters (a study in experiments/ sets them). Not the launcher."""
    params = config.hydra.sweeper.get("params")
    what = {
        "experiment": config.tracking.experiment,
        "overrides": sorted(config.hydra.overrides.task),
        "params": OmegaConf.to_container(params) if params is not None else {},
    }
    return short_hash(what)


# The parent run this process opened for its sweep (closed by `close_sweep`).
_open_parent: str | None = None


class SweepParentRun(Callback):
    """Hydra callback: a multirun is one parent MLflow run; its jobs are nested runs.

    The same sweep started again (same `sweep_key`, `tracking.resume=true`) reopens its old
    parent. When the sweep ends, its comparison table, plots and dashboard are logged to the
    parent.
    """

    tracking: TrackingConfig | None = None  # set when a parent run was opened

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra only warns when a callback raises; with bad input (a config, an unusable or
        # deleted store), open no parent and let the first job stop the sweep with the error.
        job_part = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        try:
            cfg = validate(job_part)
            if not cfg.tracking.enabled or cfg.dry_run:
                return
            experiment_id = open_experiment(cfg.tracking)
        except DsbenchError:
            return
        from mlflow import MlflowClient

        client = MlflowClient()
        sweep_dir = str(config.hydra.sweep.dir)  # HydraConfig is not set yet here
        key = sweep_key(config)
        previous = cfg.tracking.resume and client.search_runs(
            [experiment_id],
            filter_string=f"{SWEEP_ROLE} and tags.sweep_key = '{key}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if previous:
            run_id = previous[0].info.run_id
            _end_abandoned_jobs(client, experiment_id, run_id)
            client.update_run(run_id, status="RUNNING")
            client.set_tag(run_id, "sweep_dir", sweep_dir)  # where this attempt's jobs write
            log.info("resuming the sweep in its parent run %s", run_id)
        else:
            tags = {"dsbench.role": "sweep", "sweep_dir": sweep_dir, "sweep_key": key}
            run = client.create_run(
                experiment_id,
                run_name=f"sweep {Path(sweep_dir).name}",
                tags={**tags, "git_commit": git_commit()},
            )
            run_id = run.info.run_id
            log.info("MLflow sweep parent run %s", run_id)
        # Every job is composed again from these overrides, in this process or, with the
        # joblib, Ray or submitit launchers, in another one: Hydra sets the variable there.
        with read_write(config.hydra.overrides):
            config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{PARENT_ENV}={run_id}")
        global _open_parent
        _open_parent = run_id
        self.tracking = cfg.tracking

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        parent = _open_parent
        close_sweep(aborted=False)
        if parent and self.tracking is not None:
            report(self.tracking, parent, Path(config.hydra.sweep.dir) / "analysis")


def _end_abandoned_jobs(client: Any, experiment_id: str, parent: str) -> None:
    """Runs of an earlier attempt left RUNNING by a killed process: mark them KILLED."""
    stale = client.search_runs(
        [experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}' and attributes.status = 'RUNNING'",
    )
    for run in stale:
        reason = "its process ended without closing the run (found when the sweep resumed)"
        client.set_tag(run.info.run_id, "failure_reason", reason)
        client.set_terminated(run.info.run_id, "KILLED")
    if stale:
        log.info("marked %d abandoned run(s) of the earlier attempt KILLED", len(stale))


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

    A job counts once however many attempts it took (runs share its `config_hash`): it
    finished if one attempt did. A sweep aborted before any job started a run leaves
    nothing behind: its empty parent is deleted.
    """
    global _open_parent, last_sweep_failures
    parent, _open_parent = _open_parent, None
    if not parent:
        return
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment_id = client.get_run(parent).info.experiment_id
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    if not children and aborted:
        client.set_terminated(parent, "KILLED")
        client.delete_run(parent)
        return
    finished: dict[str, bool] = {}
    for c in children:
        job = c.data.tags.get("config_hash", c.info.run_id)
        finished[job] = finished.get(job, False) or c.info.status == "FINISHED"
    failed = sum(not done for done in finished.values())
    from mlflow.entities import RunTag

    tags = [RunTag("jobs", str(len(finished))), RunTag("jobs_failed", str(failed))]
    client.log_batch(parent, tags=tags)
    last_sweep_failures = failed
    status = "FAILED" if failed or aborted else "FINISHED"
    client.set_terminated(parent, status)
    log.info("sweep parent %s: %d jobs, %d not finished: %s", parent, len(finished), failed, status)
