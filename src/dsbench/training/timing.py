"""What a training loop measured: one record type for the Keras loop and the device loop.

No framework import: the suite's loops, the bench and the PyTorch reference loop all use it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from dsbench.config import TrainerConfig
from dsbench.contract import Metric
from dsbench.training.plateau import still_improving


def steady_rate(rates: list[float]) -> float:
    """Median of the per-epoch rates after the first (which holds compilation and warm-up);
    the first itself when it is the only one; NaN for none."""
    if not rates:
        return math.nan
    return float(statistics.median(rates[1:] if len(rates) > 1 else rates))


def steps_per_epoch(train_images: int, trainer: TrainerConfig) -> int:
    """Training steps of one epoch: Keras' `fit` ends with a part batch; the device loop
    drops it (static shapes)."""
    if trainer.loop == "device":
        return train_images // trainer.batch_size
    return -(-train_images // trainer.batch_size)


@dataclass(frozen=True)
class EpochTime:
    """One epoch's clock: all of it, and its training steps alone."""

    epoch_seconds: float  # validation included
    train_seconds: float
    steps: int
    images: int  # trained in those steps

    def metrics(self) -> dict[str, float]:
        return {
            Metric.EPOCH_SECONDS: self.epoch_seconds,
            Metric.TRAIN_SECONDS: self.train_seconds,
            Metric.STEP_SECONDS: self.train_seconds / self.steps,
            Metric.TRAIN_IMAGES_PER_SEC: self.images / self.train_seconds,
        }


@dataclass
class Fitted:
    """What a loop hands back: its clock, the training loss per epoch, how it ended."""

    compile_seconds: float = math.nan
    epochs: list[EpochTime] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # the training loss of each epoch
    val_accuracy: list[float] = field(default_factory=list)  # each epoch's, with validation
    stopped: bool = False  # training stopped early: a NaN loss, or early stopping
    best_epoch: int | None = None  # early stopping: the epoch whose weights were kept (1-based)

    @property
    def diverged(self) -> bool:
        """The loss became NaN or infinite, and training stopped there."""
        return self.stopped and not all(map(math.isfinite, self.losses))

    def metrics(self) -> dict[str, float]:
        """The run's final timing metrics."""
        out = {
            Metric.COMPILE_SECONDS: self.compile_seconds,
            Metric.STEADY_IMAGES_PER_SEC: steady_rate(
                [e.images / e.train_seconds for e in self.epochs]
            ),
            Metric.TOTAL_TRAIN_SECONDS: sum(e.epoch_seconds for e in self.epochs),
            Metric.STOPPED_EPOCH: float(len(self.epochs)),  # the epochs trained
        }
        if self.best_epoch is not None:
            out[Metric.BEST_EPOCH] = float(self.best_epoch)
        improving = still_improving(self.val_accuracy)
        if improving is not None:
            out[Metric.STILL_IMPROVING] = float(improving)
        return out
