"""Where a study plugs into the suite: tags for its runs, and a report of its runs.

A study is one module in `dsbench/studies/` that defines `STUDY = Study(...)`; the core
finds it here, by listing that package, and never imports a study by name (the import-graph
test forbids the stages to import `dsbench.studies`). So the next study is one module, and
training and analysis stay the same.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from dsbench.config import TrainConfig

STUDIES_PACKAGE = "dsbench.studies"


@dataclass(frozen=True)
class Study:
    """A paper the suite reproduces, as the core sees it."""

    name: str
    title: str  # the report's heading: "ours vs <title>"
    report_file: str  # the report's file in an analysis folder, e.g. paper_vs_ours.md
    # A run's extra tags, from its config ({} for a run that is not the study's).
    run_tags: Callable[[TrainConfig], dict[str, Any]]
    # The Markdown report of an experiment's runs (a dsbench.analysis.load frame), or None
    # when none of them is the study's.
    report: Callable[[Any], str | None]
    # The study's runs in a frame of runs (some of them the study's): a report of one
    # sweep reads the whole experiment when this says the sweep holds some of its runs.
    owns_runs: Callable[[Any], bool] = lambda runs: False


@cache
def studies() -> tuple[Study, ...]:
    """Every study of `dsbench/studies/`, in the order of their module names."""
    package = importlib.import_module(STUDIES_PACKAGE)
    found = []
    for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
        study = getattr(importlib.import_module(f"{STUDIES_PACKAGE}.{module}"), "STUDY", None)
        if isinstance(study, Study):
            found.append(study)
    return tuple(found)


def run_tags(cfg: TrainConfig) -> dict[str, Any]:
    """The tags every study gives a run of this config."""
    tags: dict[str, Any] = {}
    for study in studies():
        tags.update(study.run_tags(cfg))
    return tags
