"""A study's MLflow runs as pandas frames: the one place analysis reads the tracking store.

Imports neither TensorFlow nor Keras: analysis runs on any machine with the store.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from dsbench.config import record_only
from dsbench.contract import (
    PARENT_RUN,
    Metric,
    Tag,
    metric_column,
    reused_in,
    tag_column,
    tag_filter,
)
from dsbench.errors import DsbenchError, did_you_mean
from dsbench.tracking.sweep import SWEEP_FILTER

KEYS = [Tag.DATASET, Tag.MODEL, Tag.DOWNSAMPLE, Tag.HEAD]  # what a comparison groups by


def _per_run(column: str) -> bool:
    """Params that may differ between the runs of one group without making them different
    experiments: the seed, and what only says where or how a run is recorded."""
    key = column.removeprefix("params.")
    return key == "trainer.seed" or record_only(key)


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
        raise missing_experiment(uri, experiment)
    parent = resolve_sweep(uri, experiment, sweep)
    runs = search(uri, experiment, parent) if not filter_string else None
    if runs is None:  # a user's filter, or a store that is no SQL database: MLflow's search
        runs = _mlflow_search(experiment, filter_string, parent)
    where = " and ".join(c for c in (filter_string, parent and f"sweep {parent}") if c)
    strategy, config = tag_column(Tag.DOWNSAMPLE), tag_column(Tag.CONFIG_HASH)
    if runs.empty or strategy not in runs or runs[strategy].isna().all():
        matching = f" matching {where!r}" if where else ""
        raise DsbenchError(f"experiment {experiment!r} at {uri} has no training runs{matching}")
    runs = runs[runs[strategy].notna()]
    if config in runs:
        done = set(runs.loc[runs["status"] == "FINISHED", config].dropna())
        retried = (runs["status"] != "FINISHED") & runs[config].isin(done)
        runs = runs[~retried]
    parents = runs.get(tag_column(PARENT_RUN), pd.Series(None, index=runs.index))
    if parent:  # its children, and the runs it reused, which keep their own parent
        parents = pd.Series(parent, index=runs.index)
    renamed = {tag_column(k): k for k in (*KEYS, Tag.SEED)}
    return runs.rename(columns=renamed).assign(sweep_id=parents.where(parents.notna(), None))


def missing_experiment(uri: str, experiment: str) -> DsbenchError:
    """The error for an experiment the store does not have: the closest names, and the ones
    it has."""
    from mlflow import MlflowClient

    found = MlflowClient(tracking_uri=uri).search_experiments()
    names = sorted((e.name for e in found), key=str.lower)
    return DsbenchError(
        f"no MLflow experiment {experiment!r} at {uri}{did_you_mean(experiment, names)}; "
        + (f"it has: {', '.join(names[:10])}" if names else "it has none")
    )


def _mlflow_search(experiment: str, filter_string: str, parent: str | None) -> pd.DataFrame:
    """MLflow's own search: the runs matching the filter, of one sweep where `parent` names
    one (its children, then the runs it reused: a filter string has no "or")."""
    import mlflow

    if not parent:
        return mlflow.search_runs(experiment_names=[experiment], filter_string=filter_string)
    frames = [
        mlflow.search_runs(
            experiment_names=[experiment],
            filter_string=" and ".join(c for c in (filter_string, member) if c),
        )
        for member in (
            f"{tag_column(PARENT_RUN)} = '{parent}'",
            f"{tag_filter(reused_in(parent))} = 'true'",
        )
    ]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def sweeps(uri: str, experiment: str) -> pd.DataFrame:
    """The experiment's sweep parent runs, newest first."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(
        experiment_names=[experiment], filter_string=SWEEP_FILTER, order_by=["start_time DESC"]
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
            "use sweep_run=latest, sweep_run= (all runs) or one of: "
            + ", ".join(parents["run_id"][:5])
        )
    return sweep


HISTORY_CHUNK = 100  # runs per bulk request: the tracking server's own limit
SQL_CHUNK = 500  # runs per query on a SQL store (well below sqlite's bound-variable limit)
SERVER_MAX_RESULTS = 25_000  # values per bulk request, the server's maximum
Rows = list[tuple[str, int, float]]  # run_id, step, value


def _sql_store(uri: str) -> Any | None:
    """The store at `uri` when it is a SQL database MLflow reads itself (sqlite, PostgreSQL,
    MySQL), else None (a tracking server, a file store)."""
    from mlflow import MlflowClient
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = MlflowClient(tracking_uri=uri)._tracking_client.store
    return store if isinstance(store, SqlAlchemyStore) else None


