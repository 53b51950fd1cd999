"""Custom Keras layers for the downsampling strategies Keras has no layer for.

Written with `keras.ops` only, so they run on every Keras backend (TensorFlow and JAX are
tested). All take and return channels-last maps (batch, height, width, channels) and are
registered as "dsbench>ClassName", so a saved model loads without `custom_objects`.

Each class is followed by the builder of its spec (`dsbench.model.layers`), registered with
`@keras_builder(spec.X)`: what `dsbench.frameworks.keras_model` calls for that spec. Their
output sizes come from `dsbench.model.geometry`, the one place the formula is written.

| layer        | strategy | paper                                                           |
|--------------|----------|-----------------------------------------------------------------|
| BlurPool     | blur     | Zhang 2019, Making Convolutional Networks Shift-Invariant Again |
| LpPool       | lp       | Sermanet et al. 2012; Gulcehre et al. 2014 (learned-norm)       |
| MixedPool    | mixed    | Lee et al. 2016, Generalizing Pooling Functions in CNNs         |
| SpaceToDepth | s2d      | pixel unshuffle (Shi et al. 2016's sub-pixel shuffle reversed)  |
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from dsbench.frameworks.builders import keras_builder
from dsbench.model import layers as spec
from dsbench.model.geometry import out_size, window_size

# Rows of Pascal's triangle: the binomial low-pass filters of Zhang (2019), sizes 2..5.
BINOMIAL = {2: (1, 1), 3: (1, 2, 1), 4: (1, 3, 3, 1), 5: (1, 4, 6, 4, 1)}


def binomial_filter(size: int) -> np.ndarray:
    """The size×size binomial filter (outer product of a Pascal row), summing to 1."""
    row = np.array(BINOMIAL[size], dtype="float64")
    kernel = np.outer(row, row)
    return kernel / kernel.sum()


def reflect_pads(size: int) -> tuple[int, int]:
    """Padding before/after one axis for a size-tap filter: size − 1 in total, as Zhang's
    reference code; the odd pixel of an even filter goes at the end (as Keras "same")."""
    before = (size - 1) // 2
    return before, size - 1 - before


@keras.saving.register_keras_serializable(package="dsbench")
class BlurPool(keras.layers.Layer):
    """Fixed binomial low-pass filter, depthwise, with stride: anti-aliased subsampling.

    Zhang 2019, "Making Convolutional Networks Shift-Invariant Again": blurring before
    subsampling removes the high frequencies that would alias, so a one-pixel shift of
    the input changes the output less. The map is reflect-padded by filter_size − 1 in
    total (as the paper's code), so out = floor((n − f + f − 1)/s) + 1 = ceil(n / s),
    Keras' "same" size, and a constant map stays constant up to the border.

    No weights: the filter is a constant, rebuilt from `filter_size`.
    """

    def __init__(self, filter_size: int = 3, strides: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filter_size = filter_size
        self.strides = strides

    def build(self, input_shape: tuple) -> None:
        channels = input_shape[-1]
        # (f, f, channels, 1): depthwise, the same filter for every channel.
        self._kernel = np.tile(
            binomial_filter(self.filter_size)[:, :, None, None], (1, 1, channels, 1)
        )

    def call(self, x: Any) -> Any:
        before, after = reflect_pads(self.filter_size)
        # (n, h, w, c) → (n, h + f − 1, w + f − 1, c)
        x = ops.pad(x, ((0, 0), (before, after), (before, after), (0, 0)), mode="reflect")
        kernel = ops.convert_to_tensor(self._kernel, dtype=self.compute_dtype)
        # → (n, ceil(h / s), ceil(w / s), c)
        return ops.depthwise_conv(x, kernel, strides=self.strides, padding="valid")

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        n, h, w, c = input_shape
        pad = self.filter_size - 1  # reflect padding, in total

        def size(m: int | None) -> int | None:
            return None if m is None else out_size(m, self.filter_size, self.strides, pad)

        return n, size(h), size(w), c

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filter_size": self.filter_size, "strides": self.strides}


@keras_builder(spec.BlurPool)
def _blur_pool(s: spec.BlurPool, name: str) -> BlurPool:
    return BlurPool(s.filter_size, s.stride, name=name)


@keras.saving.register_keras_serializable(package="dsbench")
class LpPool(keras.layers.Layer):
    """Lp pooling: (mean over the window of |x|^p)^(1/p).

    The mean, not the sum, so p = 1 is exactly the average of |x| (the avg pool on ReLU
    outputs) and p → ∞ tends to the max; the sum would be the mean × window area^(1/p).
    With "same" padding the mean is over the window's pixels inside the map, as Keras'
    average pool.

    Numerics. Each map (one image, one channel) is divided by its largest |x| before
    the power and multiplied back after the root, which changes nothing mathematically
    but keeps the powers in [0, 1]: |x|^p itself overflows float32 for large p (100^20
    > 3.4e38). eps inside the root keeps its slope finite on all-zero windows (dead
    ReLUs), where the p-th root is not differentiable; 1e-30 is a normal float32 and
    bfloat16 number, (1/p)·eps^(1/p − 1) stays below float32's maximum for every p, and
    an all-zero window gives max|x|·eps^(1/p) (1e-10 × the map's max at p = 3).
    """

    def __init__(
        self,
        p: float = 3.0,
        pool_size: int = 2,
        strides: int = 2,
        padding: str = "valid",
        eps: float = 1e-30,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.p = p
        self.pool_size = pool_size
        self.strides = strides
        self.padding = padding
        self.eps = eps

    def call(self, x: Any) -> Any:
        magnitude = ops.abs(x)
        # (n, 1, 1, c): the largest |x| of each map; 1 for an all-zero map (no 0/0).
        scale = ops.max(magnitude, axis=(1, 2), keepdims=True)
        scale = ops.where(scale > 0, scale, ops.ones_like(scale))
        powered = ops.power(magnitude / scale, self.p)  # in [0, 1]
        mean = ops.average_pool(powered, self.pool_size, self.strides, self.padding)
        return scale * ops.power(mean + self.eps, 1.0 / self.p)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return _pool_shape(input_shape, self.pool_size, self.strides, self.padding)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "p": self.p,
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "eps": self.eps,
        }


@keras_builder(spec.LpPool)
def _lp_pool(s: spec.LpPool, name: str) -> LpPool:
    return LpPool(s.p, s.window, s.stride, s.padding, name=name)


@keras.saving.register_keras_serializable(package="dsbench")
class MixedPool(keras.layers.Layer):
    """Mixed max-average pooling: α·max + (1 − α)·avg over the same window.

    Lee et al. 2016, "Generalizing Pooling Functions in CNNs: Mixed, Gated, and Tree".
    With `learn_alpha`, α = sigmoid(w) for one trainable scalar w per layer (the paper's
    "one mixing proportion per layer" variant), started at w = logit(alpha) so the layer
    begins at the configured mix; the sigmoid keeps α in (0, 1) without clipping. That is
    the only weight: 1 parameter per layer, 0 without `learn_alpha`.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        learn_alpha: bool = False,
        pool_size: int = 2,
        strides: int = 2,
        padding: str = "valid",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.alpha = alpha
        self.learn_alpha = learn_alpha
        self.pool_size = pool_size
        self.strides = strides
        self.padding = padding

    def build(self, input_shape: tuple) -> None:
        if self.learn_alpha:
            logit = math.log(self.alpha / (1 - self.alpha))  # sigmoid(logit) = alpha
            self.alpha_logit = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(logit),
                trainable=True,
                name="alpha_logit",
            )

    def mixing_weight(self) -> Any:
        """α: the fixed value, or sigmoid of the learned logit."""
        if self.learn_alpha:
            return ops.sigmoid(self.alpha_logit)
        return self.alpha

    def call(self, x: Any) -> Any:
        alpha = self.mixing_weight()
        peak = ops.max_pool(x, self.pool_size, self.strides, self.padding)
        mean = ops.average_pool(x, self.pool_size, self.strides, self.padding)
        return alpha * peak + (1 - alpha) * mean

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return _pool_shape(input_shape, self.pool_size, self.strides, self.padding)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "learn_alpha": self.learn_alpha,
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
        }


