"""Resume: a job whose config already has a FINISHED run, or a run that diverged, is skipped.

In a sweep, a run found outside it (a single run before, another sweep) is tagged
`reused_in(<the sweep's parent>)`: the sweep counts it, and its table and dashboard show it.

Every run carries a `config_hash` tag (`dsbench.config.config_hash`); the lookup searches
on that tag, which MLflow indexes. A diverged run (loss NaN or infinite, `errors.Diverged`)
is the config's outcome, so training it again would only repeat it; any other failure is
trained again.
"""

from __future__ import annotations

import os
from typing import Any

from dsbench.config import TrainConfig, config_hash
from dsbench.contract import PARENT_RUN, Tag, reused_in, tag_column
from dsbench.errors import DIVERGED
from dsbench.tracking.recorder import PARENT_ENV, in_sweep, run_name
from dsbench.tracking.store import deleted_error, ready_store, store_exists


def finished_run(cfg: TrainConfig) -> Any | None:
    """The newest FINISHED run of the experiment with this job's config hash, else the
    newest that diverged, else None.

    Creates nothing: a store or experiment that does not exist yet has no runs (so bad
    input found later still leaves no store behind). A deleted experiment is an error.
    """
    if not store_exists(cfg.tracking.uri):
        return None
    ready_store(cfg.tracking.uri)  # a store another process is creating right now
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is None:
        return None
    if experiment.lifecycle_stage == "deleted":
        raise deleted_error(cfg.tracking, experiment.experiment_id)
    same = f"{tag_column(Tag.CONFIG_HASH)} = '{config_hash(cfg)}'"
    for outcome in (
        "attributes.status = 'FINISHED'",
        f"attributes.status = 'FAILED' and {tag_column(Tag.FAILURE_REASON)} LIKE '{DIVERGED}%'",
    ):
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"{same} and {outcome}",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if runs:
            return runs[0]
    return None


def reuse(cfg: TrainConfig, run: Any) -> bool:
    """In a sweep, make a run found outside it part of it (tagged, not moved: it keeps its
    own parent); True if it was outside."""
    parent = os.environ.get(PARENT_ENV) if in_sweep() else None
    if not parent or run.data.tags.get(PARENT_RUN) == parent:
        return False
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=cfg.tracking.uri).set_tag(run.info.run_id, reused_in(parent), "true")
    return True


def skipped(cfg: TrainConfig, run: Any, reused: bool = False) -> str:
    """The line a job that resume skips prints."""
    outcome = "FINISHED" if run.info.status == "FINISHED" else "diverged"
    counted = "counted in this sweep; " if reused else ""
    return (
        f"dsbench: skipped {run_name(cfg)}: already {outcome} as run {run.info.run_id} "
        f"({counted}tracking.resume=false trains it again)"
    )
