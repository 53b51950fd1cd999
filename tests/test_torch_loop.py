"""The hand-written PyTorch loop of the bench: the same layers as the Keras model, and it trains."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dsbench.config import (
    DatasetConfig,
    DownsampleConfig,
    HeadConfig,
    TrainerConfig,
    model_config,
)
from dsbench.contract import Metric
from dsbench.data.splits import load_splits
from dsbench.errors import DsbenchError
from dsbench.frameworks.keras_model import build_keras, count_trainable
from dsbench.model.plan import plan_model
from dsbench.tools import torch_loop

pytest.importorskip("torch", reason="the PyTorch loop needs PyTorch (make install adds it)")
from dsbench.frameworks import torch_model  # after the skip: it imports torch

MNIST = (28, 28, 1)
CIFAR = (32, 32, 3)
# Every model the PyTorch loop can build: the bench's two (convnet + max + flatten, All-CNN-C)
# and the strategies and heads made of plain convs and pools.
CONVNET = [
    ("convnet", d, h) for d in ("max", "avg", "overlap", "strided") for h in ("flatten", "gap")
]
ALLCONV = [
    (b, d, "allconv")
    for b in ("springenberg_a", "springenberg_c")
    for d in ("max", "conv", "strided", "convpool")
]


@pytest.mark.parametrize("combo", CONVNET + ALLCONV, ids="-".join)
def test_the_torch_model_has_the_keras_models_parameters(combo: tuple[str, str, str]) -> None:
    backbone, downsample, head = combo
    shape = MNIST if backbone == "convnet" else CIFAR
    plan = plan_model(
        model_config(backbone), DownsampleConfig(downsample), HeadConfig(head), 10, shape
    )
    # build() itself checks each layer's output shape against the plan.
    model = torch_model.build(plan, shape)
    assert torch_model.count_params(model) == count_trainable(build_keras(plan, shape))


def test_a_layer_without_a_torch_twin_is_named() -> None:
    plan = plan_model(model_config("convnet"), DownsampleConfig("blur"), HeadConfig("flatten"), 10)
    with pytest.raises(DsbenchError, match=r"no layer for block1_down.*\(BlurPool\); it covers"):
        torch_model.build(plan, MNIST)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_the_loop_learns_real_mnist(shared_data: Path, precision: str) -> None:
    mnist = str(shared_data / "mnist")
    splits = load_splits(
        DatasetConfig("mnist", "archive", mnist, val_fraction=0.0, train_subset=3072)
    )
    plan = plan_model(model_config("convnet"), DownsampleConfig("max"), HeadConfig("flatten"), 10)
    trainer = TrainerConfig(batch_size=128, epochs=2, precision=precision)
    result = torch_loop.train(plan, trainer, splits.x_train, splits.y_train)
    assert result["images_per_sec"] > 0
    assert math.isnan(result[Metric.PEAK_MEMORY_BYTES])  # reported on CUDA only
    # Chance is 10 %: a second epoch far above it means the gradient steps are real.
    assert result["train_accuracy"] > 0.6, result
    assert result["train_loss"] < 1.5, result


def test_the_loop_refuses_what_it_does_not_do() -> None:
    plan = plan_model(model_config("convnet"), DownsampleConfig("max"), HeadConfig("flatten"), 10)
    x = np.zeros((256, 28, 28, 1), np.uint8)
    y = np.zeros(256, np.uint8)
    with pytest.raises(DsbenchError, match=r"not trainer\.precision=mixed_float16"):
        torch_loop.train(plan, TrainerConfig(precision="mixed_float16"), x, y)
    with pytest.raises(DsbenchError, match=r"constant learning rate, not trainer\.schedule=cosine"):
        torch_loop.train(plan, TrainerConfig(schedule="cosine", batch_size=128), x, y)
    with pytest.raises(DsbenchError, match="256 training images are fewer than one batch of 512"):
        torch_loop.train(plan, TrainerConfig(batch_size=512), x, y)
