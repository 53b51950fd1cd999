"""The strategies beyond the baseline's pools and convolutions (`NEW`):
values on hand-computed examples, gradients, parameter counts and FLOPs as their docstrings
say, a bad knob on the command line, the JAX backend. (Their knobs' checks: test_config.py.)

Predicted vs Keras shapes for every strategy × backbone are in test_model.py (GRID).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import describe_in_process

from dsbench.config import (
    DownsampleConfig,
    HeadConfig,
    TrainConfig,
    backbone_head,
    backbone_names,
    model_config,
)
from dsbench.errors import DsbenchError
from dsbench.frameworks.keras_layers import binomial_filter
from dsbench.frameworks.keras_model import build_keras, count_trainable, keras_layer
from dsbench.frameworks.summary import describe
from dsbench.model.backbones import blocks
from dsbench.model.downsample import STRATEGIES, Slot
from dsbench.model.layers import (
    BlurPool,
    Conv,
    HaarPool,
    LayerSpec,
    LipPool,
    LpPool,
    MixedPool,
    PolyphasePool,
    Pool,
    SoftPool,
    SpaceToDepth,
    StochasticPool,
)
from dsbench.model.plan import count_params, flops_per_image, plan_model, trace

ROOT = Path(__file__).resolve().parents[1]
MNIST = (28, 28, 1)
CIFAR = (32, 32, 3)
NEW = ("blur", "lp", "mixed", "s2d", "softpool", "lip", "stochastic", "aps", "wavelet")
# Every new strategy, and each with its other option: (name, extra config).
VARIANTS = [(name, {}) for name in NEW] + [
    ("mixed", {"alpha": 0.25, "learn_alpha": True}),
    ("aps", {"aps_blur": True}),
    ("wavelet", {"bands": "all"}),
]

# One channel, 4×4, a distinct maximum in every 2×2 window:
#   windows (2×2, stride 2)   values        max   mean   mean of squares
#   top-left                  1 5 3 2        5    2.75   39/4
#   top-right                 2 0 8 4        8    3.5    84/4
#   bottom-left               0 6 4 2        6    3      56/4
#   bottom-right              1 1 3 7        7    3      60/4
X = np.array([[1, 5, 2, 0], [3, 2, 8, 4], [0, 6, 1, 1], [4, 2, 3, 7]], "float32")[..., None]
MAX = [[5, 8], [6, 7]]
AVG = [[2.75, 3.5], [3, 3]]
# Two channels, 4×4: channel 0 holds 4·row + col, channel 1 the same + 100.
GRID = np.stack([np.arange(16.0).reshape(4, 4), 100 + np.arange(16.0).reshape(4, 4)], -1)


def soft(*window: float) -> float:
    """SoftPool of one window, by its definition Σ eˣ·x / Σ eˣ (float64)."""
    x = np.array(window, "float64")
    return float((np.exp(x) * x).sum() / np.exp(x).sum())


# name: (the layers, in order; the input; the output, worked out by hand).
CASES: dict[str, tuple[tuple[LayerSpec, ...], np.ndarray, list]] = {
    "max": ((Pool("max", 2, 2),), X, MAX),
    "avg": ((Pool("avg", 2, 2),), X, AVG),
    # p = 1: the mean of |x|, avg itself on a map ≥ 0.
    "lp_p1": ((LpPool(1.0, 2, 2),), X, AVG),
    # p = 2: the root of the mean of squares.
    "lp_p2": (
        (LpPool(2.0, 2, 2),),
        X,
        [[math.sqrt(39 / 4), math.sqrt(84 / 4)], [math.sqrt(56 / 4), math.sqrt(60 / 4)]],
    ),
    # 0.25·max + 0.75·avg: 1.25 + 2.0625, 2 + 2.625, 1.5 + 2.25, 1.75 + 2.25.
    "mixed_a025": ((MixedPool(0.25, False, 2, 2),), X, [[3.3125, 4.625], [3.75, 4.0]]),
    "mixed_learned_starts_at_a025": (
        (MixedPool(0.25, True, 2, 2),),
        X,
        [[3.3125, 4.625], [3.75, 4.0]],
    ),
    # 2×2 box filter, stride 2, reflect padding only after the map (unused): avg 2×2 s2.
    "blurpool_f2": ((BlurPool(2, 2),), X, AVG),
    # [1 2 1]/4 down the rows, then across, centred on pixels (0, 0), (0, 2), (2, 0),
    # (2, 2); reflect padding reads row/column −1 as 1. Rows 0 and 2 after the column
    # pass: (x0 + x1)/2 = 2 3.5 5 2 and (x1 + 2·x2 + x3)/4 = 1.75 4 3.25 3.25; then
    # across: (2 + 3.5)/2, (3.5 + 2·5 + 2)/4 and (1.75 + 4)/2, (4 + 2·3.25 + 3.25)/4.
    "blurpool_f3": ((BlurPool(3, 2),), X, [[2.75, 3.875], [2.875, 3.4375]]),
    # The whole blur slot of convnet: max 2×2 stride 1 (4×4 → 3×3: 5 8 8 / 6 8 8 / 6 6 7)
    # then the 3×3 blur at stride 2: rows (m0 + m1)/2 = 5.5 8 8 and (m1 + m2)/2 = 6 7 7.5
    # (row 3 reflects to row 1), then the same across.
    "blur_slot": ((Pool("max", 2, 1), BlurPool(3, 2)), X, [[6.75, 8.0], [6.5, 7.25]]),
    # softmax-weighted mean Σ eˣ·x / Σ eˣ of each window, from its definition.
    "softpool": (
        (SoftPool(2, 2),),
        X,
        [[soft(1, 5, 3, 2), soft(2, 0, 8, 4)], [soft(0, 6, 4, 2), soft(1, 1, 3, 7)]],
    ),
    # Σ a² / Σ a of each window: 39/11, 84/14, 56/12, 60/12.
    "stochastic_at_test": ((StochasticPool(2, 2),), X, [[39 / 11, 6], [56 / 12, 5]]),
    # The phases x[dy::2, dx::2]: (0, 0) 1 2 0 1, ℓ2² 6; (0, 1) 5 0 6 1, 62; (1, 0) 3 8 4 3,
    # 98; (1, 1) 2 4 2 7, 73: the (1, 0) phase is kept.
    "aps": ((PolyphasePool(),), X, [[3, 8], [4, 3]]),
    # (a + b + c + d)/2 of each 2×2 block: 2 × AVG.
    "wavelet_ll": ((HaarPool("ll"),), X, [[5.5, 7], [6, 6]]),
    # [[a, b], [c, d]] → LL (a+b+c+d)/2, LH (a−b+c−d)/2, HL (a+b−c−d)/2, HH (a−b−c+d)/2:
    # top-left 1 5 / 3 2 → 5.5 −1.5 0.5 −2.5; top-right 2 0 / 8 4 → 7 3 −5 −1;
    # bottom-left 0 6 / 4 2 → 6 −2 0 −4; bottom-right 1 1 / 3 7 → 6 −2 −4 2.
    "wavelet_all": (
        (HaarPool("all"),),
        X,
        [[[5.5, -1.5, 0.5, -2.5], [7, 3, -5, -1]], [[6, -2, 0, -4], [6, -2, -4, 2]]],
    ),
    # out[i, j, (dy·2 + dx)·C + c] = x[2i + dy, 2j + dx, c] (TensorFlow's order).
    "s2d_order": (
        (SpaceToDepth(2),),
        GRID,
        [
            [[0, 100, 1, 101, 4, 104, 5, 105], [2, 102, 3, 103, 6, 106, 7, 107]],
            [[8, 108, 9, 109, 12, 112, 13, 113], [10, 110, 11, 111, 14, 114, 15, 115]],
        ],
    ),
}


def run_layers(specs: tuple[LayerSpec, ...], x: np.ndarray) -> np.ndarray:
    """One image (h, w, c) through the specs' Keras layers, eagerly; the output image."""
    y = x[None].astype("float32")
    for i, spec in enumerate(specs):
        y = keras_layer(spec, f"t{i}")(y)
    return keras.ops.convert_to_numpy(y)[0]


