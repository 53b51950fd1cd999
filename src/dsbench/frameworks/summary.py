"""A model built without training: each layer's shape and params, the totals and FLOPs.

What `dsbench describe` prints. The predicted shapes and parameter count (pure
Python, dsbench.model) are checked against the Keras model's own, layer by layer.
"""

from __future__ import annotations

from typing import Any

from dsbench.config import TrainConfig
from dsbench.data.registry import get_info
from dsbench.frameworks.keras_model import build_keras, count_trainable
from dsbench.model.plan import (
    count_params,
    count_state,
    flops_per_image,
    layer_rows,
    model_name,
    plan_from_config,
)


def describe(cfg: TrainConfig) -> dict[str, Any]:
    info = get_info(cfg.dataset.name)
    plan = plan_from_config(cfg, info.image_shape, info.num_classes)
    rows = layer_rows(plan, info.image_shape)
    outputs: dict[str, Any] = {}
    name = model_name(cfg.model, cfg.downsample, cfg.head)
    model = build_keras(plan, info.image_shape, name, outputs)
    layers = []
    for row in rows:
        keras_shape = tuple(outputs[row.key].shape[1:])
        if keras_shape != row.shape:
            raise AssertionError(f"{row.key}: predicted {row.shape}, Keras built {keras_shape}")
        layers.append(
            {
                "name": row.name,
                "spec": str(row.spec),
                "output_shape": list(row.shape),
                # A shared layer's weights are counted where the main path uses it.
                "params": 0 if row.shared else model.get_layer(row.name).count_params(),
                "slot": row.slot,
                "block": row.block,
                "path": row.path,
                "shared": row.shared,
                "flops": row.flops,
            }
        )
    trainable, state = count_params(plan, info.image_shape), count_state(plan, info.image_shape)
    if trainable != count_trainable(model) or trainable + state != model.count_params():
        raise AssertionError(
            f"predicted {trainable} + {state} params, Keras built "
            f"{count_trainable(model)} + {model.count_params() - count_trainable(model)}"
        )
    return {
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "downsample": cfg.downsample.name,
        "head": cfg.head.name,
        "input_shape": list(info.image_shape),
        "params": model.count_params(),
        "trainable_params": trainable,
        "flops": flops_per_image(plan, info.image_shape),
        "layers": layers,
    }


def as_text(d: dict[str, Any]) -> str:
    """The layers, one per line (output shape, params, FLOPs per image); a residual block's as
    its main path, shortcut and sum, indented under the block; ◀ slot marks what the strategy
    put in a slot."""
    labels = [f"  {x['path']:<8}  {x['name']}" if x["block"] else x["name"] for x in d["layers"]]
    width = max(map(len, labels))
    lines = [
        f"{d['dataset']} {d['model']} × {d['downsample']} × {d['head']}",
        f"input {'×'.join(map(str, d['input_shape']))}",
    ]
    block = ""
    for layer, label in zip(d["layers"], labels, strict=True):
        if layer["block"] and layer["block"] != block:
            lines.append(f"  {layer['block']}: residual, activation(main path + shortcut)")
        block = layer["block"]
        shape = "×".join(map(str, layer["output_shape"]))
        params = "shared" if layer["shared"] else f"{layer['params']:,} params"
        mark = f"  ◀ slot ({d['downsample']})" if layer["slot"] else ""
        flops = f"{layer['flops']:,} FLOPs" if layer["flops"] else ""
        lines.append(f"  {label:<{width}}  {shape:>12}  {params:>16}  {flops:>17}{mark}".rstrip())
    lines.append(f"params {d['params']:,} (trainable {d['trainable_params']:,})")
    lines.append(f"FLOPs per image {d['flops']:,} (multiply-adds × 2)")
    return "\n".join(lines)
