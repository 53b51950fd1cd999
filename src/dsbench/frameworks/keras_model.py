"""A plan as a Keras 3 model: one Keras layer per layer spec, on whatever backend is set.

Import this only after the backend is chosen (KERAS_BACKEND is read when Keras is first
imported): `dsbench.training.backend.select_backend`. Each spec's layer comes from the builder
registered for its class (dsbench.frameworks.builders): the stock Keras layers' below, the
custom layers' beside their classes in keras_layers.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import keras
from keras import layers

from dsbench.errors import DsbenchError
from dsbench.frameworks import keras_layers  # noqa: F401  (registers the custom layers' builders)
from dsbench.frameworks.builders import KERAS_BUILDERS, builder_of, keras_builder
from dsbench.model import layers as spec
from dsbench.model.layers import Shape, Spec
from dsbench.model.plan import Plan


def keras_layer(s: Spec, name: str) -> Any:
    """The Keras layer of one spec, from the builder registered for its class."""
    build = builder_of(KERAS_BUILDERS, s)
    if build is None:
        raise TypeError(f"no Keras layer for the spec {type(s).__name__} of layer {name}")
    return build(s, name)


# The specs built from stock Keras layers; the others' builders sit beside their Keras
# classes in keras_layers.


@keras_builder(spec.Rescale)
def _rescale(s: spec.Rescale, name: str) -> Any:
    return layers.Rescaling(s.scale, name=name)


@keras_builder(spec.Pad)
def _pad(s: spec.Pad, name: str) -> Any:
    return layers.ZeroPadding2D((s.rows, s.cols), name=name)


@keras_builder(spec.Augment)
def _augment(s: spec.Augment, name: str) -> Any:
    return keras.Sequential(augmentation_layers(s.translate, s.image_size, s.flip), name=name)


@keras_builder(spec.Conv)
def _conv(s: spec.Conv, name: str) -> Any:
    if s.padding_mode == "circular":
        from dsbench.frameworks.keras_layers import CircularConv2D

        return CircularConv2D(
            s.filters,
            s.kernel,
            strides=s.stride,
            activation=s.activation,
            use_bias=s.bias,
            name=name,
        )
    return layers.Conv2D(
        s.filters,
        s.kernel,
        strides=s.stride,
        padding=s.padding,
        activation=s.activation,
        use_bias=s.bias,
        name=name,
    )


@keras_builder(spec.Pool)
def _pool(s: spec.Pool, name: str) -> Any:
    cls = {"max": layers.MaxPooling2D, "avg": layers.AveragePooling2D}[s.kind]
    return cls(s.window, s.stride, padding=s.padding, name=name)


@keras_builder(spec.Dropout)
def _dropout(s: spec.Dropout, name: str) -> Any:
    return layers.Dropout(s.rate, name=name)


@keras_builder(spec.Flatten)
def _flatten(s: spec.Flatten, name: str) -> Any:
    return layers.Flatten(name=name)


@keras_builder(spec.Dense)
def _dense(s: spec.Dense, name: str) -> Any:
    return layers.Dense(s.units, use_bias=s.bias, name=name)


@keras_builder(spec.GlobalAvgPool)
def _global_avg_pool(s: spec.GlobalAvgPool, name: str) -> Any:
    return layers.GlobalAveragePooling2D(name=name)


@keras_builder(spec.GlobalMaxPool)
def _global_max_pool(s: spec.GlobalMaxPool, name: str) -> Any:
    return layers.GlobalMaxPooling2D(name=name)


@keras_builder(spec.BatchNorm)
def _batch_norm(s: spec.BatchNorm, name: str) -> Any:
    return layers.BatchNormalization(momentum=s.momentum, name=name)


@keras_builder(spec.Activation)
def _activation(s: spec.Activation, name: str) -> Any:
    return layers.Activation(s.kind, name=name)


@keras_builder(spec.Add)
def _add(s: spec.Add, name: str) -> Any:
    return layers.Add(name=name)


@keras_builder(spec.Softmax)
def _softmax(s: spec.Softmax, name: str) -> Any:
    # float32 whatever the policy, so mixed precision keeps a stable loss.
    return layers.Activation("softmax", dtype="float32", name=name)


def build_keras(
    plan: Plan, input_shape: Shape, name: str = "dsbench", outputs: dict[str, Any] | None = None
) -> keras.Model:
    """The planned model as a Keras functional model (the backend is Keras' choice).

    `outputs`, if given, receives each layer's output tensor by layer name (a shared layer's
    use on a shortcut as `<name>@shortcut`): what `describe` checks the plan's shapes with.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    seen: dict[str, Any] = {} if outputs is None else outputs
    x = inputs
    for layer_name, s in plan:
        x = _apply(layer_name, s, x, seen)
    return keras.Model(inputs, x, name=name)