def as_image(values: list) -> np.ndarray:
    """Hand-written (h, w) values of a one-channel map as (h, w, 1); (h, w, c) unchanged."""
    image = np.asarray(values, "float32")
    return image[..., None] if image.ndim == 2 else image


@pytest.mark.parametrize("case", CASES)
def test_layer_hand_computed_example(case: str) -> None:
    specs, x, expected = CASES[case]
    np.testing.assert_allclose(run_layers(specs, x), as_image(expected), rtol=1e-5, atol=1e-5)


def test_strategies_fill_the_slot_as_documented() -> None:
    slot = Slot(width=32, window=2, stride=2, padding="valid")
    assert STRATEGIES["blur"](slot, DownsampleConfig("blur")).layers == (
        Pool("max", 2, 1, "valid"),
        BlurPool(3, 2),
    )
    assert STRATEGIES["lp"](slot, DownsampleConfig("lp")).layers == (LpPool(3.0, 2, 2, "valid"),)
    assert STRATEGIES["mixed"](slot, DownsampleConfig("mixed", learn_alpha=True)).layers == (
        MixedPool(0.5, True, 2, 2, "valid"),
    )
    assert STRATEGIES["s2d"](slot, DownsampleConfig("s2d")).layers == (
        SpaceToDepth(2, "valid"),
        Conv(32, 1),
    )
    # Springenberg's slots (3×3 s2 "same"): the stride-1 max keeps "same"; s2d pads.
    same = Slot(width=96, window=3, stride=2, padding="same")
    assert STRATEGIES["blur"](same, DownsampleConfig("blur", filter_size=5)).layers == (
        Pool("max", 3, 1, "same"),
        BlurPool(5, 2),
    )
    assert STRATEGIES["s2d"](same, DownsampleConfig("s2d")).layers[0] == SpaceToDepth(2, "same")
    assert all(s.description and s.name == name for name, s in STRATEGIES.items())


