"""The bulk reads of the analysis lose nothing: on a generated store of a few hundred runs
(sqlite, and the same file behind a real `mlflow ui`), the tables and the learning curves
equal what reading each run on its own gives."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from devtools.analysis_scale import EXPERIMENT, fill
from devtools.mlflow_ui import mlflow_ui
from dsbench.analysis.load import histories, load_runs, search
from dsbench.analysis.tables import comparison
from dsbench.contract import PARENT_RUN, SWEEP_ROLE, Metric, Tag, tag_column
from dsbench.model.downsample import STRATEGIES

pytestmark = pytest.mark.slow  # fills a store of a few hundred runs

GROUPS = len(STRATEGIES) * 2  # strategy × head, as the generator fills them
RUNS, EPOCHS = 240, 6  # 15 strategies × 2 heads × 8 seeds; 240 > 2 bulk chunks of 100


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('scale') / 'mlflow.db'}"
    fill(uri, RUNS, EPOCHS, workers=1)
    fill(uri, RUNS, EPOCHS, workers=1)  # filled already: a second call adds nothing
    return uri


def run_by_run(uri: str, run_ids: list[str], metric: str) -> pd.DataFrame:
    client = MlflowClient(tracking_uri=uri)
    rows = [(r, m.step, m.value) for r in run_ids for m in client.get_metric_history(r, metric)]
    return pd.DataFrame(rows, columns=["run_id", "step", "value"])


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["run_id", "step"]).reset_index(drop=True)


def test_the_store_is_shaped_like_the_suites(store: str) -> None:
    runs = load_runs(store, EXPERIMENT)
    assert len(runs) == RUNS and set(runs["status"]) == {"FINISHED"}
    assert runs["sweep_id"].nunique() == 1  # one sweep parent, left out of the frame
    assert runs.groupby(["downsample", "head"]).size().eq(RUNS // GROUPS).all()


@pytest.mark.parametrize("metric", [Metric.VAL_ACCURACY, Metric.LOSS])
def test_bulk_history_equals_one_call_per_run(store: str, metric: str) -> None:
    ids = list(load_runs(store, EXPERIMENT)["run_id"])
    bulk = histories(store, ids, metric)
    assert len(bulk) == RUNS * EPOCHS
    pd.testing.assert_frame_equal(ordered(bulk), ordered(run_by_run(store, ids, metric)))


def test_bulk_history_through_a_tracking_server(store: str, tmp_path: Path) -> None:
    ids = list(load_runs(store, EXPERIMENT)["run_id"])
    with mlflow_ui(store, tmp_path / "server.log") as base:
        over_http = histories(base, ids, Metric.VAL_ACCURACY)
        table = comparison(load_runs(base, EXPERIMENT))
    pd.testing.assert_frame_equal(
        ordered(over_http), ordered(run_by_run(store, ids, Metric.VAL_ACCURACY))
    )
    pd.testing.assert_frame_equal(table, comparison(load_runs(store, EXPERIMENT)))


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns the analysis reads, in one order, missing values as None."""
    keep = ["run_id", "status", "experiment_id"]
    keep += sorted(c for c in frame.columns if c.split(".")[0] in ("metrics", "params", "tags"))
    out = frame[keep].sort_values("run_id").reset_index(drop=True)
    return out.astype(object).where(out.notna(), None)


def test_sql_search_is_mlflows_search(store: str) -> None:
    mlflow.set_tracking_uri(store)
    ours = search(store, EXPERIMENT)
    theirs = mlflow.search_runs(experiment_names=[EXPERIMENT])
    assert len(ours) == len(theirs) == RUNS + 1  # and the sweep parent
    assert list(ours["run_id"]) == list(theirs["run_id"])  # newest first, as MLflow orders
    pd.testing.assert_frame_equal(comparable(ours), comparable(theirs))
    parent = theirs.loc[theirs[tag_column(Tag.ROLE)] == SWEEP_ROLE, "run_id"].item()
    children = mlflow.search_runs(
        experiment_names=[EXPERIMENT], filter_string=f"{tag_column(PARENT_RUN)} = '{parent}'"
    )
    pd.testing.assert_frame_equal(
        comparable(search(store, EXPERIMENT, parent)), comparable(children)
    )


def test_table_equals_the_runs_read_one_by_one(store: str) -> None:
    table = comparison(load_runs(store, EXPERIMENT)).set_index(["downsample", "head"])
    client = MlflowClient(tracking_uri=store)
    mlflow.set_tracking_uri(store)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    by_group: dict[tuple[str, str], list[float]] = {}
    for run in client.search_runs(
        [experiment], f"{tag_column(Tag.DOWNSAMPLE)} != ''", max_results=1000
    ):
        full = client.get_run(run.info.run_id)  # this run alone
        key = (full.data.tags[Tag.DOWNSAMPLE], full.data.tags[Tag.HEAD])
        by_group.setdefault(key, []).append(full.data.metrics[Metric.TEST_ERROR])
    assert len(by_group) == len(table) == GROUPS
    for key, errors in by_group.items():
        assert table.loc[key, "seeds"] == len(errors)
        assert table.loc[key, "test_error_mean"] == pytest.approx(np.mean(errors))
        assert table.loc[key, "test_error_std"] == pytest.approx(np.std(errors, ddof=1))


def test_the_runs_carry_their_splits_and_the_bench_analyzes_them(
    store: str, tmp_path: Path
) -> None:
    """Like a real run: three dataset inputs (training, validation, test). And the bench's
    own measurement, `dsbench analyze` in a fresh process, succeeds on the store."""
    from devtools.analysis_scale import analyze_once

    run_id = load_runs(store, EXPERIMENT)["run_id"].iloc[0]
    inputs = MlflowClient(tracking_uri=store).get_run(run_id).inputs.dataset_inputs
    contexts = sorted(t.value for i in inputs for t in i.tags if t.key == "mlflow.data.context")
    assert contexts == ["test", "training", "validation"]
    seconds, rss = analyze_once(store, tmp_path / "out")
    assert seconds > 0 and rss > 0
    assert (tmp_path / "out" / "comparison.md").is_file()


def test_an_interrupted_fill_is_set_aside_and_filled_again(tmp_path: Path) -> None:
    """A store whose fill stopped midway (its experiment without the filled tag) is filled
    anew, not reused or failed on."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    stopped = client.create_experiment(EXPERIMENT)
    client.create_run(stopped)  # one run, then the fill stopped
    fill(uri, GROUPS, 2, workers=1)
    assert len(load_runs(uri, EXPERIMENT)) == GROUPS
    # Stopped while setting it aside (deleted, not yet renamed): filled again too.
    client.delete_experiment(client.get_experiment_by_name(EXPERIMENT).experiment_id)
    fill(uri, GROUPS, 2, workers=1)
    assert len(load_runs(uri, EXPERIMENT)) == GROUPS
