"""The plan: a whole model as named layer specs, backbone × downsampling strategy × head.

A backbone is a list of blocks; each block is a few convs followed by one downsampling
slot. `plan_model` asks the strategy what fills each slot and the head what ends the
model. Nothing else differs between two models of the same backbone: that is the point of
the suite.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TypeVar

from dsbench.config import DownsampleConfig, HeadConfig, ModelConfig, TrainConfig
from dsbench.errors import unknown
from dsbench.model.backbones import BACKBONES
from dsbench.model.downsample import STRATEGIES, Slot
from dsbench.model.heads import HEADS
from dsbench.model.layers import Augment, Conv, Dropout, LayerSpec, Pad, Rescale, Shape, scaled

Plan = list[tuple[str, LayerSpec]]
T = TypeVar("T")


def lookup(registry: Mapping[str, T], what: str, name: str) -> T:
    """registry[name], or the one-line error that lists what `what` may be."""
    if name not in registry:
        raise unknown(what, name, sorted(registry))
    return registry[name]


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
    backbone = lookup(BACKBONES, "model", model.name)
    strategy = lookup(STRATEGIES, "downsample", downsample.name)
    make_head = lookup(HEADS, "head", head.name)
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
        convs = [replace(c, filters=scaled(c.filters, model.width)) for c in block.convs]
        slot = Slot(
            convs[-1].filters,
            backbone.pool_window,
            backbone.pool_stride,
            backbone.pool_padding,
        )
        fill = strategy(slot, downsample)
        if fill.stride_previous_conv:
            convs[-1] = replace(convs[-1], stride=2)
        plan += [(f"block{i}_conv{j}", conv) for j, conv in enumerate(convs, start=1)]
        plan += _named(f"block{i}_down", fill.layers)
        if slot_dropout > 0:
            plan.append((f"block{i}_dropout", Dropout(slot_dropout)))
    plan += _named("head", make_head(num_classes, head, model.width))
    return [(name, _padded(spec, model.padding_mode)) for name, spec in plan]


def _padded(spec: LayerSpec, mode: str) -> LayerSpec:
    """A "same" conv pads as model.padding_mode says (backbone, strategy and head alike)."""
    if isinstance(spec, Conv) and spec.padding == "same" and spec.kernel > 1:
        return replace(spec, padding_mode=mode)
    return spec


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


def _named(prefix: str, specs: Iterable[LayerSpec]) -> Plan:
    specs = list(specs)
    if len(specs) == 1:
        return [(prefix, specs[0])]
    return [(f"{prefix}{j}_{type(s).__name__.lower()}", s) for j, s in enumerate(specs, start=1)]


Trace = list[tuple[str, LayerSpec, Shape, Shape]]  # name, spec, input shape, output shape


def trace(plan: Plan, input_shape: Shape) -> list[tuple[str, LayerSpec, Shape]]:
    """Each layer's predicted output shape; stops with DsbenchError below 1×1."""
    return [(name, spec, out) for name, spec, _, out in _walk(plan, input_shape)]


def _walk(plan: Plan, input_shape: Shape) -> Trace:
    rows, shape = [], tuple(input_shape)
    for name, spec in plan:
        out = spec.output_shape(name, shape)
        rows.append((name, spec, shape, out))
        shape = out
    return rows


def flops_per_image(plan: Plan, input_shape: Shape) -> int:
    """Forward FLOPs of one image (multiply-adds × 2; see dsbench.model.layers)."""
    return sum(spec.flops(x) for _, spec, x, _ in _walk(plan, input_shape))


def count_params(plan: Plan, input_shape: Shape) -> int:
    """Parameters of the planned model, predicted (the tests check them against Keras)."""
    return sum(spec.params(x) for _, spec, x, _ in _walk(plan, input_shape))


def model_name(model: ModelConfig, downsample: DownsampleConfig, head: HeadConfig) -> str:
    return f"{model.name}-{downsample.name}-{head.name}"


def shape_table(rows: list[tuple[str, LayerSpec, Shape]]) -> str:
    """Markdown table: layer, what it is, output shape (a run's shapes.md artifact)."""
    lines = ["| layer | spec | output shape |", "|---|---|---|"]
    for name, spec, shape in rows:
        lines.append(f"| {name} | {spec} | {'×'.join(map(str, shape))} |")
    return "\n".join(lines) + "\n"