# Every strategy in the keras-io convnet (MNIST, flatten head), worked out by hand from
# floor((n − k + 2p)/s) + 1: the map after each block, the params and the FLOPs. Adding a
# strategy adds its row here.
EXPECTED: dict[str, tuple[tuple[int, ...], tuple[int, ...], int, int]] = {
    # 28 → conv 26 → 2×2 s2 13; 13 → conv 11 → 5; dense 1,600 → 10.
    "max": ((13, 13, 32), (5, 5, 64), 34_826, 4_881_920),
    "avg": ((13, 13, 32), (5, 5, 64), 34_826, 4_881_920),
    # 3×3 s2: 26 → 12, conv 10 → 4; dense 1,024 → 10.
    "overlap": ((12, 12, 32), (4, 4, 64), 29_066, 4_096_256),
    # stride-2 convs: 28 → 13, 13 → 6; dense 2,304 → 10.
    "strided": ((13, 13, 32), (6, 6, 64), 41_866, 1_470_528),
    # learned 3×3 s2 convs (9·C² + C each): 26 → 12, conv 10 → 4.
    "conv": ((12, 12, 32), (4, 4, 64), 75_242, 7_930_112),
    # extra 3×3 "same" convs (9·C² + C each), then max's geometry.
    "convpool": ((13, 13, 32), (5, 5, 64), 81_002, 26_263_040),
    # + 2·9 FLOPs per output pixel and channel of the 3×3 blur.
    "blur": ((13, 13, 32), (5, 5, 64), 34_826, 5_008_064),
    "lp": ((13, 13, 32), (5, 5, 64), 34_826, 4_881_920),
    "mixed": ((13, 13, 32), (5, 5, 64), 34_826, 4_881_920),
    # + the 1×1 convs 4C → C (4·C² + C each).
    "s2d": ((13, 13, 32), (5, 5, 64), 55_402, 7_085_568),
    "softpool": ((13, 13, 32), (5, 5, 64), 34_826, 4_881_920),
    # + the logit convs, 3×3 "same" C → C (9·C² + C each) on 26×26×32 and 11×11×64: the
    # params and FLOPs of convpool's extra convs.
    "lip": ((13, 13, 32), (5, 5, 64), 81_002, 26_263_040),
    "stochastic": ((13, 13, 32), (5, 5, 64), 34_826, 4_881_920),
    # the four phases of 26 × 26 are 13 × 13; 11 × 11 is cropped to 10 × 10, phases 5 × 5.
    "aps": ((13, 13, 32), (5, 5, 64), 34_826, 4_881_920),
    "wavelet": ((13, 13, 32), (5, 5, 64), 34_826, 4_881_920),
}


