"""results/*-converged/: each comparison table is what the analysis computes from the folder's
committed store snapshot, the README's status line counts the snapshot's runs, and every
"mean ± std %" its findings quote is a number of that table."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from helpers import committed_store

from dsbench.analysis.runs import load_runs
from dsbench.analysis.tables import comparison
from dsbench.model.downsample import STRATEGIES

RESULTS = Path(__file__).resolve().parents[1] / "results"
STUDIES = ["mnist-converged", "fashion_mnist-converged"]  # folder = MLflow experiment name
HEADS = ("flatten", "gap")
SEEDS = 3


@pytest.fixture(scope="module", params=STUDIES)
def study(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    name = request.param
    runs = load_runs(committed_store(RESULTS / name, tmp_path_factory.mktemp(name)), name)
    return RESULTS / name, runs


def test_table_is_what_the_snapshot_gives(study: tuple[Path, pd.DataFrame]) -> None:
    folder, runs = study
    assert comparison(runs).to_csv(index=False) == (folder / "comparison.csv").read_text()


def test_status_line_counts_the_snapshot(study: tuple[Path, pd.DataFrame]) -> None:
    folder, runs = study
    readme = (folder / "README.md").read_text()
    status = re.search(r"\*\*Status: (complete|in progress), (\d+) of (\d+) runs FINISHED", readme)
    assert status, "README has no status line"
    state, done, total = status[1], int(status[2]), int(status[3])
    assert total == len(STRATEGIES) * len(HEADS) * SEEDS
    assert done == (runs["status"] == "FINISHED").sum()
    assert (state == "complete") == (done == total)
    if state == "complete":  # every strategy × head from 3 FINISHED seeds, nothing left out
        table = pd.read_csv(folder / "comparison.csv")
        assert sorted(zip(table["downsample"], table["head"], strict=True)) == sorted(
            (s, h) for s in STRATEGIES for h in HEADS
        )
        assert (table["seeds"] == SEEDS).all()
        assert (runs["status"] == "FINISHED").all()
        assert "All runs finished." in (folder / "comparison.md").read_text()


def quoted(readme: str) -> list[tuple[str, str]]:
    """Every "mean ± std %" of the README's prose (not its code blocks)."""
    prose = re.sub(r"```.*?```", "", readme, flags=re.S)
    return re.findall(r"(\d+\.\d+) ± (\d+\.\d+) %", prose)


def test_findings_quote_the_table(study: tuple[Path, pd.DataFrame]) -> None:
    """Test errors with 2 decimals, shift consistencies with 1 or 2: a number the table does
    not have is a typo or a stale copy."""
    folder, _ = study
    table = pd.read_csv(folder / "comparison.csv")
    known = set()
    for column, places in (("test_error", (2,)), ("shift_consistency", (1, 2))):
        for mean, std in zip(
            table[f"{column}_mean"] * 100, table[f"{column}_std"] * 100, strict=True
        ):
            known |= {(f"{mean:.{p}f}", f"{std:.{p}f}") for p in places}
    numbers = quoted((folder / "README.md").read_text())
    assert numbers, "the README quotes no result"
    assert [n for n in numbers if n not in known] == []
