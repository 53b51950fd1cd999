"""Layer specs: what a model is made of, as plain data.

A model is planned as a list of these specs before any framework is touched, so that
shapes, parameters and FLOPs are predicted (and bad geometry rejected) in pure Python.
`dsbench.frameworks` turns each spec into its Keras layer and its PyTorch module, with the
builder registered for the spec's class (`@keras_builder`, `@torch_builder`); this module
imports neither framework.

Parameters: weights and biases of the convolution and dense layers, and MixedPool's learned
α; the tests check every count against Keras' own.

FLOPs are multiply-adds × 2 of the convolution and dense layers (bias adds, activations,
pooling and normalisation are not counted, as in most papers' tables). The fixed blur
filter of BlurPool counts: it is a depthwise convolution, whether learned or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dsbench.errors import DsbenchError
from dsbench.model.geometry import out_size, window_out

Shape = tuple[int, ...]  # one image: (height, width, channels), or (features,) once flat


def scaled(filters: int, width: float) -> int:
    """A conv's filters at `model.width`: rounded half up, at least 1."""
    return max(1, int(filters * width + 0.5))


class Spec:
    """Defaults for a layer spec: it keeps the shape and costs no multiply-adds."""

    def output_shape(self, name: str, x: Shape) -> Shape:
        return x

    def flops(self, x: Shape) -> int:
        return 0

    def params(self, x: Shape) -> int:
        return 0

    def state(self, x: Shape) -> int:
        """Values kept but not trained (a batch norm's moving statistics)."""
        return 0


@dataclass(frozen=True)
class Rescale(Spec):
    """uint8 pixels → [0, 1] inside the model, so data can stay uint8 everywhere else."""

    scale: float = 1 / 255


@dataclass(frozen=True)
class Conv(Spec):
    filters: int
    kernel: int
    stride: int = 1
    padding: str = "valid"
    activation: str | None = "relu"
    # "same" only: zeros, or circular (the map wraps around; same sizes, params and FLOPs).
    padding_mode: str = "zeros"
    bias: bool = True  # False before a batch norm, whose β is the bias

    def output_shape(self, name: str, x: Shape) -> Shape:
        h, w, _ = x
        return (
            window_out(name, h, self.kernel, self.stride, self.padding),
            window_out(name, w, self.kernel, self.stride, self.padding),
            self.filters,
        )

    def flops(self, x: Shape) -> int:
        h, w, c = self.output_shape("", x)
        return 2 * self.kernel * self.kernel * x[2] * c * h * w

    def params(self, x: Shape) -> int:
        return (self.kernel * self.kernel * x[2] + self.bias) * self.filters  # weights + biases


@dataclass(frozen=True)
class Pool(Spec):
    kind: str  # "max" | "avg"
    window: int
    stride: int
    padding: str = "valid"

    def output_shape(self, name: str, x: Shape) -> Shape:
        h, w, c = x
        return (
            window_out(name, h, self.window, self.stride, self.padding),
            window_out(name, w, self.window, self.stride, self.padding),
            c,
        )


class PoolGeometry(Spec):
    """A pool over the subclass's `window`, `stride` and `padding` fields: max pooling's
    output size (0 params and FLOPs unless the subclass says otherwise)."""

    window: int
    stride: int
    padding: str

    def output_shape(self, name: str, x: Shape) -> Shape:
        return Pool("max", self.window, self.stride, self.padding).output_shape(name, x)


@dataclass(frozen=True)
class Dropout(Spec):
    rate: float


@dataclass(frozen=True)
class Flatten(Spec):
    def output_shape(self, name: str, x: Shape) -> Shape:
        h, w, c = x
        return (h * w * c,)


@dataclass(frozen=True)
class Dense(Spec):
    units: int
    bias: bool = True

    def output_shape(self, name: str, x: Shape) -> Shape:
        return (self.units,)

    def flops(self, x: Shape) -> int:
        return 2 * x[0] * self.units

    def params(self, x: Shape) -> int:
        return (x[0] + self.bias) * self.units


@dataclass(frozen=True)
class GlobalAvgPool(Spec):
    def output_shape(self, name: str, x: Shape) -> Shape:
        return (x[2],)