def block_outputs(plan: list, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The map after each block's last layer (its slot, or its strided conv)."""
    rows = trace(plan, shape)
    return [[out for name, _, out in rows if name.startswith(f"block{i}_")][-1] for i in (1, 2)]


def test_every_strategy_has_its_row_of_expectations() -> None:
    assert set(EXPECTED) == set(STRATEGIES)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_strategy_shapes_params_and_flops(name: str) -> None:
    block1, block2, params, flops = EXPECTED[name]
    plan = plan_model(model_config("convnet"), DownsampleConfig(name), HeadConfig(), 10)
    assert block_outputs(plan, MNIST) == [block1, block2]
    assert count_params(plan, MNIST) == params
    assert flops_per_image(plan, MNIST) == flops
    assert build_keras(plan, MNIST).count_params() == params  # the prediction is Keras' count


def test_layer_lp_between_avg_and_max_and_safe_for_large_values() -> None:
    out = {p: run_layers((LpPool(p, 2, 2),), X)[..., 0] for p in (1.0, 2.0, 3.0, 8.0, 50.0)}
    for small, large in ((1.0, 2.0), (2.0, 3.0), (3.0, 8.0), (8.0, 50.0)):
        assert np.all(out[small] < out[large])  # a power mean grows with p, towards max
    assert np.all(out[50.0] <= np.asarray(MAX)) and np.all(out[50.0] > 0.97 * np.asarray(MAX))
    # |x|: the sign does not matter.
    np.testing.assert_allclose(run_layers((LpPool(3.0, 2, 2),), -X)[..., 0], out[3.0], rtol=1e-6)
    # 1000^20 overflows float32; the per-map scaling keeps it exact (Lp is homogeneous).
    big = run_layers((LpPool(20.0, 2, 2),), 1000 * X)[..., 0]
    small = run_layers((LpPool(20.0, 2, 2),), X)[..., 0]
    np.testing.assert_allclose(big, 1000 * small, rtol=1e-5)
    # An all-zero map gives 0 (eps^(1/p) × the map's scale, 1e-10), not NaN.
    np.testing.assert_allclose(run_layers((LpPool(3.0, 2, 2),), 0 * X), 0, atol=1e-9)


def test_layer_mixed_alpha_one_is_max_and_zero_is_avg() -> None:
    np.testing.assert_allclose(run_layers((MixedPool(1.0, False, 2, 2),), X)[..., 0], MAX)
    np.testing.assert_allclose(run_layers((MixedPool(0.0, False, 2, 2),), X)[..., 0], AVG)


@pytest.mark.parametrize("size", [2, 3, 4, 5])
def test_layer_blur_filter_is_binomial_and_keeps_a_constant_map(size: int) -> None:
    kernel = binomial_filter(size)
    row = [math.comb(size - 1, i) for i in range(size)]  # Pascal's triangle
    np.testing.assert_allclose(kernel, np.outer(row, row) / sum(row) ** 2)
    # Reflect padding: the border is not darkened (zero padding would give < 3 there).
    out = run_layers((BlurPool(size, 2),), np.full((7, 7, 2), 3.0))
    assert out.shape == (4, 4, 2)  # ceil(7 / 2)
    np.testing.assert_allclose(out, 3.0, rtol=1e-6)


def test_layer_space_to_depth_odd_maps_follow_the_slot_padding() -> None:
    x = np.arange(25.0).reshape(5, 5, 1)  # 5·row + col
    valid = run_layers((SpaceToDepth(2, "valid"),), x)
    assert valid.shape == (2, 2, 4)  # the last row and column are dropped: 5 → 2
    np.testing.assert_array_equal(valid[1, 1], [12, 13, 17, 18])
    same = run_layers((SpaceToDepth(2, "same"),), x)
    assert same.shape == (3, 3, 4)  # zero-padded at the end: 5 → 3
    np.testing.assert_array_equal(same[2, 2], [24, 0, 0, 0])
    np.testing.assert_array_equal(same[:2, :2], valid)
    assert SpaceToDepth(2, "valid").output_shape("s", (5, 5, 1)) == (2, 2, 4)
    assert SpaceToDepth(2, "same").output_shape("s", (5, 5, 1)) == (3, 3, 4)


def test_space_to_depth_matches_tensorflow() -> None:
    if keras.backend.backend() != "tensorflow":
        pytest.skip("compares with tf.nn.space_to_depth")
    import tensorflow as tf

    x = np.random.default_rng(0).normal(size=(6, 8, 3)).astype("float32")
    expected = tf.nn.space_to_depth(x[None], 2).numpy()[0]
    np.testing.assert_array_equal(run_layers((SpaceToDepth(2),), x), expected)


# Gradients: d Σ(W · pool(x)) / dx, with a different upstream weight per window, so one can
# see where each window's gradient goes.
W = np.array([[1, 2], [3, 4]], "float32")[None, :, :, None]


def input_gradient(spec: LayerSpec, x: np.ndarray) -> np.ndarray:
    """d Σ(W · layer(x)) / dx by the backend's own autodiff (one image, one channel)."""
    layer = keras_layer(spec, "g")
    xb = x[None].astype("float32")
    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: (layer(v) * W).sum())(xb))[0]
    import tensorflow as tf  # only here, in a test: the package never imports it

    xt = tf.constant(xb)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(layer(xt) * W)
    return tape.gradient(loss, xt).numpy()[0]


