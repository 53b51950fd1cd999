"""A study's MLflow runs as pandas frames: the one place analysis reads the tracking store.

Imports neither TensorFlow nor Keras: analysis runs on any machine with the store.
"""

from __future__ import annotations

import pandas as pd

from dsbench.config import RECORD_ONLY_KEYS, RECORD_ONLY_PREFIXES
from dsbench.errors import DsbenchError
from dsbench.tracking.sweep import SWEEP_ROLE

KEYS = ["dataset", "model", "downsample", "head"]  # what a comparison groups by


def _per_run(column: str) -> bool:
    """Params that may differ between the runs of one group without making them different
    experiments: the seed, and what only says where or how a run is recorded."""
    key = column.removeprefix("params.")
    return key == "trainer.seed" or key in RECORD_ONLY_KEYS or key.startswith(RECORD_ONLY_PREFIXES)


def load_runs(uri: str, experiment: str, filter_string: str = "", sweep: str = "") -> pd.DataFrame:
    """Every job run of the experiment (not the sweeps' parent runs), any status.

    An attempt that did not finish but whose config (tag `config_hash`) has a FINISHED run
    in the frame was retried by a resumed sweep: it is left out, not listed as a failure.

    `sweep`: "" every job run; "latest" the jobs of the newest sweep; else a sweep's parent
    run id. The frame gets a `sweep_id` column (its parent run id, or None).
    """
    import mlflow

    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        raise DsbenchError(f"no MLflow experiment {experiment!r} at {uri}")
    parent = resolve_sweep(uri, experiment, sweep)
    clauses = [c for c in (filter_string, parent and f"tags.mlflow.parentRunId = '{parent}'") if c]
    where = " and ".join(clauses)
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string=where)
    if runs.empty or "tags.downsample" not in runs or runs["tags.downsample"].isna().all():
        matching = f" matching {where!r}" if where else ""
        raise DsbenchError(f"experiment {experiment!r} at {uri} has no training runs{matching}")
    runs = runs[runs["tags.downsample"].notna()]
    if "tags.config_hash" in runs:
        done = set(runs.loc[runs["status"] == "FINISHED", "tags.config_hash"].dropna())
        retried = (runs["status"] != "FINISHED") & runs["tags.config_hash"].isin(done)
        runs = runs[~retried]
    parents = runs.get("tags.mlflow.parentRunId", pd.Series(None, index=runs.index))
    return runs.rename(columns={f"tags.{k}": k for k in KEYS} | {"tags.seed": "seed"}).assign(
        sweep_id=parents.where(parents.notna(), None)
    )


def sweeps(uri: str, experiment: str) -> pd.DataFrame:
    """The experiment's sweep parent runs, newest first."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(
        experiment_names=[experiment], filter_string=SWEEP_ROLE, order_by=["start_time DESC"]
    )


def resolve_sweep(uri: str, experiment: str, sweep: str) -> str | None:
    """The parent run id that `sweep` names ("" → None: no sweep filter)."""
    if not sweep:
        return None
    parents = sweeps(uri, experiment)
    if parents.empty:
        raise DsbenchError(f"experiment {experiment!r} has no sweeps; use sweep= (all runs)")
    if sweep == "latest":
        return str(parents.iloc[0]["run_id"])
    if sweep not in set(parents["run_id"]):
        raise DsbenchError(
            f"sweep {sweep!r} is not a sweep run of experiment {experiment!r}; "
            f"use sweep=latest, sweep= (all runs) or one of: {', '.join(parents['run_id'][:5])}"
        )
    return sweep


def histories(uri: str, run_ids: list[str], metric: str) -> pd.DataFrame:
    """One row per (run_id, step) of a per-epoch metric: columns run_id, step, value."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    rows = [
        (run_id, m.step, m.value)
        for run_id in run_ids
        for m in client.get_metric_history(run_id, metric)
    ]
    return pd.DataFrame(rows, columns=["run_id", "step", "value"])


def group_keys(runs: pd.DataFrame) -> list[str]:
    """KEYS plus every param that varies inside a KEYS group (e.g. `params.trainer.lr` in a
    learning-rate grid, `params.trainer.epochs` across two sweeps): those runs are different
    experiments, not seeds of one, and must not be averaged together."""
    params = [c for c in runs.columns if c.startswith("params.") and not _per_run(c)]
    if runs.empty or not params:
        return list(KEYS)
    spread = runs.groupby(KEYS)[params].nunique(dropna=False).max()
    return [*KEYS, *(p for p in params if spread[p] > 1)]


def table_keys(table: pd.DataFrame) -> list[str]:
    """The columns a comparison table was grouped by: KEYS, then any varying `params.*`."""
    return [*KEYS, *(c for c in table.columns if c.startswith("params."))]
