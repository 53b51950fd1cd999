"""Backbones, and every model as backbone × downsampling strategy × head.

A backbone is a list of blocks; each block is a few convs followed by one downsampling
slot. `plan_model` asks the strategy what fills each slot and the head what ends the
model, and returns the whole model as layer specs. Nothing else differs between two
models of the same backbone: that is the point of the suite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from dsbench.config import DownsampleConfig, HeadConfig, ModelConfig, TrainConfig
from dsbench.downsample import STRATEGIES, Slot
from dsbench.head import HEADS
from dsbench.layers import Augment, Conv, Dropout, LayerSpec, Pad, Rescale, Shape


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

Plan = list[tuple[str, LayerSpec]]


def plan_model(
    model: ModelConfig,
    downsample: DownsampleConfig,
    head: HeadConfig,
    num_classes: int,
    input_shape: Shape | None = None,
    rescale: bool = True,
    augment: Augment | None = None,
) -> Plan:
    """The model as named layer specs, in order.

    `input_shape` is needed only for `model.pad_to`; `rescale` scales uint8 pixels to [0, 1]
    (off when the data is already preprocessed to floats); `augment` adds training-batch
    augmentation after the input adapter.
    """
    backbone = BACKBONES[model.name]
    strategy = STRATEGIES[downsample.name]
    input_dropout = backbone.input_dropout if model.input_dropout is None else model.input_dropout
    slot_dropout = backbone.slot_dropout if model.slot_dropout is None else model.slot_dropout

    plan: Plan = [("rescale", Rescale())] if rescale else []
    if model.pad_to and input_shape and min(input_shape[:2]) < model.pad_to:
        plan.append(("pad", Pad.to_size(input_shape, model.pad_to)))  # e.g. 28 → 32
    if augment is not None:
        plan.append(("augment", augment))
    if input_dropout > 0:
        plan.append(("input_dropout", Dropout(input_dropout)))
    for i, block in enumerate(backbone.blocks, start=1):
        slot = Slot(
            block.convs[-1].filters,
            backbone.pool_window,
            backbone.pool_stride,
            backbone.pool_padding,
        )
        fill = strategy(slot, downsample)
        convs = list(block.convs)
        if fill.stride_previous_conv:
            convs[-1] = replace(convs[-1], stride=2)
        plan += [(f"block{i}_conv{j}", conv) for j, conv in enumerate(convs, start=1)]
        plan += _named(f"block{i}_down", fill.layers)
        if slot_dropout > 0:
            plan.append((f"block{i}_dropout", Dropout(slot_dropout)))
    plan += _named("head", HEADS[head.name](num_classes, head))
    return plan


def plan_from_config(cfg: TrainConfig, image_shape: Shape, num_classes: int) -> Plan:
    """The model a run config asks for (input adapter, augmentation and scaling included)."""
    t = cfg.trainer
    augment = None
    if t.augmented:
        size = max(cfg.model.pad_to or 0, image_shape[0])
        augment = Augment(t.augment_translate, t.augment_flip, size)
    return plan_model(
        cfg.model,
        cfg.downsample,
        cfg.head,
        num_classes,
        image_shape,
        rescale=cfg.dataset.preprocess == "none",  # preprocessed data is float already
        augment=augment,
    )


def _named(prefix: str, specs: Any) -> Plan:
    specs = list(specs)
    if len(specs) == 1:
        return [(prefix, specs[0])]
    return [(f"{prefix}{j}_{type(s).__name__.lower()}", s) for j, s in enumerate(specs, start=1)]


def trace(plan: Plan, input_shape: Shape) -> list[tuple[str, LayerSpec, Shape]]:
    """Each layer's predicted output shape; stops with DsbenchError below 1×1."""
    rows, shape = [], tuple(input_shape)
    for name, spec in plan:
        shape = spec.output_shape(name, shape)
        rows.append((name, spec, shape))
    return rows


def flops_per_image(plan: Plan, input_shape: Shape) -> int:
    """Forward FLOPs of one image (multiply-adds × 2; see dsbench.layers)."""
    total, shape = 0, tuple(input_shape)
    for name, spec in plan:
        total += spec.flops(shape)
        shape = spec.output_shape(name, shape)
    return total


def build_keras(plan: Plan, input_shape: Shape, name: str = "dsbench") -> Any:
    """The planned model as a Keras functional model (the backend is Keras' choice)."""
    import keras

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for layer_name, spec in plan:
        x = spec.keras_layer(layer_name)(x)
    return keras.Model(inputs, x, name=name)


def count_trainable(model: Any) -> int:
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def model_name(model: ModelConfig, downsample: DownsampleConfig, head: HeadConfig) -> str:
    return f"{model.name}-{downsample.name}-{head.name}"
