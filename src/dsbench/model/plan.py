"""The plan: a whole model as named layer specs, backbone × downsampling strategy × head.

A backbone (conf/model/<name>.yaml) is a list of blocks; each block is a few convs with
at most one downsampling slot, and may be residual. `plan_model` asks the strategy what
fills each slot and the head what ends the model. Nothing else differs between two models
of the same backbone: that is the point of the suite.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import NamedTuple, TypeVar

from dsbench.config import DownsampleConfig, HeadConfig, ModelConfig, TrainConfig
from dsbench.errors import unknown
from dsbench.model.backbones import backbone_layers, is_slot, named
from dsbench.model.downsample import STRATEGIES
from dsbench.model.heads import HEADS
from dsbench.model.layers import (
    Activation,
    Add,
    Augment,
    Conv,
    Dropout,
    LayerSpec,
    Pad,
    Rescale,
    Residual,
    Shape,
    walk,
)

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
    strategy = lookup(STRATEGIES, "downsample", downsample.name)
    make_head = lookup(HEADS, "head", head.name)

    plan: Plan = [("rescale", Rescale())] if rescale else []
    if model.pad_to and input_shape and min(input_shape[:2]) < model.pad_to:
        plan.append(("pad", Pad.to_size(input_shape, model.pad_to)))  # e.g. 28 → 32
    if augment is not None:
        plan.append(("augment", augment))
    if model.input_dropout > 0:
        plan.append(("input_dropout", Dropout(model.input_dropout)))
    plan += backbone_layers(model, strategy, downsample)
    plan += named("head", tuple(make_head(num_classes, head, model.width)))
    return [(name, _padded(spec, model.padding_mode)) for name, spec in plan]


def _padded(spec: LayerSpec, mode: str) -> LayerSpec:
    """A "same" conv pads as model.padding_mode says (backbone, strategy and head alike)."""
    if isinstance(spec, Conv) and spec.padding == "same" and spec.kernel > 1:
        return replace(spec, padding_mode=mode)
    if isinstance(spec, Residual):
        return replace(spec, body=tuple((n, _padded(s, mode)) for n, s in spec.body))
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


Trace = list[tuple[str, LayerSpec, Shape, Shape]]  # name, spec, input shape, output shape


def trace(plan: Plan, input_shape: Shape) -> list[tuple[str, LayerSpec, Shape]]:
    """Each layer's predicted output shape; stops with DsbenchError below 1×1."""
    return [(name, spec, out) for name, spec, _, out in _walk(plan, input_shape)]


def _walk(plan: Plan, input_shape: Shape) -> Trace:
    return walk(plan, tuple(input_shape))


def flops_per_image(plan: Plan, input_shape: Shape) -> int:
    """Forward FLOPs of one image (multiply-adds × 2; see dsbench.model.layers)."""
    return sum(spec.flops(x) for _, spec, x, _ in _walk(plan, input_shape))


def count_params(plan: Plan, input_shape: Shape) -> int:
    """Trainable parameters of the planned model, predicted (checked against Keras')."""
    return sum(spec.params(x) for _, spec, x, _ in _walk(plan, input_shape))


def count_state(plan: Plan, input_shape: Shape) -> int:
    """Values kept but not trained (batch norms' moving statistics), predicted."""
    return sum(spec.state(x) for _, spec, x, _ in _walk(plan, input_shape))


def model_name(model: ModelConfig, downsample: DownsampleConfig, head: HeadConfig) -> str:
    return f"{model.name}-{downsample.name}-{head.name}"


class Row(NamedTuple):
    """One layer as `describe` shows it: a residual block's layers are rows of their own."""

    name: str
    spec: LayerSpec
    shape: Shape  # its output
    path: str = ""  # inside a residual block: main | shortcut | sum
    block: str = ""  # that residual block's name
    shared: bool = False  # a main-path layer the shortcut goes through again (same weights)
    flops: int = 0  # forward FLOPs of one image through it (the sum's own add counts none)

    @property
    def key(self) -> str:
        """Its output's name in build_keras(outputs=...)."""
        return f"{self.name}@shortcut" if self.shared else self.name

    @property
    def slot(self) -> bool:
        return is_slot(self.name)


def layer_rows(plan: Plan, input_shape: Shape) -> list[Row]:
    """Every layer with its output shape; a residual block as its main path, its shortcut's
    steps and the sum."""
    rows: list[Row] = []
    for name, spec, x, out in _walk(plan, input_shape):
        if not isinstance(spec, Residual):
            rows.append(Row(name, spec, out, flops=spec.flops(x)))
            continue
        rows += [Row(n, s, o, "main", name, flops=s.flops(i)) for n, s, i, o in walk(spec.body, x)]
        for t in spec.shortcut(name, x):
            flops = t.spec.flops(t.input_shape)
            rows.append(Row(t.name, t.spec, t.output_shape, "shortcut", name, t.shared, flops))
        rows.append(Row(f"{name}_add", Add(), out, "sum", name))
        if spec.activation:
            rows.append(Row(f"{name}_act", Activation(spec.activation), out, "sum", name))
    return rows


def shape_table(rows: list[Row]) -> str:
    """Markdown table: layer, path, what it is, output shape (a run's shapes.md artifact)."""
    lines = ["| layer | path | spec | output shape |", "|---|---|---|---|"]
    for row in rows:
        path = f"{row.block} {row.path}" if row.block else ""
        spec = "(the main path's layer)" if row.shared else str(row.spec)
        lines.append(f"| {row.name} | {path} | {spec} | {'×'.join(map(str, row.shape))} |")
    return "\n".join(lines) + "\n"
