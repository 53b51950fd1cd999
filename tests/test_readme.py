"""README is the front page: short, the measured result first, and its copies of facts
generated from their one source (the strategy table from the code, the result table from
results/) and checked here against it."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from dsbench.model.downsample import STRATEGIES
from dsbench.tools.docs import BEGIN, RESULT, result_table, strategy_table, with_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def prose(readme: str) -> str:
    """README without its generated tables, which grow with the registry and the results."""
    return re.sub(r"<!-- (\w+):begin -->.*?<!-- \1:end -->", "", readme, flags=re.S)


def test_readme_prose_is_at_most_7_5_kb() -> None:
    """What is written by hand stays short; a new strategy's table row is not counted."""
    assert len(prose(README).encode()) <= 7_500
    assert len(prose(README)) < len(README) - 2_000  # both tables were taken out


def test_readme_is_at_most_12_kb() -> None:
    """With room for the strategies of the registry and the headline result (about 100 bytes
    a row), still a page."""
    assert len(README.encode()) <= 12_000


def test_generated_tables_are_what_the_code_and_results_say() -> None:
    """`python -m dsbench.tools.docs` writes both; a new or changed strategy or a regenerated
    results/ table of the headline study fails here until it is rerun."""
    assert with_table(README) == README
    assert strategy_table() in README
    assert result_table() in README


def test_the_backbone_table_in_the_models_page_is_what_the_configs_say() -> None:
    from dsbench.tools.docs import MODELS, backbone_table, with_backbone_table

    page = MODELS.read_text()
    assert backbone_table() in page and with_backbone_table(page) == page


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
    assert "2026-12-03" in README.split("## Quickstart")[0]  # its date, with it


def test_result_table_is_the_whole_study() -> None:
    """Every strategy × head the study trained, each from 3 seeds; a strategy it did not
    train is named beside the table; where the study compares with max pooling, max is each
    head's reference."""
    table = pd.read_csv(RESULT)
    rows = result_rows()
    trained = set(table["downsample"])
    assert sorted((s.strip("`"), h) for s, h, *_ in rows) == sorted(
        (s, h) for s in trained for h in ("flatten", "gap")
    )
    result_section = README.split("## Quickstart")[0]
    for name in set(STRATEGIES) - trained:
        assert f"`{name}`" in result_section.split("<!-- result:end -->")[1], name
    assert (table["seeds"] == 3).all()
    for _, _, _, error, *_ in rows:
        assert re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d", error), error
    if "vs_max_diff" in table:
        assert [r[4] for r in rows if r[0] == "`max`"] == ["ref.", "ref."]


def test_result_table_changes_when_the_results_do(tmp_path: Path) -> None:
    table = pd.read_csv(RESULT)
    table.loc[table["downsample"] == "avg", "test_error_mean"] += 0.01
    table.to_csv(tmp_path / "comparison.csv", index=False)
    assert with_table(README, tmp_path / "comparison.csv") != README


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


def test_configuration_page_lists_every_config_group_option() -> None:
    """docs/configuration.md's group table is a copy of conf/'s folders: a new yaml (a study,
    a backbone) fails here until the page names it. Strategies are the exception: their row
    points at README's strategy table, which `make docs` generates from the registry (and
    `test_generated_tables_are_what_the_code_and_results_say` checks): adding one needs
    no edit here."""
    page = (ROOT / "docs" / "configuration.md").read_text()
    table = page.split("| group | options |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([\w/]+)` \| (.+?) \|", table, flags=re.M)
    groups = {d.name for d in (ROOT / "conf").iterdir() if d.is_dir()}
    # Hydra's own groups, to which conf/hydra/ adds options (the launcher)
    groups |= {f"hydra/{d.name}" for d in (ROOT / "conf" / "hydra").iterdir() if d.is_dir()}
    # local/ is the user's own, git-ignored; __pycache__ is Python's
    assert {g for g, _ in rows} == groups - {"local", "__pycache__", "hydra"}
    for group, options in rows:
        if group == "downsample":
            assert "(../README.md#downsampling-strategies)" in options
            continue
        listed = set(re.findall(r"`(\w+)`", options))
        ours = {f.stem for f in (ROOT / "conf" / group).glob("*.yaml")}
        if group.startswith("hydra/"):  # ours, beside the plugins' own options
            assert ours <= listed, group
            continue
        assert listed == ours, group
