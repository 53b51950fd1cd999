"""Early stopping: a run stops when val_loss stops improving, logs where, and is evaluated
with the best epoch's weights, not the last one's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import dsbench, train

from dsbench.config import (
    DatasetConfig,
    DownsampleConfig,
    HeadConfig,
    TrainerConfig,
    model_config,
)
from dsbench.contract import Metric
from dsbench.data.splits import load_splits

pytestmark = pytest.mark.slow  # trains tiny models

# min_delta 10: after the first epoch no val_loss counts as an improvement, so with patience
# 2 a run stops after its third epoch, and the first epoch's weights are the best.
STOPPING = ("trainer.early_stopping_patience=2", "trainer.early_stopping_min_delta=10")


def test_best_weights_are_restored(shared_data: Path) -> None:
    import keras

    from dsbench.frameworks.keras_model import build_keras
    from dsbench.model.plan import plan_model
    from dsbench.training import fit

    mnist = str(shared_data / "mnist")
    splits = load_splits(
        DatasetConfig(
            "mnist", "archive", mnist, val_fraction=0.05, train_subset=512, test_subset=256
        )
    )
    trainer = TrainerConfig(
        epochs=6, batch_size=64, lr=0.01, early_stopping_patience=2, early_stopping_min_delta=10
    )
    fit.configure(trainer)
    model = build_keras(
        plan_model(model_config("convnet"), DownsampleConfig(), HeadConfig(), 10), (28, 28, 1)
    )
    fit.compile_model(model, trainer, 8)
    logged: list[tuple[int, dict[str, float]]] = []
    fitted = fit.fit(model, splits, trainer, lambda m, epoch: logged.append((epoch, m)))
    val_losses = [m[Metric.VAL_LOSS] for _, m in logged]
    assert len(val_losses) == 3 and [e for e, _ in logged] == [1, 2, 3]  # stopped after 3
    assert fitted.best_epoch == 1 and fitted.stopped and not fitted.diverged
    assert fitted.val_accuracy == [m[Metric.VAL_ACCURACY] for _, m in logged]
    now = model.evaluate(splits.x_val, splits.y_val, verbose=0, return_dict=True)["loss"]
    assert now == pytest.approx(val_losses[0], rel=1e-4)  # epoch 1's weights, restored
    assert not np.isclose(val_losses[0], val_losses[-1])  # and they are not the last ones
    assert keras.backend.backend() == "tensorflow"


def test_run_logs_where_it_stopped(shared_data: Path, tmp_path: Path) -> None:
    (run,) = train(tmp_path, "trainer.epochs=6", *STOPPING, data=shared_data / "mnist").runs
    assert run.data.metrics[Metric.STOPPED_EPOCH] == 3 and run.data.metrics[Metric.BEST_EPOCH] == 1
    # Early stopping ended it, but 3 epochs cannot show a plateau (training.plateau).
    assert run.data.metrics[Metric.STILL_IMPROVING] == 1.0
    assert run.data.params["trainer.early_stopping_patience"] == "2"


def test_early_stopping_needs_a_validation_set(tmp_path: Path) -> None:
    out = dsbench(
        "train", "dataset.val_fraction=0", "trainer.early_stopping_patience=3", cwd=tmp_path
    )
    assert out.returncode == 2
    assert "needs a validation set" in out.stderr.strip().splitlines()[-1]
