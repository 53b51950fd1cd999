"""The MLflow store: pointed at, checked before training is spent, and its experiment.

Kept free of Keras (as all of dsbench.tracking) so that Hydra can load the sweep callback
before the Keras backend is chosen.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from dsbench.config import TrackingConfig
from dsbench.errors import DsbenchError


def open_experiment(tracking: TrackingConfig) -> str:
    """Point MLflow at the store and return the experiment id (created if new)."""
    import mlflow

    check_writable(tracking.uri)
    mlflow.set_tracking_uri(tracking.uri)
    try:
        experiment_id = mlflow.set_experiment(tracking.experiment).experiment_id
        if tracking.description:  # the note the MLflow UI shows above the runs
            mlflow.set_experiment_tag("mlflow.note.content", tracking.description.strip())
        return experiment_id
    except mlflow.exceptions.MlflowException as e:
        raise DsbenchError(
            f"cannot use MLflow experiment {tracking.experiment!r} at {tracking.uri}: "
            f"{e.message.splitlines()[0]}"
        ) from None


def deleted_error(tracking: TrackingConfig, experiment_id: str) -> DsbenchError:
    return DsbenchError(
        f"MLflow experiment {tracking.experiment!r} at {tracking.uri} was deleted; restore it "
        f"(mlflow experiments restore --experiment-id {experiment_id}) or choose another "
        "tracking.experiment"
    )


def local_store(uri: str) -> Path | None:
    """The sqlite file or the store folder of a local store; None for a server or database."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        return Path(uri.removeprefix("sqlite:///"))
    if parsed.scheme in ("", "file"):
        return Path(parsed.path)
    return None


def store_exists(uri: str) -> bool:
    """A server or database is taken to exist; a local store exists once its file or folder
    does (so a lookup that finds none creates none)."""
    path = local_store(uri)
    if path is None:
        return True
    return path.is_file() if uri.startswith("sqlite:") else path.is_dir()


def check_writable(uri: str) -> None:
    """Refuse a local store we could not write, before any training is spent."""
    path = local_store(uri)  # a file store's folder: MLflow creates it in an existing parent
    if path is None:
        return  # a server or database: MLflow reports its own errors
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise DsbenchError(
            f"tracking.uri {uri}: folder {folder} does not exist or is not writable; "
            "use an existing writable folder, e.g. tracking.uri=sqlite:///mlflow.db"
        )
