"""Output size of a sliding window, one axis: out = floor((n − k + 2p) / s) + 1.

Keras "valid" is p = 0; Keras "same" pads so that out = ceil(n / s). Where "same" needs an
odd total padding, Keras puts the extra pixel at the end; the formula still holds with 2p
read as the total padding, so this module works with the total and never a half pixel.
"""

from __future__ import annotations

import math

from dsbench.errors import DsbenchError

PADDINGS = ("valid", "same")


def out_size(n: int, k: int, s: int, total_pad: int = 0) -> int:
    """floor((n − k + 2p) / s) + 1, with 2p given as the total padding of the axis."""
    return (n - k + total_pad) // s + 1


def total_padding(n: int, k: int, s: int, padding: str) -> int:
    """Total padding (both sides) Keras applies along one axis for this padding mode."""
    if padding == "valid":
        return 0
    if padding == "same":
        return max((math.ceil(n / s) - 1) * s + k - n, 0)
    raise DsbenchError(f"padding {padding!r} is not supported; use one of {', '.join(PADDINGS)}")


def window_size(n: int, k: int, s: int, padding: str) -> int:
    """Output size of a k-wide, stride-s window along an n-long axis under Keras' `padding`
    (may be < 1; `window_out` is the checked form)."""
    return out_size(n, k, s, total_padding(n, k, s, padding))


def window_out(layer: str, n: int, k: int, s: int, padding: str) -> int:
    """Output size of a k×k, stride-s window over an n×n map; stops on a size below 1.

    The error names the layer, the sizes and the formula, so a user sees which slot of
    which backbone cannot take the input.
    """
    pad = total_padding(n, k, s, padding)
    out = window_size(n, k, s, padding)
    if out < 1:
        raise DsbenchError(
            f"layer {layer} ({k}×{k}, stride {s}, {padding}) would shrink {n}×{n} to "
            f"{max(out, 0)}×{max(out, 0)}: floor((n − k + 2p)/s) + 1 = "
            f"floor(({n} − {k} + {pad})/{s}) + 1 = {out} < 1; use a larger input, fewer "
            f"downsampling slots or 'same' padding"
        )
    return out
