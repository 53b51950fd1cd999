"""Hydra callback: when a sweep ends, its tables, plots and dashboard go to its parent run.

Listed after `dsbench.tracking.sweep.SweepParentRun` in conf/base.yaml; Hydra ends callbacks
in reverse order, so this one runs while the parent is still open.
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dsbench.config import DEFAULT_STORE_URI, TrackingConfig
from dsbench.tracking.store import redacted
from dsbench.tracking.sweep import state

log = logging.getLogger(__name__)


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """A failure here must not turn a finished sweep into an error: it is logged, and
        `dsbench analyze sweep_run=<id>` can be run again later."""
        if state.parent is None or state.tracking is None:
            return
        from dsbench.analysis.report import analyze  # pandas and matplotlib: only now

        sweep = "`dsbench train " + " ".join(sys.argv[1:]) + "`"
        out = Path(config.hydra.sweep.dir)
        try:
            table = analyze(
                state.tracking.experiment,
                state.tracking.uri,
                out / "analysis",
                sweep=state.parent,
                command=f"the end of the sweep {sweep}",
            )
        except Exception as e:
            log.error("analysis of sweep %s failed (%s: %s)", state.parent, type(e).__name__, e)
            return
        print(where_it_went(table, state.tracking, state.parent, out), flush=True)


def where_it_went(table: Any, tracking: TrackingConfig, parent: str, out: Path) -> str:
    """The sweep's end on the terminal: its table in short, where everything went, and the
    commands that show more."""
    from dsbench.analysis.tables import terminal_summary  # pandas: only now

    name = shlex.quote(tracking.experiment)
    uri = tracking.uri
    store = "" if uri == DEFAULT_STORE_URI else f" tracking.uri={shlex.quote(uri)}"
    return "\n".join(
        [
            f"sweep {parent} of experiment {tracking.experiment} (store {redacted(tracking.uri)}):",
            terminal_summary(table),
            f"outputs: {out}/ (each job's log and config; tables, plots and dashboard in "
            "analysis/, also in the parent run)",
            f"more: dsbench analyze tracking.experiment={name}{store} sweep_run={parent}",
            f"      dsbench ui tracking.experiment={name}{store}",
        ]
    )