def test_layer_max_routes_each_window_gradient_to_its_argmax() -> None:
    grad = input_gradient(Pool("max", 2, 2), X)[..., 0]
    expected = np.zeros((4, 4))
    # argmaxes: 5 at (0, 1), 8 at (1, 2), 6 at (2, 1), 7 at (3, 3); each gets its window's W
    expected[0, 1], expected[1, 2], expected[2, 1], expected[3, 3] = 1, 2, 3, 4
    np.testing.assert_array_equal(grad, expected)


def test_layer_avg_spreads_each_window_gradient_evenly() -> None:
    grad = input_gradient(Pool("avg", 2, 2), X)[..., 0]
    np.testing.assert_allclose(grad, np.kron(W[0, :, :, 0], np.ones((2, 2))) / 4)


def test_layer_mixed_and_lp_gradients() -> None:
    max_grad = input_gradient(Pool("max", 2, 2), X)
    avg_grad = input_gradient(Pool("avg", 2, 2), X)
    mixed = input_gradient(MixedPool(0.25, False, 2, 2), X)
    np.testing.assert_allclose(mixed, 0.25 * max_grad + 0.75 * avg_grad, rtol=1e-6)
    # p = 1 on x > 0 is avg, gradient included (the per-map scale cancels). At x = 0 the
    # slope of |x| is taken as 0, like ReLU's, which is why X + 1 here.
    np.testing.assert_allclose(input_gradient(LpPool(1.0, 2, 2), X + 1), avg_grad, atol=1e-6)
    # Dead ReLU windows: finite gradients, not NaN (eps inside the root).
    for p in (1.0, 3.0, 20.0):
        grad = input_gradient(LpPool(p, 2, 2), np.zeros((4, 4, 1)))
        assert np.all(np.isfinite(grad)), p
        one = np.zeros((4, 4, 1))
        one[0, 0] = 1e-3
        assert np.all(np.isfinite(input_gradient(LpPool(p, 2, 2), one))), p


def test_layer_learned_alpha_gets_a_gradient() -> None:
    """d Σ out / dw = sigmoid'(w)·Σ(max − avg) = 0.25·0.75·(2.25 + 4.5 + 3 + 4)."""
    layer = keras_layer(MixedPool(0.25, True, 2, 2), "m")
    layer.build((1, 4, 4, 1))
    (w,) = layer.trainable_weights
    if keras.backend.backend() == "jax":
        import jax

        def loss(value: object) -> object:
            out, _ = layer.stateless_call([value], [], X[None])
            return out.sum()

        grad = float(jax.grad(loss)(w.value))
    else:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(X[None]))
        grad = float(tape.gradient(loss, w.value))
    assert grad == pytest.approx(0.1875 * 13.75, rel=1e-5)


def test_layer_aps_gradient_reaches_the_kept_phase_only() -> None:
    grad = input_gradient(PolyphasePool(), X)[..., 0]
    expected = np.zeros((4, 4))
    expected[1::2, 0::2] = W[0, :, :, 0]  # the (1, 0) phase won (CASES["aps"])
    np.testing.assert_array_equal(grad, expected)