def _apply(name: str, s: Spec, x: Any, outputs: dict[str, Any]) -> Any:
    if not isinstance(s, spec.Residual):
        outputs[name] = keras_layer(s, name)(x)
        return outputs[name]
    shortcut, main, built, inputs_of = x, x, {}, {}
    for sub_name, sub in s.body:
        inputs_of[sub_name] = main
        built[sub_name] = keras_layer(sub, sub_name)
        main = outputs[sub_name] = built[sub_name](main)
    for step in s.shortcut(name, tuple(x.shape[1:])):
        if not step.shared:
            shortcut = _apply(step.name, step.spec, shortcut, outputs)
            continue
        layer = built[step.name]
        if isinstance(step.spec, spec.PolyphasePool):  # the phase the main path chose
            shortcut = layer([shortcut, inputs_of[step.name]])
        else:
            shortcut = layer(shortcut)
        outputs[f"{step.name}@shortcut"] = shortcut
    x = outputs[f"{name}_add"] = keras_layer(spec.Add(), f"{name}_add")([main, shortcut])
    if s.activation:
        act = keras_layer(spec.Activation(s.activation), f"{name}_act")
        x = outputs[f"{name}_act"] = act(x)
    return x


def count_trainable(model: keras.Model) -> int:
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def augmentation_layers(
    translate_px: int, image_size: int, flip: bool, seed: int | None = None
) -> list[Any]:
    """Keras layers for training-time augmentation: random translation, horizontal flip.

    - Translation by up to `translate_px` pixels in each direction (0: none), filled with 0,
      i.e. "zero-pad by k pixels, then crop a random image_size window back": a
      `keras.layers.RandomTranslation` with nearest-neighbour sampling (so shifts are whole
      pixels) and factor (k + 0.5) / image_size, which makes each integer shift in
      [-k, k] equally likely (a factor of k / image_size would give the two extreme shifts
      half the weight of the others). Fill 0 is the mean of GCN+ZCA data.
    - `flip`: `keras.layers.RandomFlip("horizontal")`, each image mirrored with p = 0.5.

    Both are backend-agnostic Keras 3 layers that are active only with training=True (inside
    `model.fit`) and the identity at inference (`predict`, `evaluate`), so they can sit at the
    top of the model. Returns them in order (translate, then flip); an empty list when both
    are off. `seed` makes the random draws reproducible.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral):
        raise DsbenchError(f"image_size={image_size!r} is invalid: use a positive integer")
    ok = isinstance(translate_px, numbers.Integral) and not isinstance(translate_px, bool)
    if image_size <= 0 or not ok or not 0 <= translate_px < image_size:
        raise DsbenchError(
            f"translate_px={translate_px!r} is invalid for {image_size}-pixel images: "
            f"use an integer in [0, {image_size - 1}] (0 turns translation off)"
        )
    out: list[Any] = []
    if translate_px:
        factor = (translate_px + 0.5) / image_size
        out.append(
            layers.RandomTranslation(
                height_factor=factor,
                width_factor=factor,
                fill_mode="constant",
                interpolation="nearest",
                fill_value=0.0,
                seed=seed,
            )
        )
    if flip:
        out.append(layers.RandomFlip("horizontal", seed=None if seed is None else seed + 1))
    return out
