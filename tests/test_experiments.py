"""Every study in experiments/ composes, and every job of its sweep passes the checks a
training run makes before it loads data (the job's checks, as a dry run), in process."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from dsbench import config
from dsbench.training.job import dry_run_line, make_job

EXPERIMENTS = sorted(
    p.stem for p in (Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml")
)


def jobs(study: str) -> list[list[str]]:
    """The overrides of each job of the study's sweep (its hydra.sweeper.params grid), one
    seed of each: seeds change no config check."""
    cfg = compose("train", overrides=[f"experiments={study}"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params) or {}
    axes = [
        [f"{key}={v}" for v in str(values).split(",")][: 1 if key == "trainer.seed" else None]
        for key, values in params.items()
    ]
    return [list(job) for job in itertools.product(*axes)]


@pytest.mark.parametrize("study", EXPERIMENTS)
def test_every_job_of_every_study_composes(study: str, capsys: pytest.CaptureFixture) -> None:
    config.register()
    with initialize_config_module(config.CONFIG_PATH.removeprefix("pkg://"), version_base="1.3"):
        grid = jobs(study)
        assert grid, study
        for job in grid:
            checked = make_job(
                compose("train", overrides=[f"experiments={study}", *job, "dry_run=true"])
            )
            assert checked.cfg.dry_run
            print(dry_run_line(checked))
    printed = capsys.readouterr().out
    assert printed.count("dry run: ") == len(grid)


def test_the_studies_are_found() -> None:
    assert {"mnist_downsampling", "springenberg2015", "springenberg2015_fashion"} <= set(
        EXPERIMENTS
    )
