"""Resume: a job whose config already has a FINISHED run, or a run that diverged, is skipped.

Every run carries a `config_hash` tag (`dsbench.config.config_hash`); the lookup searches
on that tag, which MLflow indexes. A diverged run (loss NaN or infinite, `errors.Diverged`)
is the config's outcome, so training it again would only repeat it; any other failure is
trained again.
"""

from __future__ import annotations

from typing import Any

from dsbench.config import TrainConfig, config_hash
from dsbench.contract import Tag, tag_column
from dsbench.errors import DIVERGED
from dsbench.tracking.recorder import run_name
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


def skipped(cfg: TrainConfig, run: Any) -> str:
    """The line a job that resume skips prints."""
    outcome = "FINISHED" if run.info.status == "FINISHED" else "diverged"
    return (
        f"dsbench: skipped {run_name(cfg)}: already {outcome} as run {run.info.run_id} "
        "(tracking.resume=false trains it again)"
    )
