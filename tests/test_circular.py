"""`model.padding_mode=circular` and `model.width`, and what circular padding is for: with
APS in every slot and a global-average head, a circular shift of the input cannot change
the output (Chaman & Dokmanić 2021), on real Fashion-MNIST images, untrained and after
training steps; max pooling in the same network can."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from dsbench.config import (
    BlockConfig,
    ConvConfig,
    DownsampleConfig,
    EvaluationConfig,
    HeadConfig,
    ModelConfig,
    model_config,
)
from dsbench.contract import Metric
from dsbench.data.idx import read_idx_gz
from dsbench.errors import DsbenchError
from dsbench.frameworks.keras_model import build_keras, keras_layer
from dsbench.model.layers import Conv
from dsbench.model.plan import count_params, plan_model, trace
from dsbench.training.evaluate import evaluate_shifts


def test_a_circular_conv_commutes_with_a_circular_shift() -> None:
    x = np.random.default_rng(0).normal(size=(2, 9, 9, 3)).astype("float32")
    layer = keras_layer(Conv(4, 3, 1, "same", padding_mode="circular"), "c")
    out = keras.ops.convert_to_numpy(layer(x))
    for shift in ((1, 0), (0, -2), (4, 5)):
        moved = keras.ops.convert_to_numpy(layer(np.roll(x, shift, axis=(1, 2))))
        np.testing.assert_allclose(moved, np.roll(out, shift, axis=(1, 2)), atol=1e-5)
    # Inside the map (no padding reached) it is the zero-padded conv, weights and all.
    zeros = keras.layers.Conv2D(4, 3, padding="same", activation="relu")
    zeros.build(x.shape)
    zeros.set_weights(layer.get_weights())
    inner = keras.ops.convert_to_numpy(zeros(x))[:, 1:-1, 1:-1]
    np.testing.assert_allclose(out[:, 1:-1, 1:-1], inner, atol=1e-5)
    # A stride-2 "same" conv keeps Keras' size, ceil(n / 2).
    strided = keras_layer(Conv(4, 3, 2, "same", padding_mode="circular"), "s")
    assert tuple(strided(x).shape) == (2, 5, 5, 4)


def test_padding_mode_reaches_every_same_conv_and_nothing_else() -> None:
    plan = plan_model(
        model_config("springenberg_c", padding_mode="circular"),
        DownsampleConfig("conv"),
        HeadConfig("allconv"),
        10,
    )
    convs = [(name, spec) for name, spec in plan if isinstance(spec, Conv)]
    for name, spec in convs:
        circular = spec.padding == "same" and spec.kernel > 1
        assert (spec.padding_mode == "circular") == circular, name
    assert sum(spec.padding_mode == "circular" for _, spec in convs) == 6  # 4 convs, 2 slots


def test_width_scales_every_conv_but_the_classifier() -> None:
    """Model C at ¼ width: 96 → 24, 192 → 48 in the backbone, the slots' convs and the head's
    hidden convs; the classifier keeps its 10."""

    def filters(downsample: str, head: str) -> list[int]:
        cfg = model_config("springenberg_c", width=0.25)
        plan = plan_model(cfg, DownsampleConfig(downsample), HeadConfig(head), 10)
        return [spec.filters for _, spec in plan if isinstance(spec, Conv)]

    assert filters("conv", "flatten") == [24, 24, 24, 48, 48, 48]  # 2 convs + the slot's, ×2
    assert filters("max", "allconv") == [24, 24, 48, 48, 48, 48, 10]
    head = plan_model(
        model_config("springenberg_c", width=0.25), DownsampleConfig(), HeadConfig("allconv"), 10
    )
    # Params follow from the widths (Keras counts the same, below).
    shape = (32, 32, 3)
    full = count_params(head, shape)
    assert (
        full
        < count_params(
            plan_model(
                model_config("springenberg_c"), DownsampleConfig(), HeadConfig("allconv"), 10
            ),
            shape,
        )
        / 10
    )
    assert build_keras(head, shape).count_params() == full
    # Rounded half up, never below 1: convnet's 32/64 at 0.1 are 3 and 6, at 0.001 both 1.
    for width, expected in ((0.1, [3, 6]), (0.001, [1, 1])):
        convnet = plan_model(
            model_config("convnet", width=width), DownsampleConfig(), HeadConfig(), 10
        )
        assert [s.filters for _, s in convnet if isinstance(s, Conv)] == expected
        assert trace(convnet, (28, 28, 1))[-1][2] == (10,)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("width", 0.0, "model.width must be a number > 0, got 0.0"),
        (
            "padding_mode",
            "reflect",
            "unknown model.padding_mode 'reflect'; choose one of: zeros, circular",
        ),
        ("norm", "layer", "unknown model.norm 'layer'; choose one of: none, batch"),
        ("activation", "tanh", "unknown model.activation 'tanh'; choose one of: relu, gelu"),
        (
            "blocks",
            [BlockConfig([ConvConfig(8)], slot=3)],
            r"model.blocks\[0\].slot=3 but the block has 1 conv\(s\): use 1..1, -1",
        ),
        (
            "blocks",
            [BlockConfig([ConvConfig(8), ConvConfig(0)])],
            r"model.blocks\[0\].convs\[1\].filters must be > 0, got 0",
        ),
        ("blocks", [BlockConfig([])], r"model.blocks\[0\].convs is empty"),
    ],
)
def test_bad_backbone_keys(key: str, value: object, message: str) -> None:
    with pytest.raises(DsbenchError, match=message):
        ModelConfig(**{key: value})


def fashion_32(data: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n Fashion-MNIST test images zero-padded to 32×32 (as the Springenberg
    backbones take them), so the circular shifts roll the whole input."""
    x = read_idx_gz(data / "fashion_mnist" / "t10k-images-idx3-ubyte.gz")[:n]
    y = read_idx_gz(data / "fashion_mnist" / "t10k-labels-idx1-ubyte.gz")[:n]
    return np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None], y.astype(int)


