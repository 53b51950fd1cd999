"""Which function builds each layer spec's layer, one registry per framework.

A layer spec (dsbench.model.layers) is plain data. The function that turns it into a Keras
layer is registered with `@keras_builder(SpecClass)`, written beside the Keras class
(dsbench.frameworks.keras_layers; the stock Keras layers in keras_model); its PyTorch module
with `@torch_builder(SpecClass)` (torch_model). A spec is built by the builder of its class,
else of its nearest registered base class.

Imports no framework, so a module outside the package (a new strategy with its own layer)
registers its builders the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from dsbench.model.layers import Spec

B = TypeVar("B", bound=Callable[..., Any])

# spec class → builder, in registration order. Keras: builder(spec, name) → keras layer.
KERAS_BUILDERS: dict[type[Spec], Callable[..., Any]] = {}
# PyTorch: builder(spec, input shape (height, width, channels) or (features,)) → nn.Module.
TORCH_BUILDERS: dict[type[Spec], Callable[..., Any]] = {}


def _register(registry: dict[type[Spec], Callable[..., Any]], framework: str, spec_type: type):
    def register(build: B) -> B:
        if spec_type in registry:
            raise ValueError(f"the {framework} builder of {spec_type.__name__} is registered twice")
        registry[spec_type] = build
        return build

    return register


def keras_builder(spec_type: type[Spec]) -> Callable[[B], B]:
    """Register the decorated `build(spec, name) -> keras layer` for the spec class."""
    return _register(KERAS_BUILDERS, "Keras", spec_type)


def torch_builder(spec_type: type[Spec]) -> Callable[[B], B]:
    """Register the decorated `build(spec, input_shape) -> torch module` for the spec class."""
    return _register(TORCH_BUILDERS, "PyTorch", spec_type)


def builder_of(
    registry: dict[type[Spec], Callable[..., Any]], spec: Spec
) -> Callable[..., Any] | None:
    """The builder registered for the spec's class or its nearest base class; None if none."""
    return next((registry[t] for t in type(spec).__mro__ if t in registry), None)
