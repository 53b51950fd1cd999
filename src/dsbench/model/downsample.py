"""Downsampling strategies: each one fills a backbone's downsampling slot.

A slot sits after the last conv of a block. A strategy returns the layers that go in the
slot and whether the conv before the slot takes stride 2 instead (Springenberg et al.'s
"Strided" variant). The backbone fixes the slot's geometry (window, stride, padding), so
swapping the strategy is the only thing that changes between two models.

Each strategy is one function registered with `@strategy(name, description, capacity=)`: the
description is the one source of what it does (README table, `describe`, docs); the
docstring says why, with the paper. `dsbench describe downsample=<name>` and the
README table (`python -m dsbench.tools.docs`) give each one's shapes, params and FLOPs.

All strategies but strided and overlap give exactly max's output size,
floor((n − k + 2p)/s) + 1 with the slot's window, stride and padding (s2d: k = s = its
block), so after the slot the model is the same layers as with max. Sum pooling needs no
entry: it is avg × window area, a constant factor the next conv absorbs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dsbench.config import DownsampleConfig
from dsbench.errors import DsbenchError
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


@dataclass(frozen=True)
class Slot:
    """Where a strategy goes: the block's width and the backbone's pooling geometry."""

    width: int
    window: int
    stride: int
    padding: str


@dataclass(frozen=True)
class Fill:
    layers: tuple[LayerSpec, ...] = ()
    stride_previous_conv: bool = False


FillFn = Callable[[Slot, DownsampleConfig], Fill]


# What a strategy adds over max pooling in the same backbone: the table's capacity column.
# Only the parameter-free classes "differ only in downsampling" from max pooling; a learned
# strategy is compared as one that may also add capacity.
FREE = "parameter-free"
FEWER_FLOPS = "parameter-free, fewer FLOPs"  # strided: the conv computes ¼ of its positions
LEARNED = "learned downsampling"  # weights that do the downsampling
EXTRA = "extra capacity"  # a layer beside the downsampling (convpool's conv at stride 1)
CAPACITY_CLASSES = (FREE, FEWER_FLOPS, LEARNED, EXTRA)


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: its name, its one-line description, its capacity class, and
    the function."""

    name: str
    description: str
    capacity: str  # one of CAPACITY_CLASSES
    fill: FillFn

    def __call__(self, slot: Slot, cfg: DownsampleConfig) -> Fill:
        return self.fill(slot, cfg)


STRATEGIES: dict[str, Strategy] = {}  # in registration order: the order of every table


def strategy(name: str, description: str, *, capacity: str) -> Callable[[FillFn], FillFn]:
    """Register the decorated function as strategy `name` (what `downsample=name` selects),
    of capacity class `capacity` (CAPACITY_CLASSES: LEARNED for one whose weights can be
    configured away, e.g. mixed with a fixed α, which then counts as FREE)."""
    if capacity not in CAPACITY_CLASSES:
        raise ValueError(f"strategy {name!r}: capacity {capacity!r} is none of {CAPACITY_CLASSES}")

    def register(fill: FillFn) -> FillFn:
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} is registered twice")
        STRATEGIES[name] = Strategy(name, description, capacity, fill)
        return fill

    return register


def capacity_class(name: str, adds_params: bool | None = None) -> str:
    """The capacity class of strategy `name` as it was run: a LEARNED strategy that added
    no parameters over max pooling's model (mixed with a fixed α, wavelet's LL band) is
    FREE; `adds_params` None: unknown, the declared class. "unknown" for an unregistered name."""
    found = STRATEGIES.get(name)
    if found is None:
        return "unknown"
    if found.capacity == LEARNED and adds_params is False:
        return FREE
    return found.capacity


def _window(slot: Slot, cfg: DownsampleConfig) -> tuple[int, int]:
    return cfg.window or slot.window, cfg.stride or slot.stride


@strategy("max", "max pool over the backbone's window (2×2 s2 in convnet)", capacity=FREE)
def max_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    k, s = _window(slot, cfg)
    return Fill((Pool("max", k, s, slot.padding),))


@strategy(
    "avg", "average pool over the same window (sum pooling = avg × window area)", capacity=FREE
)
def avg_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    k, s = _window(slot, cfg)
    return Fill((Pool("avg", k, s, slot.padding),))


@strategy("overlap", "overlapping max pool, 3×3 stride 2", capacity=FREE)
def overlapping_max_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """Windows wider than their stride overlap (Krizhevsky et al. 2012, AlexNet); the
    window is 3 whatever the backbone's, so on convnet's valid slots 26 → 12, 11 → 5."""
    k, s = cfg.window or 3, cfg.stride or 2
    return Fill((Pool("max", k, s, slot.padding),))


