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
| SoftPool     | softpool | Stergiou et al. 2021, Refining activation downsampling with SoftPool |
| LipPool      | lip      | Gao et al. 2019, LIP: Local Importance-based Pooling            |
| StochasticPool | stochastic | Zeiler & Fergus 2013, Stochastic Pooling                   |
| PolyphasePool | aps     | Chaman & Dokmanić 2021, Truly shift-invariant CNNs              |
| HaarPool     | wavelet  | Williams & Li 2018; Li et al. 2020, WaveCNet                    |

CircularConv2D is a "same" conv whose map wraps around (`model.padding_mode=circular`);
ChannelPad and Subsample make a residual block's parameter-free (option A) shortcut.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from dsbench.frameworks.builders import keras_builder
from dsbench.model import layers as spec
from dsbench.model.geometry import out_size, total_padding, window_size

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


def windows(x: Any, k: int, s: int, padding: str, fill: float = 0.0) -> Any:
    """(n, h, w, c) → (n, oh, ow, k², c): the k×k window of every output pixel, its pixels
    in the order (dy, dx), under Keras' geometry (a "same" map is padded with `fill`, the
    extra pixel at the end). Exact for any window and stride, overlapping ones included."""
    _, h, w, _ = x.shape
    oh, ow = window_size(h, k, s, padding), window_size(w, k, s, padding)
    if padding == "same":
        (pt, pb), (pl, pr) = (_same_pads(h, k, s), _same_pads(w, k, s))
        x = ops.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    taps = [
        x[:, dy : dy + s * (oh - 1) + 1 : s, dx : dx + s * (ow - 1) + 1 : s, :]
        for dy in range(k)
        for dx in range(k)
    ]
    return ops.stack(taps, axis=3)


def _same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    total = total_padding(n, k, s, "same")
    return total // 2, total - total // 2


def weighted_mean(values: Any, logits: Any, valid: Any | None) -> Any:
    """Σ softmax(logits)·values over each window (axis 3): stable for any logits, since the
    softmax subtracts each window's largest; `valid` (1 inside the map, 0 on "same" padding)
    keeps padded pixels out, as Keras' average pool does."""
    if valid is not None:
        logits = ops.where(valid > 0, logits, ops.full_like(logits, -1e9))
    weights = ops.softmax(logits, axis=3)
    return ops.sum(weights * values, axis=3)


def _inside(x: Any, k: int, s: int, padding: str) -> Any | None:
    """1 on the map's pixels, 0 on "same" padding, in windows(); None when nothing is padded."""
    if padding != "same":
        return None
    return windows(ops.ones_like(x[:1, :, :, :1]), k, s, padding)


class _WindowPool(keras.layers.Layer):
    """A pool over Keras' window geometry: pool_size, strides, padding."""

    def __init__(
        self, pool_size: int = 2, strides: int = 2, padding: str = "valid", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.strides = strides
        self.padding = padding

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return _pool_shape(input_shape, self.pool_size, self.strides, self.padding)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
        }


@keras.saving.register_keras_serializable(package="dsbench")
class SoftPool(_WindowPool):
    """SoftPool: Σ eˣ·x / Σ eˣ over each window, per channel (Stergiou et al. 2021).

    The reference divides two average pools of x·eˣ and eˣ, which overflows once x passes
    ~88 in float32 (~11 in float16); here the weights are a softmax over each window's own
    pixels, the same value computed stably. Padding of a "same" window is left out.
    """

    def call(self, x: Any) -> Any:
        k, s, padding = self.pool_size, self.strides, self.padding
        v = windows(x, k, s, padding)  # (n, oh, ow, k², c)
        return weighted_mean(v, v, _inside(x, k, s, padding))


@keras_builder(spec.SoftPool)
def _soft_pool(s: spec.SoftPool, name: str) -> SoftPool:
    return SoftPool(s.window, s.stride, s.padding, name=name)


