"""Backbones: blocks of convs with downsampling slots, read from conf/model/<name>.yaml.

A backbone (dsbench.config.ModelConfig) fixes everything but what fills its slots: the
convs, their normalisation and activation, the residual shortcuts, the slot geometry
(window, stride, padding) every strategy is given, and the dropout around the slots. The
strategy (dsbench.model.downsample) fills each slot; the head (dsbench.model.heads) ends
the model. A new backbone is one YAML (docs/models.md).

Each conv becomes conv → [batch norm] → activation, and a slot sits after the activation
or, with slot_position=conv, right after the conv (airbench's conv → pool → BN → GELU).
With batch norm a conv has no bias (β is one). A residual block's last activation comes
after the sum with its shortcut (dsbench.model.layers.Residual).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from dsbench.config import BlockConfig, ConvConfig, DownsampleConfig, ModelConfig
from dsbench.errors import DsbenchError
from dsbench.model.downsample import Fill, Slot
from dsbench.model.layers import (
    Activation,
    BatchNorm,
    Conv,
    Dropout,
    LayerSpec,
    Residual,
    scaled,
)

Layers = list[tuple[str, LayerSpec]]
SLOT = "_down"  # block<i>_down...: the layers a strategy put in block i's slot


def is_slot(name: str) -> bool:
    return SLOT in name


FillSlot = Callable[[Slot, DownsampleConfig], Fill]


def blocks(model: ModelConfig) -> Iterator[BlockConfig]:
    """The backbone's blocks in order, each `repeat` expanded."""
    if not model.blocks:
        raise DsbenchError(
            f"model {model.name!r} has no blocks: a backbone needs model.blocks "
            "(see conf/model/convnet.yaml)"
        )
    for block in model.blocks:
        for _ in range(block.repeat):
            yield block


def backbone_layers(model: ModelConfig, fill: FillSlot, downsample: DownsampleConfig) -> Layers:
    """The backbone's layers, named block<i>_conv<j>, _bn<j>, _act<j>, _down (the slot),
    _dropout; a residual block is one Residual layer holding its main path."""
    layers: Layers = []
    for i, block in enumerate(blocks(model), start=1):
        body, slot = _block(f"block{i}", block, model, fill, downsample)
        if block.residual:
            layers.append((f"block{i}", Residual(tuple(body), slot, model.activation)))
        else:
            layers += body
    return layers


def _block(
    prefix: str, block: BlockConfig, model: ModelConfig, fill: FillSlot, cfg: DownsampleConfig
) -> tuple[Layers, tuple[str, ...]]:
    convs = [replace(c, filters=scaled(c.filters, model.width)) for c in block.convs]
    at = None if block.slot is None else (len(convs) if block.slot == -1 else block.slot)
    slot_layers: Layers = []
    if at is not None:
        width = convs[at - 1].filters
        filled = fill(Slot(width, model.slot_window, model.slot_stride, model.slot_padding), cfg)
        if filled.stride_previous_conv:
            convs[at - 1] = replace(convs[at - 1], stride=2)
        slot_layers = named(f"{prefix}{SLOT}", filled.layers)
        if model.slot_dropout > 0:
            slot_layers.append((f"{prefix}_dropout", Dropout(model.slot_dropout)))
    layers: Layers = []
    for j, c in enumerate(convs, start=1):
        # A residual block's last activation follows the sum with the shortcut.
        act = None if block.residual and j == len(convs) else model.activation
        here = slot_layers if j == at else []
        layers += _conv(f"{prefix}", j, c, model, act, here)
    names = tuple(name for name, _ in slot_layers if is_slot(name))
    return layers, names


def _conv(
    prefix: str, j: int, c: ConvConfig, model: ModelConfig, act: str | None, slot: Layers
) -> Layers:
    """conv j → [BN] → [activation], with the slot's layers where model.slot_position says."""
    batch = (c.norm or model.norm) == "batch"
    early = model.slot_position == "conv"
    if not batch and not (early and slot):  # the activation stays inside the conv
        conv = Conv(c.filters, c.kernel, c.stride, c.padding, activation=act)
        return [(f"{prefix}_conv{j}", conv), *slot]
    conv = Conv(c.filters, c.kernel, c.stride, c.padding, activation=None, bias=not batch)
    layers: Layers = [(f"{prefix}_conv{j}", conv), *(slot if early else [])]
    if batch:
        layers.append((f"{prefix}_bn{j}", BatchNorm(model.norm_momentum)))
    if act:
        layers.append((f"{prefix}_act{j}", Activation(act)))
    return layers + ([] if early else slot)


def named(prefix: str, specs: tuple[LayerSpec, ...]) -> Layers:
    """One layer is `prefix`; several are prefix1_<kind>, prefix2_<kind>, ..."""
    if len(specs) == 1:
        return [(prefix, specs[0])]
    return [(f"{prefix}{j}_{type(s).__name__.lower()}", s) for j, s in enumerate(specs, start=1)]
