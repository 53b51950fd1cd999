"""End-of-run evaluation on the test set: accuracy, robustness to small shifts, speed.

- `test_accuracy_shift{k}`: accuracy when every test image is shifted by k pixels in one of
  the four axis directions (chosen per image, seeded). Pixels shifted in are 0 (black for
  uint8 images; the mean for GCN/ZCA data).
- `shift_consistency`: Zhang 2019's protocol ("Making Convolutional Networks Shift-Invariant
  Again") adapted to small images, which have no larger image to crop from: the share of
  test images whose top-1 class is the same for two independent random shifts (dy, dx)
  drawn uniformly from [−k, k]², zero-filled as above. Seeded, so it is repeatable.
- `circular_shift_consistency`: the APS protocol (Chaman & Dokmanić 2021): the share whose
  top-1 class is the same for the image and for its circular roll by a random (dy, dx) in
  [−k, k]², so no pixel is lost or invented at the border. With circular conv padding and
  APS downsampling it is exactly 1.
- `inference_images_per_sec`: prediction throughput on the unshifted test set, timed after
  a warm-up batch (the first prediction traces and compiles the model, which is not speed).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from dsbench.config import EvaluationConfig
from dsbench.contract import Metric, shifted_accuracy

Predict = Callable[[np.ndarray], np.ndarray]  # images → class probabilities


def shift(images: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Shift image i by (dy[i], dx[i]) pixels (down, right positive), filling with 0."""
    n, h, w = images.shape[:3]
    out = np.zeros_like(images)
    for i in range(n):
        y, x = int(dy[i]), int(dx[i])
        src = images[i, max(-y, 0) : h - max(y, 0), max(-x, 0) : w - max(x, 0)]
        out[i, max(y, 0) : max(y, 0) + src.shape[0], max(x, 0) : max(x, 0) + src.shape[1]] = src
    return out


def roll(images: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Roll image i circularly by (dy[i], dx[i]) pixels (down, right positive)."""
    return np.stack(
        [
            np.roll(im, (int(y), int(x)), axis=(0, 1))
            for im, y, x in zip(images, dy, dx, strict=True)
        ]
    )


def axis_shifts(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """k pixels up, down, left or right, one direction per image."""
    directions = np.array([(k, 0), (-k, 0), (0, k), (0, -k)])
    d = directions[rng.integers(0, 4, size=n)]
    return d[:, 0], d[:, 1]


def evaluate_shifts(
    predict: Predict, x: np.ndarray, y: np.ndarray, cfg: EvaluationConfig, warmup: int = 1
) -> dict[str, float]:
    """Every metric of the module docstring; `warmup` images are predicted once, untimed,
    before the clock starts (the batch size: one batch compiles what the rest reuses)."""
    rng = np.random.default_rng(cfg.seed)
    predict(x[: max(warmup, 1)])
    t0 = time.perf_counter()
    clean = predict(x).argmax(-1)
    seconds = time.perf_counter() - t0
    metrics = {Metric.INFERENCE_IMAGES_PER_SEC: len(x) / seconds}
    for k in cfg.shifts:
        pred = predict(shift(x, *axis_shifts(len(x), k, rng))).argmax(-1)
        metrics[shifted_accuracy(k)] = float(np.mean(pred == y))
    if cfg.consistency_shift > 0:
        k = cfg.consistency_shift
        a = predict(shift(x, *rng.integers(-k, k + 1, size=(2, len(x))))).argmax(-1)
        b = predict(shift(x, *rng.integers(-k, k + 1, size=(2, len(x))))).argmax(-1)
        metrics[Metric.SHIFT_CONSISTENCY] = float(np.mean(a == b))
        rolled = predict(roll(x, *rng.integers(-k, k + 1, size=(2, len(x))))).argmax(-1)
        metrics[Metric.CIRCULAR_SHIFT_CONSISTENCY] = float(np.mean(rolled == clean))
    metrics[shifted_accuracy(0)] = float(np.mean(clean == y))
    return metrics
