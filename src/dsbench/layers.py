"""Layer specs: what a model is made of, as plain data.

A model is planned as a list of these specs before any framework is touched, so that
shapes and FLOPs are predicted (and bad geometry rejected) in pure Python. `keras_layer`
turns a spec into the Keras layer; Keras is imported only there, so planning stays cheap
and backend-agnostic.

FLOPs are multiply-adds × 2 of the convolution and dense layers (bias adds, activations,
pooling and normalisation are not counted, as in most papers' tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dsbench.shapes import window_out

Shape = tuple[int, ...]  # one image: (height, width, channels), or (features,) once flat


@dataclass(frozen=True)
class Rescale:
    """uint8 pixels → [0, 1] inside the model, so data can stay uint8 everywhere else."""

    scale: float = 1 / 255

    def output_shape(self, name: str, x: Shape) -> Shape:
        return x

    def flops(self, x: Shape) -> int:
        return 0

    def keras_layer(self, name: str) -> Any:
        from keras import layers

        return layers.Rescaling(self.scale, name=name)


@dataclass(frozen=True)
class Conv:
    filters: int
    kernel: int
    stride: int = 1
    padding: str = "valid"
    activation: str | None = "relu"

    def output_shape(self, name: str, x: Shape) -> Shape:
        h, w, _ = x
        return (
            window_out(name, h, self.kernel, self.stride, self.padding),
            window_out(name, w, self.kernel, self.stride, self.padding),
            self.filters,
        )

    def flops(self, x: Shape) -> int:
        h, w, c = self.output_shape("", x)
        return 2 * self.kernel * self.kernel * x[2] * c * h * w

    def keras_layer(self, name: str) -> Any:
        from keras import layers

        return layers.Conv2D(
            self.filters,
            self.kernel,
            strides=self.stride,
            padding=self.padding,
            activation=self.activation,
            name=name,
        )


@dataclass(frozen=True)
class Pool:
    kind: str  # "max" | "avg"
    window: int
    stride: int
    padding: str = "valid"

    def output_shape(self, name: str, x: Shape) -> Shape:
        h, w, c = x
        return (
            window_out(name, h, self.window, self.stride, self.padding),
            window_out(name, w, self.window, self.stride, self.padding),
            c,
        )

    def flops(self, x: Shape) -> int:
        return 0

    def keras_layer(self, name: str) -> Any:
        from keras import layers

        cls = {"max": layers.MaxPooling2D, "avg": layers.AveragePooling2D}[self.kind]
        return cls(self.window, self.stride, padding=self.padding, name=name)


@dataclass(frozen=True)
class Dropout:
    rate: float

    def output_shape(self, name: str, x: Shape) -> Shape:
        return x

    def flops(self, x: Shape) -> int:
        return 0

    def keras_layer(self, name: str) -> Any:
        from keras import layers

        return layers.Dropout(self.rate, name=name)


@dataclass(frozen=True)
class Flatten:
    def output_shape(self, name: str, x: Shape) -> Shape:
        h, w, c = x
        return (h * w * c,)

    def flops(self, x: Shape) -> int:
        return 0

    def keras_layer(self, name: str) -> Any:
        from keras import layers

        return layers.Flatten(name=name)


@dataclass(frozen=True)
class Dense:
    units: int

    def output_shape(self, name: str, x: Shape) -> Shape:
        return (self.units,)

    def flops(self, x: Shape) -> int:
        return 2 * x[0] * self.units

    def keras_layer(self, name: str) -> Any:
        from keras import layers

        return layers.Dense(self.units, name=name)


@dataclass(frozen=True)
class GlobalAvgPool:
    def output_shape(self, name: str, x: Shape) -> Shape:
        return (x[2],)

    def flops(self, x: Shape) -> int:
        return 0

    def keras_layer(self, name: str) -> Any:
        from keras import layers

        return layers.GlobalAveragePooling2D(name=name)


@dataclass(frozen=True)
class Softmax:
    """Class probabilities, always in float32 so mixed precision keeps a stable loss."""

    def output_shape(self, name: str, x: Shape) -> Shape:
        return x

    def flops(self, x: Shape) -> int:
        return 0

    def keras_layer(self, name: str) -> Any:
        from keras import layers

        return layers.Activation("softmax", dtype="float32", name=name)


LayerSpec = Rescale | Conv | Pool | Dropout | Flatten | Dense | GlobalAvgPool | Softmax
