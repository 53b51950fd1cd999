"""Did a run reach its plateau? The one rule every table and README reads.

A run is still improving when the best validation accuracy of its last WINDOW epochs beats
the best of all the epochs before them by more than MIN_RISE (0.1 percentage points). A run
of WINDOW epochs or fewer has no "before" and counts as still improving: nothing shows it
stopped. Pure Python: training logs the verdict, analysis recomputes it for runs logged
before the rule existed (from their per-epoch `val_accuracy`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

WINDOW = 5  # epochs
MIN_RISE = 0.001  # in accuracy (0.1 pp): about the noise of validation accuracy on 6,000 images
RULE = (
    f"still improving: the best validation accuracy of the last {WINDOW} epochs beats the "
    f"best before them by more than {100 * MIN_RISE:.1f} pp (runs of {WINDOW} epochs or "
    "fewer count as still improving)"
)


def still_improving(val_accuracy: Sequence[float]) -> bool | None:
    """The rule on one run's per-epoch validation accuracy, oldest first; None when the run
    had no validation split (nothing to tell from)."""
    history = [a for a in val_accuracy if not math.isnan(a)]
    if not history:
        return None
    if len(history) <= WINDOW:
        return True
    return max(history[-WINDOW:]) - max(history[:-WINDOW]) > MIN_RISE
