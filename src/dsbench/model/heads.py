"""Classifier heads: the last slot of every model, after the backbone.

| name    | layers                                                        |
|---------|---------------------------------------------------------------|
| flatten | flatten → dropout → dense(classes)  (the keras-io MNIST head)   |
| gap     | dropout → 1×1 conv to classes → global average (Lin et al. 2014)|
| allconv | 3×3 valid conv 192 → 1×1 conv 192 → 1×1 conv classes → global   |
|         | average (Springenberg et al. 2015; every conv with ReLU)       |
| linear  | dropout → global average → dense(classes) (ResNets, He et al.  |
|         | 2016): gap's function, the 1×1 conv and the mean commute       |
| maxlinear | dropout → global max → dense(classes) without bias → × 1/9  |
|         | (airbench94's head)                                            |

Each ends in a float32 softmax.
"""

from __future__ import annotations

from collections.abc import Callable

from dsbench.config import HeadConfig
from dsbench.model.layers import (
    Conv,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    GlobalMaxPool,
    LayerSpec,
    Rescale,
    Softmax,
    scaled,
)

# (classes, its config, model.width) → its layers; width scales hidden convs, never the
# classifier's outputs.
Head = Callable[[int, HeadConfig, float], list[LayerSpec]]


def _dropout(cfg: HeadConfig) -> list[LayerSpec]:
    return [Dropout(cfg.dropout)] if cfg.dropout > 0 else []


def flatten_dense(num_classes: int, cfg: HeadConfig, width: float = 1.0) -> list[LayerSpec]:
    return [Flatten(), *_dropout(cfg), Dense(num_classes), Softmax()]


def global_average(num_classes: int, cfg: HeadConfig, width: float = 1.0) -> list[LayerSpec]:
    # Linear 1×1 conv: its per-position scores are averaged into logits.
    return [*_dropout(cfg), Conv(num_classes, 1, activation=None), GlobalAvgPool(), Softmax()]


def allconv(num_classes: int, cfg: HeadConfig, width: float = 1.0) -> list[LayerSpec]:
    return [
        *_dropout(cfg),
        Conv(scaled(192, width), 3, padding="valid"),  # 8×8 → 6×6 in the paper's models
        Conv(scaled(192, width), 1),
        Conv(num_classes, 1),
        GlobalAvgPool(),
        Softmax(),
    ]


def linear(num_classes: int, cfg: HeadConfig, width: float = 1.0) -> list[LayerSpec]:
    return [*_dropout(cfg), GlobalAvgPool(), Dense(num_classes), Softmax()]


# airbench94 scales its logits by 1/9 (its `scaling_factor`): a fixed softmax temperature.
AIRBENCH_LOGIT_SCALE = 1 / 9


def max_linear(num_classes: int, cfg: HeadConfig, width: float = 1.0) -> list[LayerSpec]:
    return [
        *_dropout(cfg),
        GlobalMaxPool(),
        Dense(num_classes, bias=False),
        Rescale(AIRBENCH_LOGIT_SCALE),
        Softmax(),
    ]


HEADS: dict[str, Head] = {
    "flatten": flatten_dense,
    "gap": global_average,
    "allconv": allconv,
    "linear": linear,
    "maxlinear": max_linear,
}
