"""The steady training rate: what a run's speed is, once compilation and warm-up are paid.

No framework import: the suite's loops, the bench and the PyTorch reference loop all use it.
"""

from __future__ import annotations

import math
import statistics


def steady_rate(rates: list[float]) -> float:
    """Median of the per-epoch rates after the first (which holds compilation and warm-up);
    the first itself when it is the only one; NaN for none."""
    if not rates:
        return math.nan
    return float(statistics.median(rates[1:] if len(rates) > 1 else rates))
