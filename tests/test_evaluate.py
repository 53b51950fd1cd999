"""Shift robustness: the shifts are exact, and the metrics tell invariant from position-bound."""

from __future__ import annotations

import numpy as np

from dsbench.config import EvaluationConfig
from dsbench.contract import Metric, shifted_accuracy
from dsbench.training.evaluate import axis_shifts, evaluate_shifts, roll, shift


def test_shift_moves_pixels_and_fills_zero() -> None:
    img = np.arange(1, 17, dtype=np.uint8).reshape(1, 4, 4, 1)
    down_right = shift(img, np.array([1]), np.array([2]))[0, :, :, 0]
    assert down_right.tolist() == [[0, 0, 0, 0], [0, 0, 1, 2], [0, 0, 5, 6], [0, 0, 9, 10]]
    up_left = shift(img, np.array([-1]), np.array([-1]))[0, :, :, 0]
    assert up_left.tolist() == [[6, 7, 8, 0], [10, 11, 12, 0], [14, 15, 16, 0], [0, 0, 0, 0]]
    assert (shift(img, np.array([0]), np.array([0])) == img).all()


def test_axis_shifts_are_k_pixels_along_one_axis() -> None:
    dy, dx = axis_shifts(1000, 3, np.random.default_rng(0))
    assert set(zip(dy.tolist(), dx.tolist(), strict=True)) == {(3, 0), (-3, 0), (0, 3), (0, -3)}


def _blobs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A 2×2 square at (5, 5) of each 12×12 image (inside after any ±4 px shift); class =
    its brightness."""
    x = np.zeros((n, 12, 12, 1), dtype=np.uint8)
    y = rng.integers(0, 2, size=n)
    for i in range(n):
        x[i, 5:7, 5:7] = 100 + 100 * y[i]
    return x, y


def test_an_invariant_predictor_is_fully_consistent() -> None:
    x, y = _blobs(200, np.random.default_rng(1))

    def by_brightness(images: np.ndarray) -> np.ndarray:  # ignores where the blob is
        bright = images.reshape(len(images), -1).max(axis=1) > 150
        return np.stack([~bright, bright], axis=1).astype(float)

    m = evaluate_shifts(by_brightness, x, y, EvaluationConfig(shifts=[1, 4], consistency_shift=4))
    assert m[Metric.SHIFT_CONSISTENCY] == 1.0
    assert m[shifted_accuracy(0)] == m[shifted_accuracy(1)] == m[shifted_accuracy(4)] == 1.0
    assert m[Metric.INFERENCE_IMAGES_PER_SEC] > 0


def test_a_position_bound_predictor_is_not() -> None:
    x, y = _blobs(200, np.random.default_rng(2))

    def by_position(images: np.ndarray) -> np.ndarray:  # the parity of the blob's row
        rows = images[..., 0].max(axis=2).argmax(axis=1)
        odd = rows % 2 == 1
        return np.stack([~odd, odd], axis=1).astype(float)

    m = evaluate_shifts(by_position, x, y, EvaluationConfig(shifts=[1], consistency_shift=4))
    assert (
        m[Metric.SHIFT_CONSISTENCY] < 0.7
    )  # two shifts agree on the row parity about half the time


def test_seeded_metrics_repeat() -> None:
    x, y = _blobs(100, np.random.default_rng(3))
    rng = np.random.default_rng(9)
    weights = rng.normal(size=(144, 2))

    def linear(images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1).astype(float) @ weights

    cfg = EvaluationConfig()
    a, b = evaluate_shifts(linear, x, y, cfg), evaluate_shifts(linear, x, y, cfg)
    a.pop(Metric.INFERENCE_IMAGES_PER_SEC), b.pop(Metric.INFERENCE_IMAGES_PER_SEC)  # timings differ
    assert a == b


def test_circular_consistency_loses_nothing_at_the_border() -> None:
    """Uniform images, classed by whether at least 70 % of their light is there: a circular
    roll keeps every pixel (the APS protocol, 100 %); a zero-filled shift by (dy, dx) keeps
    (12 − |dy|)(12 − |dx|) of 144 pixels, so two random shifts often disagree."""
    x = np.full((300, 12, 12, 1), 100, np.uint8)
    y = np.ones(300, int)

    def by_light(images: np.ndarray) -> np.ndarray:
        bright = images.reshape(len(images), -1).astype(float).sum(axis=1) > 0.7 * 14_400
        return np.stack([~bright, bright], axis=1).astype(float)

    m = evaluate_shifts(by_light, x, y, EvaluationConfig(shifts=[1], consistency_shift=4))
    assert m[Metric.CIRCULAR_SHIFT_CONSISTENCY] == 1.0
    assert m[Metric.SHIFT_CONSISTENCY] < 0.75


def test_roll_wraps_pixels_around() -> None:
    image = np.arange(9).reshape(1, 3, 3, 1)
    rolled = roll(image, np.array([1]), np.array([-1]))
    np.testing.assert_array_equal(rolled[0, :, :, 0], [[7, 8, 6], [1, 2, 0], [4, 5, 3]])
