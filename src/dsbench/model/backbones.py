"""Backbones: a list of blocks, each a few convs followed by one downsampling slot.

A backbone fixes the slot geometry (window, stride, padding) that every strategy is given,
and the dropout around the slots; it never says what fills a slot (dsbench.model.downsample)
nor what ends the model (dsbench.model.heads).
"""

from __future__ import annotations

from dataclasses import dataclass

from dsbench.model.layers import Conv


@dataclass(frozen=True)
class Block:
    convs: tuple[Conv, ...]  # then the downsampling slot


@dataclass(frozen=True)
class Backbone:
    blocks: tuple[Block, ...]
    pool_window: int  # the slot geometry every strategy is given
    pool_stride: int
    pool_padding: str
    input_dropout: float = 0.0
    slot_dropout: float = 0.0  # after each downsampling slot
    description: str = ""


def _allconv_backbone(block1: tuple[Conv, ...], block2: tuple[Conv, ...], name: str) -> Backbone:
    return Backbone(
        blocks=(Block(block1), Block(block2)),
        pool_window=3,
        pool_stride=2,
        pool_padding="same",  # 32 → 16 → 8
        input_dropout=0.2,
        slot_dropout=0.5,
        description=f"Springenberg et al. 2015 base model {name} (use head=allconv)",
    )


BACKBONES: dict[str, Backbone] = {
    # keras-io MNIST convnet: 28 → conv 26 → slot 13 → conv 11 → slot 5 (with max 2×2 s2).
    "convnet": Backbone(
        blocks=(Block((Conv(32, 3),)), Block((Conv(64, 3),))),
        pool_window=2,
        pool_stride=2,
        pool_padding="valid",
        description="keras-io MNIST convnet: conv 3×3 32 → slot → conv 3×3 64 → slot",
    ),
    "springenberg_a": _allconv_backbone(
        (Conv(96, 5, padding="same"),), (Conv(192, 5, padding="same"),), "A"
    ),
    "springenberg_b": _allconv_backbone(
        (Conv(96, 5, padding="same"), Conv(96, 1, padding="same")),
        (Conv(192, 5, padding="same"), Conv(192, 1, padding="same")),
        "B",
    ),
    "springenberg_c": _allconv_backbone(
        (Conv(96, 3, padding="same"), Conv(96, 3, padding="same")),
        (Conv(192, 3, padding="same"), Conv(192, 3, padding="same")),
        "C",
    ),
}
