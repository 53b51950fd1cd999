"""results/*-converged/: each comparison table is what the analysis computes from the folder's
committed store snapshot, the README's status line counts the snapshot's runs, and every
"mean ± std %" its findings quote is a number of that table."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from helpers import committed_store

from dsbench.analysis.report import load_study
from dsbench.analysis.tables import comparison
from dsbench.contract import Metric

RESULTS = Path(__file__).resolve().parents[1] / "results"
# results folder (= MLflow experiment) → its preset in experiments/
STUDIES = {
    "mnist-converged": "mnist_converged",
    "fashion_mnist-converged": "fashion_mnist_converged",
}
# What the study set out to compare: every strategy of its time × both heads × 3 seeds (the
# presets now default to 5, as every study does; these ran before).
HEADS = ("flatten", "gap")
SEEDS = 3
PRESET_SEEDS = 5


def preset_grid(preset: str) -> dict[str, list[str]]:
    """The study's own sweep grid (its preset's hydra.sweeper.params), as Hydra composes it:
    the results are checked against what the study ran, not against today's registry."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from dsbench import config

    config.register()
    with initialize_config_module(config.CONFIG_PATH.removeprefix("pkg://"), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiments={preset}"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    return {key: str(values).split(",") for key, values in params.items()}


@pytest.fixture(scope="module", params=list(STUDIES))
def study(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    name = request.param
    runs, _ = load_study(committed_store(RESULTS / name, tmp_path_factory.mktemp(name)), name)
    return RESULTS / name, runs


@pytest.mark.parametrize("folder", list(STUDIES))
def test_the_preset_is_the_study_grid(folder: str) -> None:
    grid = preset_grid(STUDIES[folder])
    assert tuple(grid["head"]) == HEADS and len(grid["trainer.seed"]) == PRESET_SEEDS
    assert len(grid["downsample"]) == 10  # the 10 strategies the study compared


def test_table_is_what_the_snapshot_gives(study: tuple[Path, pd.DataFrame]) -> None:
    folder, runs = study
    assert comparison(runs).to_csv(index=False) == (folder / "comparison.csv").read_text()


def test_status_line_counts_the_snapshot(study: tuple[Path, pd.DataFrame]) -> None:
    folder, runs = study
    readme = (folder / "README.md").read_text()
    status = re.search(r"\*\*Status: (complete|in progress), (\d+) of (\d+) runs FINISHED", readme)
    assert status, "README has no status line"
    state, done, total = status[1], int(status[2]), int(status[3])
    strategies = preset_grid(STUDIES[folder.name])["downsample"]
    assert total == len(strategies) * len(HEADS) * SEEDS
    assert done == (runs["status"] == "FINISHED").sum()
    assert (state == "complete") == (done == total)
    if state == "complete":  # every strategy × head from 3 FINISHED seeds, nothing left out
        table = pd.read_csv(folder / "comparison.csv")
        assert sorted(zip(table["downsample"], table["head"], strict=True)) == sorted(
            (s, h) for s in strategies for h in HEADS
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
    for column, places in ((Metric.TEST_ERROR, (2,)), (Metric.SHIFT_CONSISTENCY, (1, 2))):
        for mean, std in zip(
            table[f"{column}_mean"] * 100, table[f"{column}_std"] * 100, strict=True
        ):
            known |= {(f"{mean:.{p}f}", f"{std:.{p}f}") for p in places}
    numbers = quoted((folder / "README.md").read_text())
    assert numbers, "the README quotes no result"
    assert [n for n in numbers if n not in known] == []