@keras.saving.register_keras_serializable(package="dsbench")
class LipPool(_WindowPool):
    """Local importance pooling: Σ x·e^G / Σ e^G over each window (Gao et al. 2019), with
    G = 12·sigmoid(conv(x)), the paper's SimplifiedLIP logits (a k×k "same" conv C → C with
    bias; the paper's instance norm is left out, as the backbones here have no norm).

    Bounded logits keep e^G finite; the weights are a softmax over each window as in
    SoftPool. With the conv's weights and bias at zero, G = 6 everywhere: average pooling.
    """

    COEFF = 12.0  # the reference's bound on the logits (sebgao/LIP, lip_resnet.py)

    def __init__(
        self,
        pool_size: int = 2,
        strides: int = 2,
        padding: str = "valid",
        logit_kernel: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(pool_size, strides, padding, **kwargs)
        self.logit_kernel = logit_kernel

    def build(self, input_shape: tuple) -> None:
        self.logit_conv = keras.layers.Conv2D(
            input_shape[-1], self.logit_kernel, padding="same", name="logits"
        )
        self.logit_conv.build(input_shape)

    def call(self, x: Any) -> Any:
        k, s, padding = self.pool_size, self.strides, self.padding
        logits = self.COEFF * ops.sigmoid(self.logit_conv(x))  # (n, h, w, c), in (0, 12)
        return weighted_mean(
            windows(x, k, s, padding), windows(logits, k, s, padding), _inside(x, k, s, padding)
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "logit_kernel": self.logit_kernel}


@keras_builder(spec.LipPool)
def _lip_pool(s: spec.LipPool, name: str) -> LipPool:
    return LipPool(s.window, s.stride, s.padding, s.logit_kernel, name=name)


@keras.saving.register_keras_serializable(package="dsbench")
class StochasticPool(_WindowPool):
    """Stochastic pooling (Zeiler & Fergus 2013) of a map clipped at 0: pᵢ = aᵢ / Σa over
    each window. Training: one aᵢ per window and channel, drawn with probability pᵢ (the
    Gumbel-max trick: argmax of log pᵢ + Gumbel noise), so the gradient reaches the drawn
    pixel only. Inference: the expectation Σ pᵢ·aᵢ = Σa² / Σa. An all-zero window gives 0.
    Padding of a "same" window is 0, so it is never drawn and adds nothing.
    """

    def __init__(
        self,
        pool_size: int = 2,
        strides: int = 2,
        padding: str = "valid",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(pool_size, strides, padding, **kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x: Any, training: bool | None = None) -> Any:
        a = windows(ops.relu(x), self.pool_size, self.strides, self.padding)  # (n, oh, ow, k², c)
        total = ops.sum(a, axis=3, keepdims=True)
        if not training:
            return ops.sum(a * a, axis=3) / ops.maximum(ops.squeeze(total, 3), 1e-12)
        u = keras.random.uniform(ops.shape(a), minval=1e-7, maxval=1.0, seed=self.seed_generator)
        log_p = ops.where(a > 0, ops.log(ops.maximum(a, 1e-30)), ops.full_like(a, -1e9))
        drawn = ops.argmax(log_p - ops.log(-ops.log(u)), axis=3)  # (n, oh, ow, c)
        pick = ops.one_hot(drawn, ops.shape(a)[3], axis=3, dtype=a.dtype)
        return ops.sum(ops.stop_gradient(pick) * a, axis=3)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed}


@keras_builder(spec.StochasticPool)
def _stochastic_pool(s: spec.StochasticPool, name: str) -> StochasticPool:
    return StochasticPool(s.window, s.stride, s.padding, name=name)


def phases(x: Any, padding: str) -> Any:
    """(n, h, w, c) → (n, oh, ow, 4, c): the four stride-2 phases x[dy::2, dx::2] in the
    order (dy, dx); an odd map is cropped ("valid") or zero-padded at the end ("same")."""
    return windows(x, 2, 2, padding)


@keras.saving.register_keras_serializable(package="dsbench")
class PolyphasePool(keras.layers.Layer):
    """Adaptive polyphase sampling (Chaman & Dokmanić 2021): of the four stride-2 phases,
    keep the one with the largest ℓ2 norm over all its pixels and channels, per image (the
    reference's `apspool.py`, p = 2). The choice is a constant for the gradient, which flows
    through the kept phase only. A circular shift of the input by (dy, dx) makes the
    winning phase that of (dy mod 2, dx mod 2): the output is a shift of the unshifted one.
    """

    def __init__(self, padding: str = "valid", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding = padding

    def call(self, x: Any) -> Any:
        # [x, main]: a residual shortcut takes the phase its main path's map chose.
        x, chooser = x if isinstance(x, (list, tuple)) else (x, x)
        y = phases(x, self.padding)  # (n, oh, ow, 4, c)
        ref = phases(chooser, self.padding)
        norms = ops.sum(ops.square(ops.cast(ref, "float32")), axis=(1, 2, 4))  # (n, 4)
        pick = ops.one_hot(ops.argmax(norms, axis=1), 4, dtype=y.dtype)  # (n, 4)
        return ops.sum(ops.stop_gradient(pick)[:, None, None, :, None] * y, axis=3)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        if isinstance(input_shape, list):
            input_shape = input_shape[0]
        return _pool_shape(input_shape, 2, 2, self.padding)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": self.padding}


@keras_builder(spec.PolyphasePool)
def _polyphase_pool(s: spec.PolyphasePool, name: str) -> PolyphasePool:
    return PolyphasePool(s.padding, name=name)


@keras.saving.register_keras_serializable(package="dsbench")
class HaarPool(keras.layers.Layer):
    """One level of the orthonormal 2-D Haar transform over each 2×2 block [[a, b], [c, d]]:
    LL = (a + b + c + d)/2, LH = (a − b + c − d)/2 (changes along a row), HL = (a + b − c −
    d)/2 (down a column), HH = (a − b − c + d)/2. `bands="ll"` keeps LL (2 × the 2×2 mean);
    "all" returns LL, LH, HL, HH as 4·C channels, in that order. An odd map is cropped or
    zero-padded at the end as the slot's padding says.
    """

    def __init__(self, bands: str = "ll", padding: str = "valid", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bands = bands
        self.padding = padding

    def call(self, x: Any) -> Any:
        y = phases(x, self.padding)  # (n, oh, ow, 4, c): a, b, c, d of each block
        a, b, c, d = (y[:, :, :, i, :] for i in range(4))
        ll = (a + b + c + d) / 2
        if self.bands == "ll":
            return ll
        bands = [ll, (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2]
        return ops.concatenate(bands, axis=-1)  # (n, oh, ow, 4·c)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        n, h, w, c = _pool_shape(input_shape, 2, 2, self.padding)
        return n, h, w, c if self.bands == "ll" else 4 * c

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bands": self.bands, "padding": self.padding}


@keras_builder(spec.HaarPool)
def _haar_pool(s: spec.HaarPool, name: str) -> HaarPool:
    return HaarPool(s.bands, s.padding, name=name)


@keras.saving.register_keras_serializable(package="dsbench")
class ChannelPad(keras.layers.Layer):
    """Zero channels appended up to `channels` (option A's shortcut, He et al. 2016)."""

    def __init__(self, channels: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channels = channels

    def call(self, x: Any) -> Any:
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, self.channels - x.shape[-1]]])

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:3], self.channels)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "channels": self.channels}


