"""Build a model without training and show its shapes, parameters and FLOPs.

    python -m dsbench.describe model=convnet downsample=max head=flatten
    python -m dsbench.describe downsample=strided output=json

Predicted shapes (the floor((n − k + 2p)/s) + 1 formula) are checked against Keras'.
"""

from __future__ import annotations

import json
import os
from typing import Any

import hydra
from omegaconf import DictConfig

from dsbench import cli, config
from dsbench.dataset import DATASETS
from dsbench.layers import LayerSpec, Shape
from dsbench.model import (
    build_keras,
    count_trainable,
    flops_per_image,
    model_name,
    plan_from_config,
    trace,
)

config.register()


def shape_table(rows: list[tuple[str, LayerSpec, Shape]]) -> str:
    """Markdown table: layer, what it is, output shape."""
    lines = ["| layer | spec | output shape |", "|---|---|---|"]
    for name, spec, shape in rows:
        lines.append(f"| {name} | {spec} | {'×'.join(map(str, shape))} |")
    return "\n".join(lines) + "\n"


def describe(cfg: config.TrainConfig) -> dict[str, Any]:
    info = DATASETS[cfg.dataset.name]
    plan = plan_from_config(cfg, info.image_shape, info.num_classes)
    rows = trace(plan, info.image_shape)
    os.environ.setdefault("KERAS_BACKEND", cfg.trainer.backend)
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


@hydra.main(version_base="1.3", config_path=config.CONF_DIR, config_name="describe")
def _app(cfg: DictConfig) -> None:
    with cli.exit_on_bad_input():
        checked = config.validate(cfg, config.DescribeConfig)
        d = describe(checked)
    print(json.dumps(d) if checked.output == "json" else as_text(d))


def main() -> None:
    cli.run_app(_app)


if __name__ == "__main__":
    main()