def test_layer_aps_output_of_a_circular_shift_is_a_circular_shift() -> None:
    """Chaman & Dokmanić's property: rolling the input by any (dy, dx) rolls the output."""
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 3)).astype("float32")
    layer = keras_layer(PolyphasePool(), "aps")
    out = keras.ops.convert_to_numpy(layer(x))
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            moved = keras.ops.convert_to_numpy(layer(np.roll(x, (dy, dx), axis=(1, 2))))
            assert any(
                np.array_equal(np.roll(out, (a, b), axis=(1, 2)), moved)
                for a in range(4)
                for b in range(4)
            ), (dy, dx)
    # A fixed phase (stride-2 subsampling) is not: a roll by one pixel changes the values.
    fixed = x[:, ::2, ::2]
    rolled = np.roll(x, (1, 0), axis=(1, 2))[:, ::2, ::2]
    assert not any(
        np.array_equal(np.roll(fixed, (a, b), axis=(1, 2)), rolled)
        for a in range(4)
        for b in range(4)
    )


def test_layer_lip_with_zero_logit_weights_is_average_pooling() -> None:
    x = np.random.default_rng(1).uniform(0, 5, (2, 9, 9, 4)).astype("float32")
    for k, s, padding in ((2, 2, "valid"), (3, 2, "same")):  # convnet's, Springenberg's
        lip = keras_layer(LipPool(k, s, padding), "lip")
        lip.build(x.shape)
        for weight in lip.trainable_weights:
            weight.assign(np.zeros(weight.shape, "float32"))
        avg = keras.layers.AveragePooling2D(k, s, padding)(x)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(lip(x)), keras.ops.convert_to_numpy(avg), rtol=1e-5
        )


def test_layer_softpool_is_stable_and_between_avg_and_max() -> None:
    x = np.random.default_rng(2).uniform(0, 10, (1, 6, 6, 2)).astype("float32")
    for k, s, padding in ((2, 2, "valid"), (3, 2, "same")):
        out = keras.ops.convert_to_numpy(keras_layer(SoftPool(k, s, padding), "s")(x))
        peak = keras.ops.convert_to_numpy(keras.layers.MaxPooling2D(k, s, padding)(x))
        mean = keras.ops.convert_to_numpy(keras.layers.AveragePooling2D(k, s, padding)(x))
        assert np.all(mean <= out + 1e-5) and np.all(out <= peak + 1e-5)
    # e^1000 overflows any float; the softmax over each window does not.
    big = run_layers((SoftPool(2, 2),), X * 1000)
    np.testing.assert_allclose(big, as_image(MAX) * 1000, rtol=1e-6)


def test_layer_stochastic_draws_each_activation_with_its_probability() -> None:
    """One 2×2 window 1 2 / 3 4, drawn 40,000 times: p = 0.1, 0.2, 0.3, 0.4 (the
    frequencies' standard error is at most 0.0025; the bound is 6 of them)."""
    window = np.array([[1, 2], [3, 4]], "float32")[None, :, :, None]
    layer = keras_layer(StochasticPool(2, 2), "st")
    draws = keras.ops.convert_to_numpy(layer(np.repeat(window, 40_000, 0), training=True))
    values, counts = np.unique(draws, return_counts=True)
    assert list(values) == [1, 2, 3, 4]
    np.testing.assert_allclose(counts / 40_000, [0.1, 0.2, 0.3, 0.4], atol=0.015)
    # An all-zero (dead ReLU) window gives 0, in training and at test.
    zeros = np.zeros((3, 2, 2, 1), "float32")
    for training in (True, False):
        assert not np.any(keras.ops.convert_to_numpy(layer(zeros, training=training)))


def test_layer_wavelet_all_bands_keep_the_energy() -> None:
    """The orthonormal Haar transform is a rotation of each 2×2 block: Σ bands² = Σ x²."""
    x = np.random.default_rng(3).normal(size=(2, 6, 6, 3)).astype("float32")
    bands = keras.ops.convert_to_numpy(keras_layer(HaarPool("all"), "h")(x))
    np.testing.assert_allclose(
        (bands**2).sum(axis=(1, 2, 3)), (x**2).sum(axis=(1, 2, 3)), rtol=1e-5
    )


@pytest.mark.parametrize("name", ["aps", "wavelet"])
def test_phase_strategies_refuse_a_stride_other_than_two(name: str) -> None:
    with pytest.raises(DsbenchError, match=rf"downsample={name} subsamples by 2 .* stride is 3"):
        plan_model(model_config("convnet"), DownsampleConfig(name, stride=3), HeadConfig(), 10)