@dataclass(frozen=True)
class GlobalMaxPool(Spec):
    def output_shape(self, name: str, x: Shape) -> Shape:
        return (x[2],)


@dataclass(frozen=True)
class BatchNorm(Spec):
    """Batch normalisation per channel (Ioffe & Szegedy 2015): γ and β trained (2·C params),
    the moving mean and variance kept (2·C more, not trained: `state`)."""

    momentum: float = 0.9

    def params(self, x: Shape) -> int:
        return 2 * x[-1]

    def state(self, x: Shape) -> int:
        return 2 * x[-1]


@dataclass(frozen=True)
class Activation(Spec):
    kind: str = "relu"  # relu | gelu


@dataclass(frozen=True)
class Add(Spec):
    """A residual block's main path + shortcut (shapes checked by Residual)."""


@dataclass(frozen=True)
class ChannelPad(Spec):
    """Zero channels appended up to `channels`: option A's parameter-free shortcut."""

    channels: int

    def output_shape(self, name: str, x: Shape) -> Shape:
        return (*x[:2], self.channels)


@dataclass(frozen=True)
class Subsample(Spec):
    """x[::s, ::s]: option A's shortcut beside a strided conv (ceil(n / s), as "same")."""

    stride: int = 2

    def output_shape(self, name: str, x: Shape) -> Shape:
        return (-(-x[0] // self.stride), -(-x[1] // self.stride), x[2])


@dataclass(frozen=True)
class Softmax(Spec):
    """Class probabilities, always in float32 so mixed precision keeps a stable loss."""


# Downsampling layers Keras has no layer for; their Keras side is dsbench.frameworks.keras_layers.


@dataclass(frozen=True)
class BlurPool(Spec):
    """Fixed binomial low-pass filter, depthwise, stride `stride` (Zhang 2019).

    Reflect padding of filter_size − 1 in total: out = floor((n − f + f − 1)/s) + 1 =
    ceil(n / s), the size of Keras "same". After a stride-1 max pool of the slot's window
    and padding this gives the slot's own size (see dsbench.model.downsample.blur_pool). No params;
    FLOPs: the filter's f·f multiply-adds per output pixel and channel, × 2.
    """

    filter_size: int = 3
    stride: int = 2

    def output_shape(self, name: str, x: Shape) -> Shape:
        h, w, c = x
        pad = self.filter_size - 1
        # Reflect padding mirrors pixels inside the map, so each side's pad (at most
        # ceil((f − 1)/2)) must be smaller than the map.
        if min(h, w) <= -(-pad // 2):
            raise DsbenchError(
                f"layer {name} ({self.filter_size}×{self.filter_size} blur, reflect padding) "
                f"needs a map larger than {-(-pad // 2)}×{-(-pad // 2)}, got {h}×{w}; "
                f"use a smaller downsample.filter_size or a larger input"
            )
        return (
            out_size(h, self.filter_size, self.stride, pad),
            out_size(w, self.filter_size, self.stride, pad),
            c,
        )

    def flops(self, x: Shape) -> int:
        h, w, c = self.output_shape("", x)
        return 2 * self.filter_size * self.filter_size * c * h * w


@dataclass(frozen=True)
class LpPool(PoolGeometry):
    """(mean over the window of |x|^p)^(1/p): p = 1 is avg of |x|, p → ∞ tends to max.

    Same geometry as Pool; 0 params, 0 FLOPs (a pool, as Pool counts).
    """

    p: float
    window: int
    stride: int
    padding: str = "valid"


@dataclass(frozen=True)
class MixedPool(PoolGeometry):
    """α·max + (1 − α)·avg over one window (Lee et al. 2016).

    Same geometry as Pool; 0 FLOPs (a pool). Params: 1 (the logit of α) with
    learn_alpha, else 0.
    """

    alpha: float
    learn_alpha: bool
    window: int
    stride: int
    padding: str = "valid"

    def params(self, x: Shape) -> int:
        return int(self.learn_alpha)  # the logit of α


@dataclass(frozen=True)
class SpaceToDepth(Spec):
    """Pixel unshuffle: block×block patches → block² × channels; nothing is dropped.

    A map not divisible by block follows `padding` like a block×block, stride-block pool:
    "valid" drops the last rows/columns (11 → 5), "same" zero-pads them (11 → 6). 0
    params, 0 FLOPs (a reshape).
    """

    block: int = 2
    padding: str = "valid"

    def output_shape(self, name: str, x: Shape) -> Shape:
        h, w, c = x
        return (
            window_out(name, h, self.block, self.block, self.padding),
            window_out(name, w, self.block, self.block, self.padding),
            self.block * self.block * c,
        )


@dataclass(frozen=True)
class SoftPool(PoolGeometry):
    """Σ eˣ·x / Σ eˣ over each window, per channel (Stergiou et al. 2021): a softmax-weighted
    mean, between avg (all equal) and max (one much larger).

    Same geometry as Pool; 0 params, 0 FLOPs (a pool, as Pool counts).
    """

    window: int
    stride: int
    padding: str = "valid"


@dataclass(frozen=True)
class LipPool(PoolGeometry):
    """Σ x·e^G / Σ e^G over each window, G = 12·sigmoid(a 3×3 "same" conv of x, C → C)
    (Gao et al. 2019's local importance pooling with its bounded logits); G ≡ const is avg.

    Same geometry as Pool. Params and FLOPs: those of the logit conv on the input map,
    9·C² + C and 2·9·C²·h·w.
    """

    window: int
    stride: int
    padding: str = "valid"
    logit_kernel: int = 3

    def flops(self, x: Shape) -> int:
        return self._logits(x).flops(x)

    def params(self, x: Shape) -> int:
        return self._logits(x).params(x)

    def _logits(self, x: Shape) -> Conv:
        return Conv(x[2], self.logit_kernel, 1, "same", activation=None)


@dataclass(frozen=True)
class StochasticPool(PoolGeometry):
    """Zeiler & Fergus 2013 on a ReLU map a ≥ 0: in training, one activation per window,
    drawn with pᵢ = aᵢ / Σa; at test, Σ pᵢ·aᵢ. Same geometry as Pool; 0 params, 0 FLOPs.
    """

    window: int
    stride: int
    padding: str = "valid"


@dataclass(frozen=True)
class PolyphasePool(Spec):
    """Adaptive polyphase sampling (Chaman & Dokmanić 2021): of the four stride-2 phases
    x[dy::2, dx::2], the one with the largest ℓ2 norm over the whole map of each image.

    An odd map follows `padding` as SpaceToDepth(2) does (valid drops the last row and
    column, same zero-pads them), so every phase has the same size. 0 params, 0 FLOPs.
    """

    padding: str = "valid"

    def output_shape(self, name: str, x: Shape) -> Shape:
        return Pool("max", 2, 2, self.padding).output_shape(name, x)


@dataclass(frozen=True)
class HaarPool(Spec):
    """One level of the orthonormal 2-D Haar transform over 2×2 blocks: the low-low band
    (a + b + c + d)/2 = 2 × the 2×2 average, or `bands="all"`: LL, LH, HL, HH as 4·C
    channels. Odd maps follow `padding` as SpaceToDepth(2). 0 params, 0 FLOPs (a pool).
    """

    bands: str = "ll"
    padding: str = "valid"

    def output_shape(self, name: str, x: Shape) -> Shape:
        h, w, c = Pool("max", 2, 2, self.padding).output_shape(name, x)
        return (h, w, c if self.bands == "ll" else 4 * c)


@dataclass(frozen=True)
class Pad(Spec):
    """Zero padding, (before, after) rows and columns: the input adapter for small images."""

    rows: tuple[int, int]
    cols: tuple[int, int]

    @classmethod
    def to_size(cls, x: Shape, size: int) -> Pad:
        """Centre an image in size × size (28×28 → 32×32: 2 px on each side)."""
        dh, dw = max(size - x[0], 0), max(size - x[1], 0)
        return cls((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2))

    def output_shape(self, name: str, x: Shape) -> Shape:
        return (x[0] + sum(self.rows), x[1] + sum(self.cols), x[2])


@dataclass(frozen=True)
class Augment(Spec):
    """Training-batch augmentation: random translations (≤ translate px) and flips.

    Identity at evaluation; see dsbench.frameworks.keras_model.augmentation_layers.
    """

    translate: int
    flip: bool
    image_size: int


Step = tuple[str, Spec, Shape, Shape]  # a layer's name, spec, input and output shapes


def walk(layers: tuple[tuple[str, Spec], ...] | list[tuple[str, Spec]], x: Shape) -> list[Step]:
    """Each named layer with its input and output shapes, in order."""
    steps = []
    for name, s in layers:
        out = s.output_shape(name, x)
        steps.append((name, s, x, out))
        x = out
    return steps


@dataclass(frozen=True)
class Shortcut:
    """One step of a residual shortcut; `shared`: the main path's own layer of that name."""

    name: str
    spec: Spec
    shared: bool
    input_shape: Shape
    output_shape: Shape


@dataclass(frozen=True)
class Residual(Spec):
    """x → activation(main(x) + shortcut(x)): He et al. 2016's basic block, `body` the main
    path (its last activation moved after the sum).

    The shortcut is parameter-free, option A, and downsamples as the main path does: where
    the main path's slot changes the size, x goes through the slot's own layers (the same
    layers, weights shared: no parameters added; APS keeps the phase the main path chose),
    its channels first zero-padded to the slot's width; where a strided conv does
    (downsample=strided, the original ResNet), x[::s, ::s]; then zero channels up to the
    main path's. Params: the main path's; FLOPs: the main path's plus the shared layers'
    on the shortcut (the sum, as bias adds, is not counted).
    """

    body: tuple[tuple[str, Spec], ...]
    slot: tuple[str, ...] = ()  # names of the body's slot layers
    activation: str | None = "relu"

    def output_shape(self, name: str, x: Shape) -> Shape:
        self.shortcut(name, x)  # raises where the two paths cannot be summed
        return walk(self.body, x)[-1][3]

    def shortcut(self, name: str, x: Shape) -> list[Shortcut]:
        """The shortcut's steps for input shape x (empty: the identity); DsbenchError where no
        parameter-free shortcut gives the main path's shape."""
        main = walk(self.body, x)
        out = main[-1][3]
        steps: list[Shortcut] = []

        def add(step_name: str, s: Spec, shared: bool) -> None:
            nonlocal x
            y = s.output_shape(step_name, x)
            steps.append(Shortcut(step_name, s, shared, x, y))
            x = y

        slot = [step for step in main if step[0] in self.slot]
        if slot and x[:2] != out[:2]:
            width = slot[0][2][-1]
            if x[-1] < width:
                add(f"{name}_shortcut_pad", ChannelPad(width), False)
            if x[-1] == width:
                for step_name, s, _, _ in slot:
                    add(step_name, s, True)
        if x[:2] != out[:2]:
            stride = math.prod(s.stride for _, s, _, _ in main if isinstance(s, Conv))
            add(f"{name}_shortcut_subsample", Subsample(stride), False)
        if x[-1] < out[-1]:
            add(f"{name}_shortcut_pad", ChannelPad(out[-1]), False)
        if x != out:
            raise DsbenchError(
                f"layer {name}: its shortcut gives {'×'.join(map(str, x))} but its main path "
                f'{"×".join(map(str, out))}; a residual block needs "same" convs and no '
                "fewer channels out than in"
            )
        return steps

    def flops(self, x: Shape) -> int:
        main = sum(s.flops(i) for _, s, i, _ in walk(self.body, x))
        return main + sum(t.spec.flops(t.input_shape) for t in self.shortcut("", x))

    def params(self, x: Shape) -> int:
        return sum(s.params(i) for _, s, i, _ in walk(self.body, x))

    def state(self, x: Shape) -> int:
        return sum(s.state(i) for _, s, i, _ in walk(self.body, x))


LayerSpec = (
    Rescale
    | Pad
    | Augment
    | Conv
    | Pool
    | Dropout
    | Flatten
    | Dense
    | GlobalAvgPool
    | Softmax
    | BlurPool
    | LpPool
    | MixedPool
    | SpaceToDepth
    | SoftPool
    | LipPool
    | StochasticPool
    | PolyphasePool
    | HaarPool
    | GlobalMaxPool
    | BatchNorm
    | Activation
    | Add
    | ChannelPad
    | Subsample
    | Residual
)
