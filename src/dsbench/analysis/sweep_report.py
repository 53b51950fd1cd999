"""Hydra callback: when a sweep ends, its tables, plots and dashboard go to its parent run.

Listed after `dsbench.tracking.sweep.SweepParentRun` in conf/base.yaml; Hydra ends callbacks
in reverse order, so this one runs while the parent is still open.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dsbench.tracking.sweep import state

log = logging.getLogger(__name__)


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """A failure here must not turn a finished sweep into an error: it is logged, and
        `python -m dsbench.analyze sweep=<id>` can be run again later."""
        if state.parent is None or state.tracking is None:
            return
        from dsbench.analysis.report import analyze  # pandas and matplotlib: only now

        sweep = "`python -m dsbench.train " + " ".join(sys.argv[1:]) + "`"
        try:
            analyze(
                state.tracking.experiment,
                state.tracking.uri,
                Path(config.hydra.sweep.dir) / "analysis",
                sweep=state.parent,
                command=f"the end of the sweep {sweep}",
            )
        except Exception as e:
            log.error("analysis of sweep %s failed (%s: %s)", state.parent, type(e).__name__, e)