# Parameters and FLOPs: exactly what each strategy's docstring says.


def widths(backbone: str) -> list[int]:
    """The width of each slot: the filters of the conv it follows."""
    slotted = [b for b in blocks(model_config(backbone)) if b.slot is not None]
    return [b.convs[b.slot - 1 if b.slot > 0 else -1].filters for b in slotted]


def extra_params(name: str, cfg: dict, backbone: str) -> int:
    """The docstrings' formulas: mixed learned 1 per slot; s2d and wavelet with all bands
    4C² + C; lip 9C² + C; every other 0."""
    if name == "s2d" or (name == "wavelet" and cfg.get("bands") == "all"):
        return sum(4 * c * c + c for c in widths(backbone))
    if name == "lip":
        return sum(9 * c * c + c for c in widths(backbone))
    if name == "mixed" and cfg.get("learn_alpha"):
        return len(widths(backbone))
    return 0


def build(backbone: str, name: str, **cfg: object) -> keras.Model:
    head = backbone_head(backbone)
    shape = MNIST if backbone == "convnet" else CIFAR
    plan = plan_model(model_config(backbone), DownsampleConfig(name, **cfg), HeadConfig(head), 10)
    return build_keras(plan, shape)


@pytest.mark.parametrize("backbone", backbone_names())
def test_parameter_counts_follow_the_docstrings(backbone: str) -> None:
    base = build(backbone, "max").count_params()
    for name, cfg in VARIANTS:
        model = build(backbone, name, **cfg)
        assert model.count_params() == base + extra_params(name, cfg, backbone), (name, cfg)
        # Nothing hidden as a non-trainable weight (the blur filter is a constant) but batch
        # norms' moving mean and variance.
        moving = sum(w.shape[0] for w in model.non_trainable_weights if "moving" in w.path)
        assert count_trainable(model) + moving == model.count_params()


def test_convnet_parameter_counts() -> None:
    assert build("convnet", "blur").count_params() == 34_826
    assert build("convnet", "lp").count_params() == 34_826
    assert build("convnet", "mixed").count_params() == 34_826
    assert build("convnet", "mixed", learn_alpha=True).count_params() == 34_826 + 2
    # 4·32² + 32 + 4·64² + 64 = 4,128 + 16,448
    assert build("convnet", "s2d").count_params() == 34_826 + 20_576


def convnet_flops(name: str, **cfg: object) -> int:
    plan = plan_model(
        model_config("convnet"), DownsampleConfig(name, **cfg), HeadConfig("flatten"), 10
    )
    return flops_per_image(plan, MNIST)


def test_flops_count_the_blur_filter_and_the_s2d_conv() -> None:
    base = convnet_flops("max")
    assert base == 2 * (26 * 26 * 32 * 9 + 11 * 11 * 64 * 9 * 32 + 1600 * 10)
    assert convnet_flops("lp") == convnet_flops("mixed") == base  # pools count 0
    # blur: f² multiply-adds per output pixel and channel, on 13×13×32 and 5×5×64
    for f in (2, 3, 5):
        blur = 2 * f * f * (13 * 13 * 32 + 5 * 5 * 64)
        assert convnet_flops("blur", filter_size=f) == base + blur
    # s2d: the 1×1 convs 128 → 32 on 13×13 and 256 → 64 on 5×5
    assert convnet_flops("s2d") == base + 2 * (13 * 13 * 128 * 32 + 5 * 5 * 256 * 64)


def test_blur_reflect_padding_needs_a_large_enough_map() -> None:
    assert BlurPool(5, 2).output_shape("b", (3, 3, 1)) == (2, 2, 1)
    with pytest.raises(DsbenchError, match=r"layer b \(5×5 blur.* larger than 2×2, got 2×2"):
        BlurPool(5, 2).output_shape("b", (2, 2, 1))


# describe, for every backbone × new strategy, in process (each call checks predicted
# shapes against Keras'); the slot's output size is the same as max's.