@keras_builder(spec.ChannelPad)
def _channel_pad(s: spec.ChannelPad, name: str) -> ChannelPad:
    return ChannelPad(s.channels, name=name)


@keras.saving.register_keras_serializable(package="dsbench")
class Subsample(keras.layers.Layer):
    """x[::s, ::s] (option A's shortcut beside a strided conv)."""

    def __init__(self, stride: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stride = stride

    def call(self, x: Any) -> Any:
        return x[:, :: self.stride, :: self.stride, :]

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        def size(m: int | None) -> int | None:
            return None if m is None else -(-m // self.stride)

        return (input_shape[0], size(input_shape[1]), size(input_shape[2]), input_shape[3])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "stride": self.stride}


@keras_builder(spec.Subsample)
def _subsample(s: spec.Subsample, name: str) -> Subsample:
    return Subsample(s.stride, name=name)


def circular_pad(x: Any, rows: tuple[int, int], cols: tuple[int, int]) -> Any:
    """Pad (before, after) rows and columns with the map's own opposite edges."""
    for axis, (before, after) in ((1, rows), (2, cols)):
        n = x.shape[axis]
        parts = [x]
        if before:
            parts.insert(0, ops.take(x, list(range(n - before, n)), axis=axis))
        if after:
            parts.append(ops.take(x, list(range(after)), axis=axis))
        x = ops.concatenate(parts, axis=axis) if len(parts) > 1 else x
    return x


@keras.saving.register_keras_serializable(package="dsbench")
class CircularConv2D(keras.layers.Conv2D):
    """A "same" conv on a torus: the map is padded with its own opposite edges (as Keras
    pads "same": the total, the extra pixel at the end), then convolved "valid". A circular
    shift of the input then circularly shifts the output (stride 1) — the padding APS needs
    for exact shift invariance (Chaman & Dokmanić 2021, their issue #5). Same output size,
    weights and FLOPs as the zero-padded conv."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["padding"] = "valid"
        super().__init__(*args, **kwargs)

    def call(self, x: Any) -> Any:
        _, h, w, _ = x.shape
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        return super().call(circular_pad(x, _same_pads(h, kh, sh), _same_pads(w, kw, sw)))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        n, h, w, _ = input_shape

        def size(m: int | None, axis: int) -> int | None:
            return None if m is None else window_size(m, 1, self.strides[axis], "same")

        return n, size(h, 0), size(w, 1), self.filters
