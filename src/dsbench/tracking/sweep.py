"""A Hydra sweep is one parent MLflow run; its jobs are nested runs.

The same sweep started again (same `sweep_key`, `tracking.resume=true`) reopens its old
parent, where the attempts a killed process left RUNNING are marked KILLED. When the sweep
ends the parent is closed FINISHED or FAILED; the end-of-sweep analysis is a callback of its
own (dsbench.analysis.sweep_report), so tracking never imports analysis.
"""

from __future__ import annotations

import logging
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from dsbench.config import TrackingConfig, TrainConfig, short_hash, validate
from dsbench.contract import (
    DESCRIPTION,
    PARENT_RUN,
    SWEEP_ROLE,
    Tag,
    reused_in,
    tag_column,
    tag_filter,
)
from dsbench.errors import DsbenchError, ExternalError, one_line
from dsbench.provenance import git_commit
from dsbench.tracking.recorder import PARENT_ENV, record_failure
from dsbench.tracking.store import bound_retries, check_store, open_experiment

log = logging.getLogger(__name__)

SWEEP_FILTER = f"{tag_filter(Tag.ROLE)} = '{SWEEP_ROLE}'"  # the MLflow filter for parent runs


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


@dataclass
class SweepState:
    """The sweep this process runs: its open parent run, and how its jobs ended.

    One per process, because Hydra's callbacks and the CLI around them share no object:
    the parent callback opens the run, the report callback reads it, `close_sweep` ends it
    and counts the failures the CLI turns into its exit code.
    """

    parent: str | None = None  # the open parent run's id
    tracking: TrackingConfig | None = None  # where it is
    failures: int = 0  # jobs of the last closed sweep that did not finish
    closed: str = ""  # the last closed sweep's job counts, in words, for the terminal
    job_failures: int = 0  # jobs that failed in this process (a sweep without a store too)
    sweep_dir: str | None = None  # the sweep's folder, where jobs in other processes mark theirs

    def marked_failures(self) -> int:
        """Jobs that failed, counted by their marks in the sweep's folder (whichever process
        ran them: the default launcher runs jobs in worker processes)."""
        if self.sweep_dir is None:
            return 0
        folder = Path(self.sweep_dir) / FAILED_MARKS
        return len(list(folder.iterdir())) if folder.is_dir() else 0


FAILED_MARKS = ".failed"  # in a sweep's folder: one empty file per failed job, named by its number


state = SweepState()


class SweepParentRun(Callback):
    """Hydra callback: a multirun is one parent MLflow run; its jobs are nested runs."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns an Exception raised here into a warning and runs the jobs unnested:
        # a parent that cannot be made stops the sweep instead (SweepAborted is no Exception).
        # Bad input (a config, a deleted store) opens no parent: the first job reports it.
        state.sweep_dir = str(config.hydra.sweep.dir)
        job_part = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        try:
            cfg = validate(job_part)
            if not cfg.tracking.enabled or cfg.dry_run:
                return
            bound_retries(cfg.tracking.retry_seconds)
            check_store(cfg.tracking.uri)
            experiment_id = open_experiment(cfg.tracking)
            self._open(config, cfg, experiment_id)
        except ExternalError as e:
            raise SweepAborted(f"cannot start the sweep's parent run: {e}") from None
        except DsbenchError:
            return
        except Exception as e:
            raise SweepAborted(
                f"cannot start the sweep's parent run: {type(e).__name__}: {one_line(e)}"
            ) from e

    def _open(self, config: DictConfig, cfg: Any, experiment_id: str) -> None:
        from mlflow import MlflowClient

        client = MlflowClient()
        sweep_dir = str(config.hydra.sweep.dir)  # HydraConfig is not set yet here
        key = sweep_key(config)
        previous = cfg.tracking.resume and client.search_runs(
            [experiment_id],
            filter_string=f"{SWEEP_FILTER} and {tag_column(Tag.SWEEP_KEY)} = '{key}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if previous:
            run_id = previous[0].info.run_id
            _end_abandoned_jobs(client, experiment_id, run_id)
            client.update_run(run_id, status="RUNNING")
            client.set_tag(run_id, Tag.SWEEP_DIR, sweep_dir)  # where this attempt's jobs write
            log.info("resuming the sweep in its parent run %s", run_id)
        else:
            tags = {Tag.ROLE: SWEEP_ROLE, Tag.SWEEP_DIR: sweep_dir, Tag.SWEEP_KEY: key}
            grid = sweep_grid(config)
            run = client.create_run(
                experiment_id,
                run_name=sweep_name(config, sweep_dir),
                tags={**tags, Tag.GIT_COMMIT: git_commit(), DESCRIPTION: sweep_note(grid)},
            )
            run_id = run.info.run_id
            from mlflow.entities import Param

            client.log_batch(run_id, params=[Param(k, v) for k, v in grid.items()])
            log.info("MLflow sweep parent run %s", run_id)
        # Every job is composed again from these overrides, in this process or, with the
        # joblib, Ray or submitit launchers, in another one: Hydra sets the variable there.
        with read_write(config.hydra.overrides):
            config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{PARENT_ENV}={run_id}")
        state.parent, state.tracking = run_id, cfg.tracking

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            close_sweep(aborted=False)
        except Exception as e:  # the store went away: say so, exit ≠ 0 (Hydra would warn)
            raise SweepAborted(
                f"cannot close the sweep's parent run: {type(e).__name__}: {one_line(e)}"
            ) from e


def sweep_grid(config: DictConfig) -> dict[str, str]:
    """What the sweep varies and sets, as the parent run's params: the study's own grid
    (hydra.sweeper.params), then the command line's overrides (which win)."""
    params = config.hydra.sweeper.get("params") or {}
    grid = {str(k): str(v) for k, v in params.items()}
    for override in config.hydra.overrides.task:
        key, _, value = override.partition("=")
        grid[key.lstrip("+~")] = value
    return grid


