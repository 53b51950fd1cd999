"""Keras training: optimizer and schedule from the trainer config, `fit`, and timings.

Imported only after the Keras backend is chosen (KERAS_BACKEND is read at Keras' import):
`dsbench.training.backend.select_backend`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from dsbench.config import TrainerConfig
from dsbench.contract import Metric
from dsbench.data.splits import Splits
from dsbench.errors import DsbenchError
from dsbench.training.backend import device, has_gpu
from dsbench.training.timing import EpochTime, Fitted, steps_per_epoch


def configure(trainer: TrainerConfig) -> None:
    """Seeds and precision; call before building the model."""
    if trainer.precision == "mixed_float16" and not (
        keras.backend.backend() == "jax" and has_gpu()
    ):
        raise DsbenchError(
            f"trainer.precision=mixed_float16 needs a GPU; this machine has {device()}: "
            "use float32 or mixed_bfloat16"
        )
    keras.utils.set_random_seed(trainer.seed)
    keras.mixed_precision.set_dtype_policy(trainer.precision)


def learning_rate(trainer: TrainerConfig, steps_per_epoch: int) -> Any:
    if trainer.schedule == "constant" or (trainer.schedule == "step" and not trainer.milestones):
        return trainer.lr
    if trainer.schedule == "cosine":
        if not trainer.warmup_epochs:
            return keras.optimizers.schedules.CosineDecay(
                trainer.lr, trainer.epochs * steps_per_epoch
            )
        warmup = trainer.warmup_epochs * steps_per_epoch
        return keras.optimizers.schedules.CosineDecay(  # one-cycle: 0 → lr → 0
            0.0,
            (trainer.epochs - trainer.warmup_epochs) * steps_per_epoch,
            warmup_target=trainer.lr,
            warmup_steps=warmup,
        )
    boundaries = [m * steps_per_epoch for m in sorted(trainer.milestones)]
    values = [trainer.lr * trainer.gamma**i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def optimizer(trainer: TrainerConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    lr = learning_rate(trainer, steps_per_epoch)
    wd = trainer.weight_decay or None
    if trainer.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=trainer.momentum, weight_decay=wd)
    if trainer.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=trainer.weight_decay)
    return keras.optimizers.Adam(lr, weight_decay=wd)


def compile_model(model: keras.Model, trainer: TrainerConfig, steps_per_epoch: int) -> None:
    model.compile(
        optimizer=optimizer(trainer, steps_per_epoch),
        loss="sparse_categorical_crossentropy",
        metrics=[Metric.ACCURACY],
        steps_per_execution=trainer.steps_per_execution,
    )


class Clock(keras.callbacks.Callback):
    """Per-epoch wall times, training apart from validation, and the compile time.

    compile_seconds = time to the end of the first step − one steady step, where a steady
    step is the rest of the first epoch's training time divided by its remaining steps.
    """

    def __init__(self, fitted: Fitted, train_images: int, steps_per_epoch: int) -> None:
        super().__init__()
        self.fitted = fitted
        self.train_images = train_images
        self.steps = steps_per_epoch

    def on_train_begin(self, logs: Any = None) -> None:
        self._t_train = time.perf_counter()
        self._first_step_end: float | None = None

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._t_epoch = time.perf_counter()
        self._t_val: float | None = None

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self._first_step_end is None:
            self._first_step_end = time.perf_counter()

    def on_test_begin(self, logs: Any = None) -> None:
        self._t_val = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        now = time.perf_counter()
        train_s = (self._t_val or now) - self._t_epoch
        if epoch == 0 and self._first_step_end is not None:
            first = self._first_step_end - self._t_train
            steady = (train_s - (self._first_step_end - self._t_epoch)) / max(self.steps - 1, 1)
            self.fitted.compile_seconds = max(first - steady, 0.0)
        record = EpochTime(now - self._t_epoch, train_s, self.steps, self.train_images)
        self.fitted.epochs.append(record)
        self.fitted.losses.append(float((logs or {}).get(Metric.LOSS, math.nan)))
        self.fitted.val_accuracy.append(float((logs or {}).get(Metric.VAL_ACCURACY, math.nan)))


class EpochLogger(keras.callbacks.Callback):
    """Hands each epoch's metrics, timings and learning rate to `log` in one call."""

    def __init__(self, fitted: Fitted, log: Callable[[dict[str, float], int], None]) -> None:
        super().__init__()
        self.fitted = fitted
        self.log = log

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        metrics = {k: float(v) for k, v in (logs or {}).items()}
        timing = self.fitted.epochs[-1].metrics()
        self.log({**metrics, **timing, Metric.LR: lr}, epoch + 1)  # step = epoch, 1-based


def fit(
    model: keras.Model,
    splits: Splits,
    trainer: TrainerConfig,
    log: Callable[[dict[str, float], int], None],
) -> Fitted:
    """Train; `log(metrics, epoch)` gets every epoch's numbers.

    With trainer.early_stopping_patience, Keras' EarlyStopping watches val_loss, stops after
    that many epochs without an improvement of min_delta, and restores the best epoch's
    weights, whether it stopped or reached trainer.epochs; `best_epoch` says which
    (1-based).
    """
    fitted = Fitted()
    n = len(splits.x_train)
    clock = Clock(fitted, n, steps_per_epoch(n, trainer))
    callbacks = [clock, keras.callbacks.TerminateOnNaN(), EpochLogger(fitted, log)]
    stopping = None
    if trainer.early_stopping_patience:
        stopping = keras.callbacks.EarlyStopping(
            monitor=Metric.VAL_LOSS,
            patience=trainer.early_stopping_patience,
            min_delta=trainer.early_stopping_min_delta,
            restore_best_weights=True,
        )
        callbacks.append(stopping)
    has_val = len(splits.x_val) > 0
    model.fit(
        splits.x_train,
        splits.y_train,
        batch_size=trainer.batch_size,
        epochs=trainer.epochs,
        validation_data=(splits.x_val, splits.y_val) if has_val else None,
        callbacks=callbacks,
        verbose=trainer.verbose,
    )
    fitted.stopped = bool(model.stop_training)
    if stopping is not None:
        fitted.best_epoch = stopping.best_epoch + 1
    return fitted


def evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, float]:
    out = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    return {k: float(v) for k, v in out.items()}


def predictor(model: keras.Model, batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """Images → class probabilities, in inference mode (no dropout, no augmentation)."""
    return lambda x: model.predict(x, batch_size=batch_size, verbose=0)


def peak_memory_bytes() -> float | None:
    """Peak memory of the first device since the process started, where the backend reports
    it (JAX on a GPU or TPU); None elsewhere."""
    if keras.backend.backend() != "jax":
        return None
    import jax

    stats = jax.local_devices()[0].memory_stats()
    return float(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None