@strategy("strided", "no pool: the conv before the slot gets stride 2", capacity=FEWER_FLOPS)
def strided_conv(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """Springenberg et al. 2015's Strided-CNN: the slot is removed and the conv before it
    subsamples. Fewer FLOPs than any pool, no extra params."""
    return Fill(stride_previous_conv=True)


@strategy("conv", "learned 3×3 stride-2 conv of the block's width", capacity=LEARNED)
def learned_conv(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """Springenberg et al. 2015's All-CNN: the pool becomes a learned 3×3 stride-2 conv of
    the block's width C. Extra params: 9·C² + C."""
    k, s = cfg.window or 3, cfg.stride or 2
    return Fill((Conv(slot.width, k, s, slot.padding),))


@strategy("convpool", "extra 3×3 conv of the block's width, then max pool", capacity=EXTRA)
def conv_then_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """Springenberg et al. 2015's ConvPool-CNN, the control for All-CNN: the same extra conv
    (3×3, width C, stride 1, "same") before an unchanged max pool, so All-CNN's gain can be
    told apart from its extra capacity. Extra params: 9·C² + C."""
    k, s = _window(slot, cfg)
    return Fill((Conv(slot.width, 3, 1, "same"), Pool("max", k, s, slot.padding)))


@strategy(
    "blur",
    "anti-aliased: max pool at stride 1, then a fixed binomial blur at stride 2",
    capacity=FREE,
)
def blur_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """Anti-aliased max pool (Zhang 2019, "Making Convolutional Networks Shift-Invariant
    Again", MaxBlurPool): max over the slot's window at stride 1, then a fixed
    filter_size² binomial low-pass filter, depthwise, at the slot's stride.

    Sizes: the stride-1 max pool keeps the slot's padding (valid: n − k + 1, same: n);
    the blur is reflect-padded by f − 1 (as the paper's code, so borders are not dimmed
    as zero padding would) and gives ceil(m / s). Both compose to the slot's own size:
    valid ceil((n − k + 1)/s) = floor((n − k)/s) + 1, same ceil(n / s). Convnet: 26 →
    25 → 13, 11 → 10 → 5. Extra params: 0 (the filter is a constant). FLOPs: 2·f²·C
    per output pixel.
    """
    k, s = _window(slot, cfg)
    return Fill((Pool("max", k, 1, slot.padding), BlurPool(cfg.filter_size, s)))


@strategy(
    "lp", "Lp pool, (mean of abs(x)^p)^(1/p) over the window: p = 1 avg, p → ∞ max", capacity=FREE
)
def lp_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """Lp pooling over max's window: (mean over the window of |x|^p)^(1/p), p = cfg.p.

    The mean, so p = 1 is the average of |x| (= avg on ReLU maps) and p → ∞ tends to
    max; between them, larger activations weigh more (Sermanet et al. 2012 use it for
    house numbers; Gulcehre et al. 2014 learn p). Extra params: 0.
    """
    k, s = _window(slot, cfg)
    return Fill((LpPool(cfg.p, k, s, slot.padding),))


@strategy(
    "mixed",
    "α·max + (1 − α)·avg over the window; α fixed or learned (1 param per slot)",
    capacity=LEARNED,
)
def mixed_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """Mixed max-average pooling (Lee et al. 2016, "Generalizing Pooling Functions in
    CNNs"): α·max + (1 − α)·avg over max's window.

    α = cfg.alpha, fixed; with cfg.learn_alpha, α = sigmoid(w) with one learned w per
    slot, started at logit(alpha). Extra params: 0, or 1 per slot with learn_alpha.
    """
    k, s = _window(slot, cfg)
    return Fill((MixedPool(cfg.alpha, cfg.learn_alpha, k, s, slot.padding),))


@strategy(
    "s2d",
    "space-to-depth 2×2 (4× channels, nothing dropped), then 1×1 conv to the width",
    capacity=LEARNED,
)
def space_to_depth(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """Space-to-depth then a 1×1 conv (ReLU) back to the block width: downsampling that
    loses nothing before the learned projection (the pixel unshuffle of Shi et al. 2016
    run backwards, as in SPD-Conv, Sunkara & Luo 2022).

    Block b = the slot's stride (2): (n, n, C) → (n/b, n/b, b²·C) → (n/b, n/b, C). Odd
    maps follow the slot's padding: valid drops the last row/column (convnet's 11 → 5,
    as a valid 2×2 pool), same zero-pads it. The window is not used. Extra params:
    b²·C·C + C (4·C² + C); FLOPs: the 1×1 conv, 2·b²·C·C per output pixel.
    """
    b = cfg.stride or slot.stride
    return Fill((SpaceToDepth(b, slot.padding), Conv(slot.width, 1)))


# The strategies of the literature since 2013, compared today on residual nets (docs/models.md).


@strategy(
    "softpool", "Σ eˣ·x / Σ eˣ over the window: a softmax-weighted mean, avg to max", capacity=FREE
)
def soft_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """SoftPool (Stergiou et al. 2021, "Refining activation downsampling with SoftPool"):
    each activation weighs in by eˣ, so larger ones dominate without max's single winner,
    and every activation gets a gradient. Computed per window as a softmax (stable for any
    scale). Over max's window. Extra params: 0."""
    k, s = _window(slot, cfg)
    return Fill((SoftPool(k, s, slot.padding),))


@strategy(
    "lip",
    "Σ x·e^G / Σ e^G over the window, G a learned 3×3 conv (9·C² + C params)",
    capacity=LEARNED,
)
def local_importance_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """LIP, local importance pooling (Gao et al. 2019): SoftPool with the weights' logits G
    learned, G(x) = 12·sigmoid(conv3×3(x)) as the paper's SimplifiedLIP (bounded, so
    e^G cannot overflow; without its instance norm, as the backbones here have none).
    G ≡ constant is avg pooling; G = x is SoftPool. Over max's window. Extra params: the
    logit conv, 9·C² + C, the same as convpool's conv."""
    k, s = _window(slot, cfg)
    return Fill((LipPool(k, s, slot.padding),))


@strategy(
    "stochastic",
    "one activation per window drawn with p ∝ a in training; Σ p·a at test",
    capacity=FREE,
)
def stochastic_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """Stochastic pooling (Zeiler & Fergus 2013): a regulariser, since each training step
    sees another activation of each window; at test the expectation Σ pᵢ·aᵢ, pᵢ = aᵢ/Σa.
    Defined on non-negative maps: the slot follows a ReLU conv in every backbone, and the
    layer clips at 0 to be sure. Over max's window. Extra params: 0."""
    k, s = _window(slot, cfg)
    return Fill((StochasticPool(k, s, slot.padding),))


def _stride_two(name: str, slot: Slot, cfg: DownsampleConfig) -> None:
    stride = cfg.stride or slot.stride
    if stride != 2:
        raise DsbenchError(
            f"downsample={name} subsamples by 2 (four 2×2 phases), but the slot's stride is "
            f"{stride}; use downsample.stride=2 or another strategy"
        )


@strategy(
    "aps",
    "adaptive polyphase sampling: of the 4 stride-2 phases, the largest in ℓ2 norm",
    capacity=FREE,
)
def adaptive_polyphase(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """APS (Chaman & Dokmanić 2021, "Truly shift-invariant convolutional neural networks"):
    stride-2 subsampling that keeps whichever of the four phases has the largest ℓ2 norm,
    so a circular shift of the input picks the shifted phase and the output only shifts
    (exact with circular conv padding and circular shifts). With downsample.aps_blur, the
    binomial blur (filter_size, at stride 1) first, as the paper's APS-LPF. The window is
    not used (the phases are 2×2). Extra params: 0."""
    _stride_two("aps", slot, cfg)
    phases = PolyphasePool(slot.padding)
    return Fill((BlurPool(cfg.filter_size, 1), phases) if cfg.aps_blur else (phases,))


@strategy(
    "wavelet",
    "Haar wavelet: the LL band (2 × the 2×2 mean), or all 4 bands + 1×1 conv",
    capacity=LEARNED,
)
def haar_wavelet(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """Haar wavelet pooling (Williams & Li 2018; WaveCNet, Li et al. 2020): one level of
    the orthonormal 2-D Haar transform keeps the low-low band, (a + b + c + d)/2 over each
    2×2 block, 2 × the average (the factor is the transform's, kept so the band keeps the
    map's energy). With downsample.bands=all, the four bands become 4·C channels and a
    1×1 conv (ReLU) maps them back to C: an orthogonal rotation of s2d, with s2d's extra
    params, 4·C² + C. The window is not used."""
    _stride_two("wavelet", slot, cfg)
    if cfg.bands == "ll":
        return Fill((HaarPool("ll", slot.padding),))
    return Fill((HaarPool("all", slot.padding), Conv(slot.width, 1)))
