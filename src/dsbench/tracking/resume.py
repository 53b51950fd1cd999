"""Resume: a job whose config already has a FINISHED run is skipped.

Every run carries a `config_hash` tag (`dsbench.config.config_hash`); the lookup is one
search on that tag, which MLflow indexes.
"""

from __future__ import annotations

from typing import Any

from dsbench.config import TrainConfig, config_hash
from dsbench.tracking.store import deleted_error, ready_store, store_exists


def finished_run(cfg: TrainConfig) -> Any | None:
    """The newest FINISHED run of the experiment with this job's config hash, or None.

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
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.config_hash = '{config_hash(cfg)}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None