def sweep_name(config: DictConfig, sweep_dir: str) -> str:
    """`<study> sweep <when>`: the study is the experiments= preset, else the experiment."""
    study = config.hydra.runtime.choices.get("experiments") or config.tracking.experiment
    return f"{study} sweep {Path(sweep_dir).name[:16].replace('_', ' ')}"


def sweep_note(grid: dict[str, str]) -> str:
    """The parent run's description (MLflow's note): the command line and the grid."""
    command = shlex.join(["dsbench", "train", *sys.argv[1:]])
    lines = [f"`{command}`", "", "Grid (the study's, then the command line's):"]
    return "\n".join([*lines, *(f"- {k} = {v}" for k, v in grid.items())])


class SweepAborted(BaseException):
    """The sweep cannot go on (its parent run cannot be made or closed: exit 1; a job's
    input is bad: exit 2): the CLI prints the message as one line and exits with `code`. A
    BaseException, because Hydra turns an Exception that a callback raises into a warning
    and carries on."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _end_abandoned_jobs(
    client: Any,
    experiment_id: str,
    parent: str,
    reason: str = "its process ended without closing the run (found when the sweep resumed)",
) -> None:
    """Runs left RUNNING by a process that was killed: mark them KILLED, with the reason."""
    stale = client.search_runs(
        [experiment_id],
        filter_string=f"{tag_column(PARENT_RUN)} = '{parent}' and attributes.status = 'RUNNING'",
    )
    for run in stale:
        client.set_tag(run.info.run_id, Tag.FAILURE_REASON, reason)
        client.set_terminated(run.info.run_id, "KILLED")
    if stale:
        log.info("marked %d abandoned run(s) KILLED (%s)", len(stale), reason)


def close_sweep(aborted: bool) -> None:
    """End the sweep's parent run: FINISHED if every job finished, else FAILED.

    A job counts once however many attempts it took (runs share its `config_hash`): it
    finished if one attempt did. A sweep aborted before any job started a run leaves
    nothing behind: its empty parent is deleted.
    """
    parent, state.parent = state.parent, None
    if not parent:
        return
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment_id = client.get_run(parent).info.experiment_id
    if aborted:  # the jobs of workers stopped with the sweep (the default launcher's)
        _end_abandoned_jobs(client, experiment_id, parent, "the sweep was stopped")
    children = client.search_runs(
        [experiment_id], filter_string=f"{tag_column(PARENT_RUN)} = '{parent}'"
    )
    reused = client.search_runs(
        [experiment_id], filter_string=f"{tag_filter(reused_in(parent))} = 'true'"
    )
    if not children and not reused and aborted:
        client.set_terminated(parent, "KILLED")
        client.delete_run(parent)
        return
    finished: dict[str, bool] = {}
    for c in [*children, *reused]:
        job = c.data.tags.get(Tag.CONFIG_HASH, c.info.run_id)
        finished[job] = finished.get(job, False) or c.info.status == "FINISHED"
    failed = sum(not done for done in finished.values())
    from mlflow.entities import RunTag

    counts = {Tag.JOBS: len(finished), Tag.JOBS_FAILED: failed, Tag.JOBS_REUSED: len(reused)}
    client.log_batch(parent, tags=[RunTag(k, str(v)) for k, v in counts.items()])
    state.failures = failed
    state.closed = (
        f"{len(finished)} jobs: {len(finished) - failed} finished ({len(reused)} reused from "
        f"earlier runs), {failed} not finished"
    )
    status = "FAILED" if failed or aborted else "FINISHED"
    client.set_terminated(parent, status)
    log.info(
        "sweep parent %s: %d jobs (%d reused from earlier runs), %d not finished: %s",
        parent,
        len(finished),
        len(reused),
        failed,
        status,
    )


def job_failed(cfg: TrainConfig | None, failure: Exception) -> float:
    """A sweep's failed job: its run is FAILED with the reason (one is made if it had none;
    `cfg` None: the job's store could not be reached), so the sweep counts it and the
    analysis lists it. The sweep goes on; the job's result is NaN."""
    if cfg is not None:
        record_failure(cfg, failure)
    state.job_failures += 1  # counted here too: a sweep may have no store
    _mark_failed()
    log.error("job failed (%s: %s); the sweep goes on", type(failure).__name__, failure)
    return float("nan")


def _mark_failed() -> None:
    """Leave this job's mark in its sweep's folder (the CLI of the sweep counts them)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    folder = Path(hydra.sweep.dir) / FAILED_MARKS
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(hydra.job.num)).touch()
