"""One MLflow run per training job: its name, tags, the open run, and how it ends.

Every run ends with a status: FINISHED, FAILED (with a `failure_reason` tag) or KILLED
(Ctrl-C / SIGTERM); none is left RUNNING. Jobs of a sweep are nested under the sweep's
parent run (dsbench.tracking.sweep), whose id reaches them in PARENT_ENV.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig

from dsbench.config import TrainConfig, config_hash
from dsbench.contract import PARENT_RUN, Tag
from dsbench.errors import ExternalError, stop_requested
from dsbench.tracking.store import (
    StoreUnreachable,
    open_experiment,
    redacted,
    store_error,
    unique_key_violation,
)

if TYPE_CHECKING:
    from dsbench.data.splits import SplitRecord

log = logging.getLogger(__name__)

INPUT_ATTEMPTS = 5  # tries to log a run's inputs while parallel jobs log the same ones
PARENT_ENV = "DSBENCH_PARENT_RUN_ID"  # set in every job of a sweep (hydra.job.env_set)


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
        Tag.DATASET: cfg.dataset.name,
        Tag.MODEL: cfg.model.name,
        Tag.DOWNSAMPLE: cfg.downsample.name,
        Tag.HEAD: cfg.head.name,
        Tag.SEED: str(cfg.trainer.seed),
        Tag.BACKEND: cfg.trainer.backend,
        Tag.PRECISION: cfg.trainer.precision,
        Tag.CONFIG_HASH: config_hash(cfg),
    }


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".splitlines()[0][:500]


RECORDED = "dsbench: recorded in a FAILED run"  # a note on an exception tracked_run recorded


def record_failure(cfg: TrainConfig, error: BaseException) -> None:
    """A job of a sweep that failed before its run opened (data, model building, the
    store) still leaves a FAILED run with the reason, nested in the sweep."""
    if not cfg.tracking.enabled or RECORDED in getattr(error, "__notes__", ()):
        return
    if isinstance(error, StoreUnreachable):  # nowhere to record it: the log has it
        return
    try:
        from mlflow import MlflowClient

        experiment_id = open_experiment(cfg.tracking)
        tags = {**job_tags(cfg), Tag.FAILURE_REASON: _reason(error)}
        if os.environ.get(PARENT_ENV):
            tags[PARENT_RUN] = os.environ[PARENT_ENV]
        client = MlflowClient()
        run = client.create_run(experiment_id, run_name=run_name(cfg), tags=tags)
        client.set_terminated(run.info.run_id, "FAILED")
    except Exception as e:  # the store itself may be what failed
        log.error("could not record the failed job in MLflow (%s)", _reason(e))


class Tracker:
    """The open MLflow run of one job (or nothing, with tracking.enabled=false).

    A store that fails mid-run (after MLflow's bounded retries, `tracking.retry_seconds`)
    raises ExternalError with one line, not MLflow's multi-line report."""

    def __init__(self, enabled: bool, uri: str = "") -> None:
        self.enabled, self.uri = enabled, uri
        self._pending: Any = None  # the last batch written off the training thread

    @contextmanager
    def _store(self) -> Iterator[Any]:
        import mlflow

        try:
            yield mlflow
        except mlflow.exceptions.MlflowException as e:
            raise store_error(e, f"tracking store {redacted(self.uri)} failed mid-run") from e

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.enabled:
            with self._store() as mlflow:
                # The previous batch is long written by now; if the store went away it
                # failed and this raises: the job stops instead of training on with every
                # batch queued for retries.
                self.flush()
                # One batched call; written off the training thread.
                self._pending = mlflow.log_metrics(metrics, step=step, synchronous=False)

    def flush(self) -> None:
        """Wait for the batch written off the training thread (raises if it failed)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            with self._store():
                pending.wait()

    def log_params(self, params: dict[str, Any]) -> None:
        if self.enabled:
            with self._store() as mlflow:
                mlflow.log_params(params)

    def log_text(self, text: str, path: str) -> None:
        if self.enabled:
            with self._store() as mlflow:
                mlflow.log_text(text, path)

    def log_artifacts(self, folder: Path, path: str) -> None:
        if self.enabled and folder.is_dir():
            with self._store() as mlflow:
                mlflow.log_artifacts(str(folder), path)

    def log_inputs(self, records: list[SplitRecord], source: str | None) -> None:
        """The run's training, validation and test data as MLflow inputs (the runs table's
        Dataset column): name, digest, where the archives come from (`source`, a URL; None:
        generated data), and the split's description as its profile."""
        if self.enabled:
            from dsbench.tracking.logged import split_dataset

            datasets = [split_dataset(r, source) for r in records]
            contexts = [r.context for r in records]
            for attempt in range(INPUT_ATTEMPTS):
                try:
                    with self._store() as mlflow:
                        mlflow.log_inputs(datasets, contexts, tags_list=[None] * len(records))
                    return
                except ExternalError as e:
                    # Parallel jobs of one experiment log the same splits: MLflow checks
                    # for the dataset row, then inserts it, so of two jobs racing one
                    # loses on the unique key. Its retry finds the winner's row.
                    if attempt + 1 == INPUT_ATTEMPTS or not unique_key_violation(e.__cause__):
                        raise
                    time.sleep(0.2 * (attempt + 1))

    def log_model(self, model: Any, example: Any) -> str | None:
        """The trained model as an MLflow logged model (Keras flavour) with its input
        signature from `example` (a few test images); returns its model id."""
        if not self.enabled:
            return None
        from dsbench.tracking.logged import log_keras_model

        with self._store():
            return log_keras_model(model, example)

    def set_tags(self, tags: dict[str, Any]) -> None:
        if self.enabled:
            with self._store() as mlflow:
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
    tracker = Tracker(enabled=True, uri=cfg.tracking.uri)
    with tracker._store():
        run = mlflow.start_run(
            run_name=run_name(cfg),
            tags={k: str(v) for k, v in tags.items()},  # a tracking server takes strings only
            parent_run_id=parent,
            log_system_metrics=cfg.tracking.system_metrics,
        )
    log.info("MLflow run %s (%s) in %s", run.info.run_id, run_name(cfg), cfg.tracking.uri)
    try:
        yield tracker
        # The last metrics (the test results) must be in before the run says FINISHED: a
        # FINISHED run without them would be skipped by resume for good.
        tracker.flush()
    except KeyboardInterrupt:
        _end(mlflow, "KILLED", "interrupted (Ctrl-C or SIGTERM)")
        raise
    except BaseException as e:
        if stop_requested():  # the signal, in a library's own exception
            _end(mlflow, "KILLED", f"interrupted (SIGTERM) in {type(e).__name__}")
            raise

        if _end(mlflow, "FAILED", _reason(e)):
            e.add_note(RECORDED)
        raise
    with tracker._store():
        mlflow.end_run("FINISHED")


def _end(mlflow: Any, status: str, reason: str) -> bool:
    """End the active run with `status` and its reason; False if the store cannot be
    reached (the error that ended the run is the one to report, not this one)."""
    done = True
    # end_run also when the tag failed: it takes the run off MLflow's active-run stack first,
    # so that the next job of this process can start its own.
    for step in (
        lambda: mlflow.set_tag(Tag.FAILURE_REASON, reason),
        lambda: mlflow.end_run(status),
    ):
        try:
            step()
        except Exception as e:
            log.error("could not mark the run %s in the store (%s)", status, _reason(e))
            done = False
    return done
