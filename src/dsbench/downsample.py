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

(C: the block's width.) Springenberg et al. 2015 for strided / conv / convpool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dsbench.config import DownsampleConfig
from dsbench.layers import Conv, LayerSpec, Pool


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


STRATEGIES: dict[str, Strategy] = {
    "max": max_pool,
    "avg": avg_pool,
    "overlap": overlapping_max_pool,
    "strided": strided_conv,
    "conv": learned_conv,
    "convpool": conv_then_pool,
}

DESCRIPTIONS: dict[str, str] = {
    "max": "max pool over the backbone's window (2×2 s2 in convnet)",
    "avg": "average pool over the same window (sum pooling = avg × window area)",
    "overlap": "overlapping max pool, 3×3 stride 2",
    "strided": "no pool: the conv before the slot gets stride 2",
    "conv": "learned 3×3 stride-2 conv of the block's width",
    "convpool": "extra 3×3 conv of the block's width, then max pool",
}
