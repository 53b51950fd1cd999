"""Downsampling strategies: each one fills a backbone's downsampling slot.

A slot sits after the last conv of a block. A strategy returns the layers that go in the
slot and whether the conv before the slot takes stride 2 instead (Springenberg et al.'s
"Strided" variant). The backbone fixes the slot's geometry (window, stride, padding), so
swapping the strategy is the only thing that changes between two models.

| name    | what fills the slot                                   | extra params      |
|---------|-------------------------------------------------------|-------------------|
| max     | max pool, backbone window (2×2 s2 in convnet)         | 0                 |
| avg     | average pool, same window (sum pool = avg × k²)       | 0                 |
| overlap | max pool 3×3 stride 2 (Krizhevsky et al. 2012)        | 0                 |
| strided | nothing; the conv before the slot gets stride 2       | 0                 |
| conv    | learned 3×3 stride-2 conv, block width (All-CNN)      | 9·C² + C          |
| convpool| extra 3×3 stride-1 conv, then max pool (ConvPool-CNN) | 9·C² + C          |
| blur    | max pool stride 1, then fixed f×f binomial blur,      | 0                 |
|         | stride 2, reflect padding (Zhang 2019)                |                   |
| lp      | Lp pool, same window: (mean of abs(x)^p)^(1/p), p = 3 | 0                 |
| mixed   | α·max + (1 − α)·avg, same window (Lee et al. 2016)    | 0 (learn_alpha: 1)|
| s2d     | 2×2 space-to-depth (4·C channels), 1×1 conv to C      | 4·C² + C          |

(C: the block's width; k: the window; f: downsample.filter_size.) Springenberg et al.
2015 for strided / conv / convpool. Sum pooling needs no entry: it is avg × window area
(k² here), a constant factor the next conv absorbs.

blur, lp, mixed and s2d give exactly max's output size, floor((n − k + 2p)/s) + 1 with
the slot's window, stride and padding (s2d: k = s = its block), so after the slot the
model is the same layers as with max. FLOPs count convolutions only (dsbench.layers):
pools, lp, mixed and the space-to-depth reshape add 0; blur adds 2·f²·C per output pixel
(its fixed filter is a depthwise conv) and s2d's 1×1 conv 2·4C·C per output pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dsbench.config import DownsampleConfig
from dsbench.layers import BlurPool, Conv, LayerSpec, LpPool, MixedPool, Pool, SpaceToDepth


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


Strategy = Callable[[Slot, DownsampleConfig], Fill]


def _window(slot: Slot, cfg: DownsampleConfig) -> tuple[int, int]:
    return cfg.window or slot.window, cfg.stride or slot.stride


def max_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    k, s = _window(slot, cfg)
    return Fill((Pool("max", k, s, slot.padding),))


def avg_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    k, s = _window(slot, cfg)
    return Fill((Pool("avg", k, s, slot.padding),))


def overlapping_max_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    k, s = cfg.window or 3, cfg.stride or 2
    return Fill((Pool("max", k, s, slot.padding),))


def strided_conv(slot: Slot, cfg: DownsampleConfig) -> Fill:
    return Fill(stride_previous_conv=True)


def learned_conv(slot: Slot, cfg: DownsampleConfig) -> Fill:
    k, s = cfg.window or 3, cfg.stride or 2
    return Fill((Conv(slot.width, k, s, slot.padding),))


def conv_then_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    # The extra conv keeps the map size ("same"), so only capacity changes, not geometry.
    k, s = _window(slot, cfg)
    return Fill((Conv(slot.width, 3, 1, "same"), Pool("max", k, s, slot.padding)))


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


def lp_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """Lp pooling over max's window: (mean over the window of |x|^p)^(1/p), p = cfg.p.

    The mean, so p = 1 is the average of |x| (= avg on ReLU maps) and p → ∞ tends to
    max; between them, larger activations weigh more (Sermanet et al. 2012 use it for
    house numbers; Gulcehre et al. 2014 learn p). Extra params: 0.
    """
    k, s = _window(slot, cfg)
    return Fill((LpPool(cfg.p, k, s, slot.padding),))


def mixed_pool(slot: Slot, cfg: DownsampleConfig) -> Fill:
    """Mixed max-average pooling (Lee et al. 2016, "Generalizing Pooling Functions in
    CNNs"): α·max + (1 − α)·avg over max's window.

    α = cfg.alpha, fixed; with cfg.learn_alpha, α = sigmoid(w) with one learned w per
    slot, started at logit(alpha). Extra params: 0, or 1 per slot with learn_alpha.
    """
    k, s = _window(slot, cfg)
    return Fill((MixedPool(cfg.alpha, cfg.learn_alpha, k, s, slot.padding),))


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


STRATEGIES: dict[str, Strategy] = {
    "max": max_pool,
    "avg": avg_pool,
    "overlap": overlapping_max_pool,
    "strided": strided_conv,
    "conv": learned_conv,
    "convpool": conv_then_pool,
    "blur": blur_pool,
    "lp": lp_pool,
    "mixed": mixed_pool,
    "s2d": space_to_depth,
}

DESCRIPTIONS: dict[str, str] = {
    "max": "max pool over the backbone's window (2×2 s2 in convnet)",
    "avg": "average pool over the same window (sum pooling = avg × window area)",
    "overlap": "overlapping max pool, 3×3 stride 2",
    "strided": "no pool: the conv before the slot gets stride 2",
    "conv": "learned 3×3 stride-2 conv of the block's width",
    "convpool": "extra 3×3 conv of the block's width, then max pool",
    "blur": "anti-aliased: max pool at stride 1, then a fixed binomial blur at stride 2",
    "lp": "Lp pool, (mean of abs(x)^p)^(1/p) over the window: p = 1 avg, p → ∞ max",
    "mixed": "α·max + (1 − α)·avg over the window; α fixed or learned (1 param per slot)",
    "s2d": "space-to-depth 2×2 (4× channels, nothing dropped), then 1×1 conv to the width",
}
