"""README is the front page: short, the measured result first, and its copies of facts
checked against their one source (the strategy table against the code, the result table
against results/)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from dsbench.tools.docs import BEGIN, strategy_table, with_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
RESULT = ROOT / "results" / "mnist-downsampling" / "comparison.csv"


def test_readme_is_at_most_10_kb() -> None:
    assert len(README.encode()) <= 10_000


def test_strategy_table_is_what_the_code_says() -> None:
    """`python -m dsbench.tools.docs` writes it; a new or changed strategy fails here."""
    assert with_table(README) == README
    assert strategy_table() in README


def test_the_generated_table_changes_when_the_code_does() -> None:
    head, _, table = README.partition(BEGIN)
    stale = head + BEGIN + table.replace("| 34,826 | 4.88 |", "| 34,825 | 4.88 |", 1)
    assert stale != README and with_table(stale) == README


def result_rows() -> list[list[str]]:
    section = README.split("## Result", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_result_table_is_on_the_first_screen() -> None:
    first_screen = "\n".join(README.splitlines()[:40])
    assert "## Result" in first_screen and "| `max` | flatten |" in first_screen
    assert "2026-11-24" in README.split("## Quickstart")[0]  # its date, with it


def pm(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def test_result_table_is_the_measured_one() -> None:
    """Every row of README's result table is the committed results/ table's, to the digit."""
    table = pd.read_csv(RESULT).set_index(["downsample", "head"])
    rows = result_rows()
    assert len(rows) == len(table) == 20
    for strategy, head, error, consistency, params, mflops in rows:
        row = table.loc[(strategy.strip("`"), head)]
        assert error == pm(row.test_error_mean, row.test_error_std), (strategy, head)
        assert consistency == pm(row.shift_consistency_mean, row.shift_consistency_std)
        assert params == f"{row.params_total_mean:,.0f}"
        assert mflops == f"{row.flops_per_image_mean / 1e6:.2f}"


def test_add_a_strategy_section_names_the_three_edits() -> None:
    section = README.split("## Add a downsampling strategy", 1)[1].split("\n## ", 1)[0]
    for place in (
        "src/dsbench/model/downsample.py",
        "conf/downsample/",
        "tests/test_strategies.py",
    ):
        assert place in section, place


def test_every_relative_link_resolves() -> None:
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).exists(), (page.name, target)
