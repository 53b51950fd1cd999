"""The MLflow UI's runs table set up to answer the question: a shared view of the experiment.

MLflow's UI keeps a view it shares (its "Share" button) as an experiment tag
`mlflow.sharedViewState.<key>` holding the view's state as JSON, and opens it from the URL
parameter `viewStateShareKey=<key>`. `dsbench ui` writes one such view: runs grouped by
strategy and head, the columns that answer the question, best test error first. The keys
below are the UI's own (MLflow 3.17; tests/test_ui.py checks them in a real Chromium).
"""

from __future__ import annotations

import json
from urllib.parse import quote

from dsbench.contract import Metric, Tag

VIEW_KEY = "dsbench"
SHARED_VIEW_TAG = "mlflow.sharedViewState."  # + key: MLflow UI's shared view of an experiment
ML_VIEW = "workflowType=machine_learning"  # MLflow 3 opens GenAI views unless told otherwise

# The runs table's columns: where the data and model are, what the run compared, its result.
COLUMNS = [
    ("attributes", "Dataset"),
    ("attributes", "Models"),
    ("tags", Tag.DOWNSAMPLE),
    ("tags", Tag.HEAD),
    ("tags", Tag.SEED),
    ("metrics", Metric.TEST_ERROR),
    ("metrics", Metric.SHIFT_CONSISTENCY),
    ("metrics", Metric.CIRCULAR_SHIFT_CONSISTENCY),
    ("metrics", Metric.PARAMS_TRAINABLE),
    ("metrics", Metric.FLOPS_PER_IMAGE),
]
GROUP_BY = (Tag.DOWNSAMPLE, Tag.HEAD)
JOB_RUNS = f"tags.{Tag.DOWNSAMPLE} LIKE '%'"  # a sweep's parent run has no strategy


def column_key(kind: str, name: str) -> str:
    """The UI's canonical column key, e.g. metrics.`test_error`."""
    return f"{kind}.`{name}`"


def view_state() -> dict:
    """The shared view: runs grouped by strategy and head (mean of each group), the
    question's columns, lowest test error first, every run shown."""
    columns = [column_key(kind, name) for kind, name in COLUMNS]
    return {
        "selectedColumns": columns,
        "columnOrder": columns,
        "groupBy": {
            "aggregateFunction": "average",
            "groupByKeys": [{"mode": "tag", "groupByData": tag} for tag in GROUP_BY],
        },
        "orderByKey": column_key("metrics", Metric.TEST_ERROR),
        "orderByAsc": True,
        "runsHiddenMode": "SHOW_ALL",
        "searchFilter": JOB_RUNS,
    }


def set_view(uri: str, experiment_id: str) -> str:
    """Write the view into the experiment (replacing an older one); returns its key."""
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri).set_experiment_tag(
        experiment_id, SHARED_VIEW_TAG + VIEW_KEY, json.dumps(view_state())
    )
    return VIEW_KEY


def view_url(base: str, experiment_id: str, key: str = VIEW_KEY) -> str:
    """The URL of the experiment's runs in that view, on a UI at `base`."""
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={quote(key)}&{ML_VIEW}"