@pytest.mark.parametrize("backbone", backbone_names())
def test_describe_every_backbone(backbone: str) -> None:
    head = HeadConfig(backbone_head(backbone))

    def run(name: str, **cfg: object) -> dict:
        return describe(
            TrainConfig(
                model=model_config(backbone), downsample=DownsampleConfig(name, **cfg), head=head
            )
        )

    def outside_slots(d: dict) -> list:
        return [(x["name"], x["output_shape"]) for x in d["layers"] if "_down" not in x["name"]]

    reference = run("max")
    for name, cfg in VARIANTS:
        d = run(name, **cfg)
        assert outside_slots(d) == outside_slots(reference), name
        assert d["params"] == reference["params"] + extra_params(name, cfg, backbone)


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
        cwd=ROOT,
    )


def test_describe_blur() -> None:
    d = describe_in_process("downsample=blur", "downsample.filter_size=5")
    assert (d["downsample"], d["params"]) == ("blur", 34_826)
    assert d["flops"] == convnet_flops("blur", filter_size=5)
    shapes = {x["name"]: x["output_shape"] for x in d["layers"]}
    assert shapes["block1_down1_pool"] == [25, 25, 32]  # max 2×2 at stride 1
    assert shapes["block1_down2_blurpool"] == [13, 13, 32]
    assert shapes["block2_down1_pool"] == [10, 10, 64]
    assert shapes["block2_down2_blurpool"] == [5, 5, 64]


def test_planning_does_not_import_keras() -> None:
    code = (
        "import sys\n"
        "from dsbench.config import DownsampleConfig, HeadConfig, model_config\n"
        "from dsbench.model.plan import count_params, flops_per_image, plan_model, trace, trace\n"
        "for name in ('blur', 'lp', 'mixed', 's2d'):\n"
        "    plan = plan_model(model_config('convnet'), DownsampleConfig(name), HeadConfig(), 10)\n"
        "    trace(plan, (28, 28, 1)); flops_per_image(plan, (28, 28, 1))\n"
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, 'imported'\n"
    )
    out = run_cli("-c", code)
    assert out.returncode == 0, out.stderr


# A bad knob on the command line.


def test_bad_knob_on_the_command_line_is_one_line() -> None:
    out = run_cli("-m", "dsbench.describe", "downsample=lp", "downsample.p=0.5")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "downsample.p must be a finite number >= 1" in lines[0] and "got 0.5" in lines[0]


def test_saved_model_loads_without_custom_objects(tmp_path: Path) -> None:
    x = np.random.default_rng(0).uniform(0, 255, (2, *MNIST)).astype("float32")
    for name, cfg in VARIANTS:
        model = build("convnet", name, **cfg)
        path = tmp_path / f"{name}.keras"
        model.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# Whole models, forward and one training step: run here and, below, on the JAX backend.


def variant_id(variant: tuple[str, dict]) -> str:
    name, cfg = variant
    return "-".join([name, *(f"{k}={v}" for k, v in cfg.items() if k != "alpha")])


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_model_forward(variant: tuple[str, dict]) -> None:
    name, cfg = variant
    rng = np.random.default_rng(0)
    for backbone in ("convnet", "springenberg_a"):  # valid and "same" slots
        x = rng.uniform(0, 255, (2, *(MNIST if backbone == "convnet" else CIFAR)))
        y = keras.ops.convert_to_numpy(build(backbone, name, **cfg)(x.astype("float32")))
        assert y.shape == (2, 10) and np.all(np.isfinite(y)), backbone
        np.testing.assert_allclose(y.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_model_train_step_updates_every_weight(variant: tuple[str, dict]) -> None:
    """Gradients pass through the slots: the first conv, before them, moves too (and α)."""
    name, cfg = variant
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, *MNIST)).astype("float32")
    y = rng.integers(0, 10, 8)
    model = build("convnet", name, **cfg)
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    loss = model.fit(x, y, batch_size=8, epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss)
    for weight, old in zip(model.trainable_weights, before, strict=True):
        assert np.any(keras.ops.convert_to_numpy(weight) != old), weight.path


@pytest.mark.slow
def test_on_jax_backend() -> None:
    """The layer and model tests above, again in a subprocess with KERAS_BACKEND=jax."""
    args = [__file__, "-q", "-p", "no:cacheprovider", "-k", "test_layer_ or test_model_"]
    code = (
        "import sys, keras, pytest\n"
        "assert keras.backend.backend() == 'jax', keras.backend.backend()\n"
        f"sys.exit(pytest.main({args!r}))\n"
    )
    out = run_cli("-c", code, env={"KERAS_BACKEND": "jax"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " passed" in out.stdout and " failed" not in out.stdout
