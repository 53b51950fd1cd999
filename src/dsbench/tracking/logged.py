"""What a run logs besides its metrics: its data as MLflow inputs, its trained model.

Imported by `dsbench.tracking.recorder` when a run logs them (it imports MLflow). MLflow's
Keras flavour imports Keras and TensorFlow: only the model functions import it, so logging
inputs (and a tool that only generates runs) stays light.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.meta_dataset import MetaDataset

from dsbench.data.splits import SplitRecord

MODEL_NAME = "model"  # the logged model's name in its run


class SplitDataset(MetaDataset):
    """MLflow's metadata-only dataset (the data stays in its archives), with the split's
    description as its profile: the UI shows it beside the digest."""

    def __init__(self, source: Any, name: str, digest: str, profile: dict[str, Any]) -> None:
        self._profile = profile
        super().__init__(source, name=name, digest=digest)

    @property
    def profile(self) -> dict[str, Any]:
        return self._profile

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self._profile)}


def split_dataset(record: SplitRecord, source: str | None) -> SplitDataset:
    """One split as an MLflow dataset; `source` is the URL its archives come from (None:
    generated data)."""
    where = HTTPDatasetSource(source) if source else CodeDatasetSource({"generator": "dsbench"})
    return SplitDataset(where, record.description["dataset"], record.digest, record.description)


def requirements() -> list[str]:
    """What the logged model needs, pinned (MLflow would otherwise infer them by loading the
    model in a subprocess): Keras, its backend, numpy. Loading it also needs dsbench's
    layers registered: `load_model`."""
    found = []
    for package in ("keras", "tensorflow", "jax", "numpy"):
        try:
            found.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return found


def log_keras_model(model: Any, example: Any) -> str:
    """Log `model` to the active run (Keras flavour, `.keras` file) with the input signature
    of `example` (a few images as the model takes them); returns its model id."""
    import mlflow.keras
    from mlflow.models import infer_signature

    signature = infer_signature(example, model.predict(example, verbose=0))
    info = mlflow.keras.log_model(
        model, name=MODEL_NAME, signature=signature, pip_requirements=requirements()
    )
    return info.model_id


def load_model(model_uri: str) -> Any:
    """A logged model back as a Keras model (`models:/<model_id>` or
    `runs:/<run_id>/model`), with dsbench's own layers known to Keras."""
    import mlflow.keras

    import dsbench.frameworks.keras_layers  # noqa: F401 (registers the layers with Keras)

    return mlflow.keras.load_model(model_uri)
