"""A model built without training: each layer's shape and params, the totals and FLOPs.

What `python -m dsbench.describe` prints. The predicted shapes and parameter count (pure
Python, dsbench.model) are checked against the Keras model's own, layer by layer.
"""

from __future__ import annotations

from typing import Any

from dsbench.config import TrainConfig
from dsbench.data.registry import get_info
from dsbench.frameworks.keras_model import build_keras, count_trainable
from dsbench.model.plan import count_params, flops_per_image, model_name, plan_from_config, trace


def describe(cfg: TrainConfig) -> dict[str, Any]:
    info = get_info(cfg.dataset.name)
    plan = plan_from_config(cfg, info.image_shape, info.num_classes)
    rows = trace(plan, info.image_shape)
    model = build_keras(plan, info.image_shape, model_name(cfg.model, cfg.downsample, cfg.head))
    layers = []
    for (name, spec, shape), layer in zip(rows, model.layers[1:], strict=True):
        keras_shape = tuple(layer.output.shape[1:])
        if keras_shape != shape:
            raise AssertionError(f"{name}: predicted {shape}, Keras built {keras_shape}")
        layers.append(
            {
                "name": name,
                "spec": str(spec),
                "output_shape": list(shape),
                "params": layer.count_params(),
            }
        )
    predicted = count_params(plan, info.image_shape)
    if predicted != model.count_params():
        raise AssertionError(f"predicted {predicted} params, Keras built {model.count_params()}")
    return {
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "downsample": cfg.downsample.name,
        "head": cfg.head.name,
        "input_shape": list(info.image_shape),
        "params": model.count_params(),
        "trainable_params": count_trainable(model),
        "flops": flops_per_image(plan, info.image_shape),
        "layers": layers,
    }


def as_text(d: dict[str, Any]) -> str:
    width = max(len(layer["name"]) for layer in d["layers"])
    lines = [
        f"{d['dataset']} {d['model']} × {d['downsample']} × {d['head']}",
        f"input {'×'.join(map(str, d['input_shape']))}",
    ]
    for layer in d["layers"]:
        shape = "×".join(map(str, layer["output_shape"]))
        lines.append(f"  {layer['name']:<{width}}  {shape:>12}  {layer['params']:>9,} params")
    lines.append(f"params {d['params']:,} (trainable {d['trainable_params']:,})")
    lines.append(f"FLOPs per image {d['flops']:,} (multiply-adds × 2)")
    return "\n".join(lines)
