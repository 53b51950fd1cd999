"""results/springenberg2015-fashion_mnist/: its table.md is what the study code computes from
the committed store snapshot, and the README's verdict table copies that table's numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from helpers import committed_store

from dsbench.allconv import study_runs
from dsbench.studies import springenberg2015 as study

FOLDER = Path(__file__).resolve().parents[1] / "results" / "springenberg2015-fashion_mnist"
EXPERIMENT = "springenberg2015-fashion_mnist"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return study_runs(committed_store(FOLDER, tmp_path_factory.mktemp("store")), EXPERIMENT)


def test_table_is_what_the_snapshot_gives(runs: pd.DataFrame) -> None:
    assert study.report(runs) == (FOLDER / "table.md").read_text()


def readme_rows() -> dict[str, list[tuple[str, float, float]]]:
    """Backbone → [(variant, mean, std)] from the README's verdict table, in its order."""
    rows = {}
    for line in (FOLDER / "README.md").read_text().splitlines():
        found = re.fullmatch(r"\| ([ABC]) \| (.+?) \| .+ \|", line)
        if found:
            b, ours = found.groups()
            cells = [re.fullmatch(r"(.+) ([\d.]+) ± ([\d.]+)", c) for c in ours.split(" < ")]
            assert all(cells), line
            rows[b] = [(c[1], float(c[2]), float(c[3])) for c in cells]  # type: ignore[index]
    return rows


def test_readme_verdict_table_copies_the_study(runs: pd.DataFrame) -> None:
    table = study.selected(runs).set_index("variant")
    rows = readme_rows()
    assert sorted(rows) == ["A", "B", "C"]
    for b, cells in rows.items():
        names = [name for name, _, _ in cells]
        mine = table[table["model"] == f"springenberg_{b.lower()}"]
        assert sorted(names) == sorted(mine.index)
        assert names == list(mine["test_error_mean"].sort_values().index), b
        for name, mean, std in cells:
            assert (mean, std) == (
                round(table.loc[name, "test_error_mean"], 1),
                round(table.loc[name, "test_error_std"], 1),
            ), name
        assert (mine["seeds"] >= 2).all()
