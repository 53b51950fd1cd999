"""Classifier heads: the last slot of every model, after the backbone.

| name    | layers                                                        |
|---------|---------------------------------------------------------------|
| flatten | flatten → dropout → dense(classes)  (the keras-io MNIST head)   |
| gap     | dropout → 1×1 conv to classes → global average (Lin et al. 2014)|
| allconv | 3×3 valid conv 192 → 1×1 conv 192 → 1×1 conv classes → global   |
|         | average (Springenberg et al. 2015; every conv with ReLU)       |

Each ends in a float32 softmax.
"""

from __future__ import annotations

from collections.abc import Callable

from dsbench.config import HeadConfig
from dsbench.model.layers import Conv, Dense, Dropout, Flatten, GlobalAvgPool, LayerSpec, Softmax

Head = Callable[[int, HeadConfig], list[LayerSpec]]


def _dropout(cfg: HeadConfig) -> list[LayerSpec]:
    return [Dropout(cfg.dropout)] if cfg.dropout > 0 else []


def flatten_dense(num_classes: int, cfg: HeadConfig) -> list[LayerSpec]:
    return [Flatten(), *_dropout(cfg), Dense(num_classes), Softmax()]


def global_average(num_classes: int, cfg: HeadConfig) -> list[LayerSpec]:
    # Linear 1×1 conv: its per-position scores are averaged into logits.
    return [*_dropout(cfg), Conv(num_classes, 1, activation=None), GlobalAvgPool(), Softmax()]


def allconv(num_classes: int, cfg: HeadConfig) -> list[LayerSpec]:
    return [
        *_dropout(cfg),
        Conv(192, 3, padding="valid"),  # 8×8 → 6×6 in the paper's models
        Conv(192, 1),
        Conv(num_classes, 1),
        GlobalAvgPool(),
        Softmax(),
    ]


HEADS: dict[str, Head] = {"flatten": flatten_dense, "gap": global_average, "allconv": allconv}