@keras_builder(spec.MixedPool)
def _mixed_pool(s: spec.MixedPool, name: str) -> MixedPool:
    return MixedPool(s.alpha, s.learn_alpha, s.window, s.stride, s.padding, name=name)


@keras.saving.register_keras_serializable(package="dsbench")
class SpaceToDepth(keras.layers.Layer):
    """Pixel unshuffle: each block×block patch becomes block² × the channels of one pixel.

    The inverse of Shi et al. 2016's sub-pixel shuffle; downsampling that drops nothing
    (a learned 1×1 conv after it decides what to keep). Channel order is TensorFlow's
    `space_to_depth`: out[i, j, (dy·block + dx)·C + c] = x[block·i + dy, block·j + dx, c].

    Maps not divisible by block follow the slot's padding: "valid" drops the last
    rows/columns (11 → 5, as a valid 2×2 pool), "same" zero-pads them at the end
    (11 → 6, as a "same" pool), so out = floor((n − b + 2p)/b) + 1 either way.
    """

    def __init__(self, block: int = 2, padding: str = "valid", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.block = block
        self.padding = padding

    def call(self, x: Any) -> Any:
        b = self.block
        _, h, w, c = x.shape
        if self.padding == "valid":
            x = x[:, : h // b * b, : w // b * b, :]  # (n, b·⌊h/b⌋, b·⌊w/b⌋, c)
        else:
            x = ops.pad(x, ((0, 0), (0, -h % b), (0, -w % b), (0, 0)))  # (n, b·⌈h/b⌉, …)
        ho, wo = x.shape[1] // b, x.shape[2] // b
        x = ops.reshape(x, (-1, ho, b, wo, b, c))  # (n, i, dy, j, dx, c)
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # (n, i, j, dy, dx, c)
        return ops.reshape(x, (-1, ho, wo, b * b * c))  # (n, i, j, b²·c)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        n, h, w, c = _pool_shape(input_shape, self.block, self.block, self.padding)
        return n, h, w, self.block * self.block * c

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "block": self.block, "padding": self.padding}


@keras_builder(spec.SpaceToDepth)
def _space_to_depth(s: spec.SpaceToDepth, name: str) -> SpaceToDepth:
    return SpaceToDepth(s.block, s.padding, name=name)


def _pool_shape(input_shape: tuple, k: int, s: int, padding: str) -> tuple:
    """A k×k, stride-s window's output shape under Keras' `padding` (None stays None)."""
    n, h, w, c = input_shape

    def size(m: int | None) -> int | None:
        return None if m is None else window_size(m, k, s, padding)

    return n, size(h), size(w), c
