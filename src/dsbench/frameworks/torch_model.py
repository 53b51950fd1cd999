"""The bench's PyTorch reference model, built from the same plan as the suite's Keras model.

Same layers, shapes, parameters and FLOPs as `dsbench.frameworks.keras_model.build_keras`; `build`
checks every layer's output shape against the plan. Differences that do not change the
cost: torch's default initialisation, logits into `cross_entropy` instead of a softmax
layer, and a stride-2 "same" window padded on both sides (Keras pads only the end: same
output size, shifted by half a pixel). Only the layers of the classic models are covered:
each spec's module comes from the builder registered for its class with `@torch_builder`.

Imports torch: only the bench (dsbench.tools) uses it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dsbench.errors import DsbenchError
from dsbench.frameworks.builders import TORCH_BUILDERS, builder_of, torch_builder
from dsbench.model import layers as spec
from dsbench.model.geometry import total_padding
from dsbench.model.layers import Shape, Spec
from dsbench.model.plan import Plan, trace


def _same_padding(n: int, kernel: int, stride: int, padding: str) -> int:
    # Half the total padding Keras applies, rounded up: the output size is Keras' own
    # (n − k + total is a multiple of the stride, so one more pixel does not change it).
    return -(-total_padding(n, kernel, stride, padding) // 2)


def _layer(name: str, s: Spec, x: Shape) -> Any:
    """The torch layer of one spec, given its input shape (height, width, channels)."""
    build = builder_of(TORCH_BUILDERS, s)
    if build is None:
        raise DsbenchError(
            f"the PyTorch loop has no layer for {name} ({type(s).__name__}); it covers "
            f"{', '.join(t.__name__ for t in TORCH_BUILDERS)}: bench a model made of those"
        )
    return build(s, x)


class _Scale(nn.Module):  # uint8 → float in [0, 1], as the Keras model's Rescaling
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return t.float() * self.scale


class _GlobalAverage(nn.Module):  # (B, C, H, W) → (B, C)
    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return t.mean(dim=(2, 3))


@torch_builder(spec.Rescale)
def _rescale(s: spec.Rescale, x: Shape) -> Any:
    return _Scale(s.scale)


@torch_builder(spec.Pad)
def _pad(s: spec.Pad, x: Shape) -> Any:
    return nn.ZeroPad2d((*s.cols, *s.rows))


@torch_builder(spec.Conv)
def _conv(s: spec.Conv, x: Shape) -> Any:
    if s.padding_mode != "zeros":
        raise DsbenchError(
            f"the PyTorch loop pads convs with zeros only, not model.padding_mode="
            f"{s.padding_mode}: bench with zeros, or with torch=false"
        )
    pad = _same_padding(x[0], s.kernel, s.stride, s.padding)
    conv = nn.Conv2d(x[2], s.filters, s.kernel, stride=s.stride, padding=pad, bias=s.bias)
    return nn.Sequential(conv, nn.ReLU(inplace=True)) if s.activation == "relu" else conv


@torch_builder(spec.Pool)
def _pool(s: spec.Pool, x: Shape) -> Any:
    pad = _same_padding(x[0], s.window, s.stride, s.padding)
    if s.kind == "max":
        return nn.MaxPool2d(s.window, s.stride, padding=pad)
    # Keras averages over the pixels inside the map only.
    return nn.AvgPool2d(s.window, s.stride, padding=pad, count_include_pad=False)


@torch_builder(spec.Dropout)
def _dropout(s: spec.Dropout, x: Shape) -> Any:
    return nn.Dropout(s.rate)


@torch_builder(spec.Flatten)
def _flatten(s: spec.Flatten, x: Shape) -> Any:
    return nn.Flatten()


@torch_builder(spec.Dense)
def _dense(s: spec.Dense, x: Shape) -> Any:
    return nn.Linear(x[0], s.units, bias=s.bias)


@torch_builder(spec.GlobalAvgPool)
def _global_avg_pool(s: spec.GlobalAvgPool, x: Shape) -> Any:
    return _GlobalAverage()


@torch_builder(spec.Softmax)
def _softmax(s: spec.Softmax, x: Shape) -> Any:
    return nn.Identity()  # logits go to cross_entropy, which applies the softmax


def build(plan: Plan, input_shape: Shape) -> Any:
    """The planned model as a `torch.nn.Sequential` (input: a (B, C, H, W) uint8 batch).

    Every layer's output shape is checked against the plan's (`dsbench.model.plan.trace`).
    """
    traced = trace(plan, input_shape)
    inputs = [tuple(input_shape)] + [shape for _, _, shape in traced[:-1]]
    model = nn.Sequential()
    for (name, s, _), x in zip(traced, inputs, strict=True):
        model.add_module(name, _layer(name, s, x))
    with torch.no_grad():
        h, w, c = input_shape
        uint8 = isinstance(plan[0][1], spec.Rescale)  # else the data is preprocessed floats
        t = torch.zeros((1, c, h, w), dtype=torch.uint8 if uint8 else torch.float32)
        model.train(False)  # dropout off while checking shapes
        for (name, _, want), layer in zip(traced, model, strict=True):
            t = layer(t)
            got = tuple(t.shape[1:]) if t.dim() == 2 else (*t.shape[2:], t.shape[1])
            if got != tuple(want):
                raise DsbenchError(f"PyTorch layer {name} gives {got}, the plan says {want}")
    return model


def count_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