def search(uri: str, experiment: str, parent: str | None = None) -> pd.DataFrame | None:
    """The frame `mlflow.search_runs` gives for the experiment's active runs (or those of
    one parent run), read from a SQL store in five queries; None for other stores.

    MLflow's search builds an ORM object for every run, param, tag and metric (about 50 s
    for 10,000 runs of the suite's shape here); this reads the same tables, through MLflow's
    own table models, as plain rows (results/bench/analysis-scale.md). A test holds the two
    frames equal.
    """
    store = _sql_store(uri)
    if store is None:
        return None
    from mlflow import MlflowClient
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlParam, SqlRun, SqlTag
    from sqlalchemy import and_, or_, select

    found = MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment)
    ids = select(SqlRun.run_uuid).where(
        SqlRun.experiment_id == int(found.experiment_id), SqlRun.lifecycle_stage == "active"
    )
    if parent:  # the sweep's children and the runs it reused
        child = and_(SqlTag.key == PARENT_RUN, SqlTag.value == parent)
        members = select(SqlTag.run_uuid).where(or_(child, SqlTag.key == reused_in(parent)))
        ids = ids.where(SqlRun.run_uuid.in_(members))
    columns = (SqlRun.experiment_id, SqlRun.status, SqlRun.artifact_uri, SqlRun.start_time)
    with store.ManagedSessionMaker() as session:
        connection = session.connection()
        runs = pd.read_sql(
            select(SqlRun.run_uuid.label("run_id"), *columns, SqlRun.end_time).where(
                SqlRun.run_uuid.in_(ids)
            ),
            connection,
        )
        wide = [runs.set_index("run_id")]
        for prefix, model in (("metrics", SqlLatestMetric), ("params", SqlParam), ("tags", SqlTag)):
            fields = [model.run_uuid, model.key, model.value]
            if model is SqlLatestMetric:
                fields.append(model.is_nan)
            long = pd.read_sql(select(*fields).where(model.run_uuid.in_(ids)), connection)
            if model is SqlLatestMetric:  # MLflow stores NaN as 0 with is_nan set
                long.loc[long["is_nan"].astype(bool), "value"] = float("nan")
            table = long.pivot(index="run_uuid", columns="key", values="value")
            table.columns = [f"{prefix}.{key}" for key in table.columns]
            wide.append(table)
    frame = pd.concat(wide, axis=1).rename_axis("run_id").reset_index()
    frame["experiment_id"] = frame["experiment_id"].astype(str)
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame.sort_values("start_time", ascending=False, kind="stable").reset_index(drop=True)


def histories(uri: str, run_ids: list[str], metric: str) -> pd.DataFrame:
    """One row per (run_id, step) of a per-epoch metric: columns run_id, step, value.

    Read in bulk, whatever the store: a SQL store (sqlite, PostgreSQL) in one query per
    SQL_CHUNK runs; a tracking server through its bulk-history endpoint, which the MLflow
    UI's charts read (`get-history-bulk`, HISTORY_CHUNK runs a request: one query on the
    server; its sampling sibling `get-history-bulk-interval` takes a query per run); any other
    store with one `get_metric_history` per run. results/bench/analysis-scale.md measures
    them against one call per run; a test holds them equal to it.
    """
    from mlflow import MlflowClient
    from mlflow.store.tracking.rest_store import RestStore

    store = _sql_store(uri)
    if store is not None:
        read, chunk = _sql_history, SQL_CHUNK
    else:
        store = MlflowClient(tracking_uri=uri)._tracking_client.store
        is_server = isinstance(store, RestStore)
        read, chunk = (_server_history, HISTORY_CHUNK) if is_server else (_one_call_per_run, 1)
    rows: Rows = []
    for start in range(0, len(run_ids), chunk):
        rows += read(store, run_ids[start : start + chunk], metric)
    return pd.DataFrame(rows, columns=["run_id", "step", "value"])


def _sql_history(store: Any, run_ids: list[str], metric: str) -> Rows:
    from mlflow.store.tracking.dbmodels.models import SqlMetric
    from sqlalchemy import select

    query = select(SqlMetric.run_uuid, SqlMetric.step, SqlMetric.value, SqlMetric.is_nan).where(
        SqlMetric.key == metric, SqlMetric.run_uuid.in_(run_ids)
    )
    with store.ManagedSessionMaker() as session:
        found = session.execute(query).all()
    return [(r, int(step), float("nan") if nan else v) for r, step, v, nan in found]


def _server_history(store: Any, run_ids: list[str], metric: str) -> Rows:
    from mlflow.utils.rest_utils import http_request

    response = http_request(
        store.get_host_creds(),
        "/ajax-api/2.0/mlflow/metrics/get-history-bulk",
        "GET",
        params={"run_id": run_ids, "metric_key": metric, "max_results": SERVER_MAX_RESULTS},
    )
    response.raise_for_status()
    metrics = response.json().get("metrics", [])
    if len(metrics) >= SERVER_MAX_RESULTS:  # the server cut the answer: ask for fewer runs
        half = len(run_ids) // 2
        if not half:
            raise RuntimeError(f"run {run_ids[0]} logged over {SERVER_MAX_RESULTS} {metric}")
        return _server_history(store, run_ids[:half], metric) + _server_history(
            store, run_ids[half:], metric
        )
    return [(m["run_id"], int(m.get("step", 0)), float(m["value"])) for m in metrics]


def _one_call_per_run(store: Any, run_ids: list[str], metric: str) -> Rows:
    return [(r, m.step, m.value) for r in run_ids for m in store.get_metric_history(r, metric)]


def fill_still_improving(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Runs logged before `still_improving` existed get it from their per-epoch
    val_accuracy (`history`: run_id, step, value), by the same rule (training.plateau)."""
    from dsbench.training.plateau import still_improving

    column = metric_column(Metric.STILL_IMPROVING)
    known = runs[column] if column in runs else pd.Series(float("nan"), index=runs.index)
    curves = {r: g.sort_values("step")["value"].tolist() for r, g in history.groupby("run_id")}
    filled = [
        value if not pd.isna(value) else _as_float(still_improving(curves.get(run_id, [])))
        for run_id, value in zip(runs["run_id"], known, strict=True)
    ]
    return runs.assign(**{column: filled})


def _as_float(verdict: bool | None) -> float:
    return float("nan") if verdict is None else float(verdict)


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
