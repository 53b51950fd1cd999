"""Every job of a sweep checked before the first one starts.

A sweep's jobs run side by side in worker processes (the default launcher): a job with bad
input found in its own worker would stop the sweep while the others are mid-run. So, before
any job starts, each job's config is composed and checked as its job will check it
(config, sizes, geometry; `make_job` without the store, which the parent run checks), and a
bad one stops the sweep with its one line, exit 2, before anything trains or is recorded.
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dsbench.cli import EXIT_BAD_INPUT
from dsbench.errors import DsbenchError
from dsbench.provenance import git_commit
from dsbench.tracking.sweep import SweepAborted
from dsbench.training.job import check_committed, make_job

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
TRAIN = "train"  # the training app's config (conf/train.yaml); describe's sweeps train nothing


def sweep_jobs(config: DictConfig) -> list[list[str]] | None:
    """Each job's overrides, as Hydra's basic sweeper expands them (its params first, then
    the command line); None under another sweeper, which expands its own way."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return None
    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()]
    parsed = OverridesParser.create().parse_overrides([*arguments, *config.hydra.overrides.task])
    (jobs,) = BasicSweeper.split_arguments(parsed, None)
    return jobs


class CheckSweepJobs(Callback):
    """Hydra callback, before the sweep's parent run is opened: every job checked."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra import compose

        name = config.hydra.job.config_name
        jobs = sweep_jobs(config) if name == TRAIN else None
        commit = git_commit() if jobs else ""
        for overrides in jobs or []:
            try:
                job = make_job(compose(name, overrides=overrides), store=False)
                if not job.cfg.dry_run:
                    check_committed(job.cfg, commit)
            except DsbenchError as e:
                raise SweepAborted(str(e), EXIT_BAD_INPUT) from None