def model_c(downsample: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    plan = plan_model(
        model_config("springenberg_c", width=0.25, padding_mode="circular"),
        DownsampleConfig(downsample),
        HeadConfig("gap"),
        10,
    )
    return build_keras(plan, (32, 32, 1))


def circular_consistency(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    predict = lambda images: model.predict(images, batch_size=250, verbose=0)  # noqa: E731
    cfg = EvaluationConfig(shifts=[], consistency_shift=4)
    return evaluate_shifts(predict, x, y, cfg)[Metric.CIRCULAR_SHIFT_CONSISTENCY]


@pytest.mark.slow
def test_aps_with_circular_padding_is_exactly_shift_invariant(shared_data: Path) -> None:
    x, y = fashion_32(shared_data, 1000)
    shifts = [(1, 0), (0, 1), (1, 1), (-3, 2), (4, -4)]
    models = {name: model_c(name) for name in ("aps", "max")}
    for name, model in models.items():
        # Untrained: APS's outputs for x and every shift of x are the same numbers.
        out = model.predict(x[:200], verbose=0)
        changed = max(
            np.abs(model.predict(np.roll(x[:200], s, axis=(1, 2)), verbose=0) - out).max()
            for s in shifts
        )
        if name == "aps":
            assert changed < 1e-5
        else:
            assert changed > 1e-4  # max pooling's are not (9e-4 here, untrained)
        # After 60 training steps (about 30 % accuracy, several classes predicted), its
        # classes under the APS protocol as well.
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=50, epochs=3, verbose=0)
        assert len(set(model.predict(x, verbose=0).argmax(-1))) > 2, name
    assert circular_consistency(models["aps"], x, y) == 1.0
    assert circular_consistency(models["max"], x, y) < 1.0
