"""Sweeps laid out for the cores: by default a CPU machine runs its cores' worth of jobs at
once, one thread each (dsbench.config.sweep_layout); `sweep.jobs=1` runs them one at a time
with every core. Each run records its threads and how many jobs ran at once."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import mlflow
import pytest
from helpers import TINY, dsbench, train

from dsbench.config import SweepConfig, sweep_layout, usable_cores
from dsbench.contract import PARENT_RUN, SWEEP_ROLE, Tag
from dsbench.errors import DsbenchError

GRID = ("downsample=max,avg", "trainer.seed=0,1")  # 4 jobs


@pytest.mark.parametrize(
    ("jobs", "threads", "cores", "accelerator", "layout"),
    [
        ("auto", "auto", 2, False, (2, 1)),  # the measured rule: one thread per job
        ("auto", "auto", 16, False, (16, 1)),
        ("auto", "4", 16, False, (4, 4)),  # what the user sets wins; the other fills the cores
        ("2", "auto", 16, False, (2, 8)),
        ("3", "3", 4, False, (3, 3)),  # both set: as set
        ("auto", "8", 4, False, (1, 8)),  # at least one job
        ("auto", "auto", 16, True, (1, 16)),  # a GPU: one job, every core
        ("2", "auto", 16, True, (2, 16)),
    ],
)
def test_the_layout_rule(
    jobs: str, threads: str, cores: int, accelerator: bool, layout: tuple[int, int]
) -> None:
    assert sweep_layout(jobs, threads, cores, accelerator) == layout


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_layout_is_one_line(value: str) -> None:
    with pytest.raises(DsbenchError, match=f"sweep.jobs={value!r} is invalid: use auto or"):
        SweepConfig(jobs=value)


def _jobs(runs: list) -> tuple[object, list]:
    (parent,) = [r for r in runs if r.data.tags.get(Tag.ROLE) == SWEEP_ROLE]
    jobs = [r for r in runs if r is not parent]
    assert all(r.data.tags[PARENT_RUN] == parent.info.run_id for r in jobs)
    return parent, sorted(jobs, key=lambda r: r.info.start_time)


def _overlap(jobs: list) -> bool:
    """Whether some job started before the one before it ended."""
    return any(b.info.start_time < a.info.end_time for a, b in pairwise(jobs))


@pytest.mark.slow
def test_default_layout_runs_jobs_side_by_side(shared_data: Path, tmp_path: Path) -> None:
    cores = usable_cores()
    trained = train(tmp_path, *GRID, data=shared_data / "mnist", sweep=True)
    parent, jobs = _jobs(trained.runs)
    assert parent.info.status == "FINISHED" and parent.data.tags[Tag.JOBS] == "4"
    assert len(jobs) == 4 and {r.info.status for r in jobs} == {"FINISHED"}
    for r in jobs:
        assert r.data.tags[Tag.THREADS] == "1"
        assert r.data.tags[Tag.JOBS_AT_ONCE] == str(cores)
    if cores > 1:
        assert _overlap(jobs)
    # The sweep's table says its speeds were measured sharing the machine.
    table = mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="analysis/comparison.md", tracking_uri=trained.uri
    )
    assert f"{cores} job(s) at once × 1 thread(s)" in Path(table).read_text()


@pytest.mark.slow
def test_one_job_at_a_time_when_asked(shared_data: Path, tmp_path: Path) -> None:
    runs = train(tmp_path, *GRID, "sweep.jobs=1", data=shared_data / "mnist", sweep=True).runs
    parent, jobs = _jobs(runs)
    assert parent.info.status == "FINISHED" and len(jobs) == 4
    for r in jobs:
        assert r.data.tags[Tag.THREADS] == str(usable_cores())
        assert r.data.tags[Tag.JOBS_AT_ONCE] == "1"
    assert not _overlap(jobs)


@pytest.mark.slow
def test_a_failed_job_in_a_worker_is_counted_without_a_store(
    shared_data: Path, tmp_path: Path
) -> None:
    """The jobs run in worker processes and nothing is recorded: the job that diverged still
    makes the sweep exit 1 (each failed job leaves its mark in the sweep's folder)."""
    out = dsbench(
        "train",
        "-m",
        *TINY,
        f"dataset.archive_dir={shared_data / 'mnist'}",
        "trainer.optimizer=sgd",
        "trainer.lr=1e12,0.01",  # the first diverges
        "tracking.enabled=false",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )
    assert out.returncode == 1, out.stderr[-3000:]
    assert "1 job(s) of the sweep failed" in out.stderr
    assert [p.name for p in (tmp_path / "sweep" / ".failed").iterdir()] == ["0"]


@pytest.mark.slow
def test_the_sweep_bench_runs_both_layouts(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make bench-sweep` at a tiny size: both layouts run as real sweeps and the table says
    how each shared the machine (the ratio itself is the bench's, not a test's)."""
    monkeypatch.setenv("DSBENCH_DATA", str(shared_data))  # the sweeps run in their own folders
    out = dsbench(
        "tools.sweep_speed",
        "models=[convnet]",
        "images={convnet: 512}",
        "epochs=1",
        "repeats=1",
        "overrides=['dataset.test_subset=500','evaluation.consistency_shift=0']",
        f"out_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (table,) = tmp_path.glob("sweep-*.md")
    text = table.read_text()
    cores = usable_cores()
    assert re.search(rf"\| convnet +\| one at a time +\| +4 \| 1 × {cores} ", text), text
    assert re.search(rf"\| convnet +\| laid out +\| +4 \| {cores} × 1 ", text), text
