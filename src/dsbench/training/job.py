"""A job: a composed config checked once, with everything that can be known before training.

`make_job` is the one place a run's input is checked: the config against its schema, the
dataset it names, the sizes that only make sense within that data, the model's geometry
(each layer's shape traced, params and FLOPs counted, all in pure Python), and the
tracking store (writable, answering, accepting us). Whatever fails here is reported before
data is loaded, a framework is imported or a run is opened, and nothing after it checks
again: training, dry runs, `describe`, the benches and every job of a sweep take a Job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from dsbench.config import AUTO, TrainConfig, gpu_visible, sweep_layout, usable_cores, validate
from dsbench.contract import DIRTY
from dsbench.data.fetch import missing_files
from dsbench.data.registry import DatasetInfo, get_info
from dsbench.data.splits import check_sizes, prepared_anywhere
from dsbench.errors import DsbenchError
from dsbench.model.plan import (
    Plan,
    Row,
    count_params,
    flops_per_image,
    layer_rows,
    plan_from_config,
)
from dsbench.provenance import git_commit, short_commit
from dsbench.tracking.recorder import in_sweep, run_name
from dsbench.tracking.store import bound_retries, check_store


@dataclass(frozen=True)
class Share:
    """How a job shares the machine: its speed columns mean this."""

    threads: int  # threads it may use (a single run: every usable core)
    jobs: int | None  # jobs of its sweep at once on the machine, itself included; None: unknown


@dataclass(frozen=True)
class Job:
    """One training run, checked: what it trains, on what, and how big the model is."""

    cfg: TrainConfig
    info: DatasetInfo
    plan: Plan
    shapes: list[Row]  # each layer's predicted output shape
    params: int  # predicted; the Keras model's own count is what a run logs
    flops: int  # forward FLOPs of one image (multiply-adds × 2)
    share: Share

    @property
    def name(self) -> str:
        """The run's name (tracking.run_name, else dataset/model/downsample+head/s<seed>)."""
        return run_name(self.cfg)


def make_job(cfg: DictConfig | TrainConfig, schema: type = TrainConfig, store: bool = True) -> Job:
    """The checked job of a composed config, or one DsbenchError (bad input) or
    ExternalError (the store) saying what is wrong.

    `store=False` leaves the tracking store alone (a dry run, `describe`, a bench); the
    store is not checked either when tracking is off or the config is a dry run.
    """
    checked = cfg if isinstance(cfg, TrainConfig) else validate(cfg, schema)
    info = get_info(checked.dataset.name)
    check_fits(checked, info)
    plan = plan_from_config(checked, info.image_shape, info.num_classes)
    job = Job(
        checked,
        info,
        plan,
        layer_rows(plan, info.image_shape),
        count_params(plan, info.image_shape),
        flops_per_image(plan, info.image_shape),
        machine_share(checked),
    )
    if store and checked.tracking.enabled and not checked.dry_run:
        if not checked.tracking.allow_dirty:  # asks git only where the answer matters
            check_committed(checked, git_commit())
        bound_retries(checked.tracking.retry_seconds)
        check_store(checked.tracking.uri)  # down or unwritable: seconds, before the data
    return job


def check_committed(cfg: TrainConfig, commit: str) -> None:
    """A study's runs come from committed code: with tracking.allow_dirty=false (the study
    presets), uncommitted changes to the code or configs stop the job before it trains."""
    if commit.endswith(DIRTY) and not cfg.tracking.allow_dirty:
        raise DsbenchError(
            f"the code or configs have uncommitted changes ({short_commit(commit)}), and a "
            "study's runs must come from a commit: commit them (git status), or add "
            "tracking.allow_dirty=true (its runs are tagged as from a dirty tree)"
        )


def check_fits(cfg: TrainConfig, info: DatasetInfo) -> None:
    """Sizes that only make sense within the data: subsets, shifts, padding, batches."""
    check_sizes(info, cfg.dataset)
    h, w = info.image_shape[:2]
    side = min(h, w)
    shifts = {
        "trainer.augment_translate": [cfg.trainer.augment_translate],
        "evaluation.shifts": cfg.evaluation.shifts,
        "evaluation.consistency_shift": [cfg.evaluation.consistency_shift],
    }
    for key, values in shifts.items():
        if any(k >= side for k in values):
            raise DsbenchError(
                f"{key}={values if len(values) > 1 else values[0]} px would move the "
                f"{h}×{w} {info.name} images out of view: use at most {side - 1}"
            )
    if cfg.model.pad_to is not None and cfg.model.pad_to < max(h, w):
        raise DsbenchError(
            f"model.pad_to={cfg.model.pad_to} is smaller than the {h}×{w} {info.name} images "
            f"(it zero-pads, never crops): use at least {max(h, w)}, or null"
        )
    subset, batch = cfg.dataset.train_subset, cfg.trainer.batch_size
    if cfg.trainer.loop == "device" and subset is not None and batch > subset:
        raise DsbenchError(
            f"trainer.batch_size={batch} is larger than the {subset} training examples: the "
            f"device loop would train no step; use at most {subset}"
        )


def machine_share(cfg: TrainConfig) -> Share:
    """The threads and company of this job. A single run has every core to itself; a job of
    a sweep under the default launcher (hydra/launcher=cores) gets the sweep layout's share.
    Under another launcher the launcher decides how many run at once (joblib: its n_jobs),
    and a job limits its threads only where sweep.threads_per_job says so."""
    from hydra.core.hydra_config import HydraConfig

    cores = usable_cores()
    if not in_sweep():
        return Share(cores, 1)
    hydra = HydraConfig.get()
    launcher = hydra.runtime.choices.get("hydra/launcher")
    accelerator = cfg.trainer.backend == "jax" and gpu_visible()
    jobs, threads = sweep_layout(cfg.sweep.jobs, cfg.sweep.threads_per_job, cores, accelerator)
    if launcher == "cores":
        return Share(threads, jobs)
    own = threads if cfg.sweep.threads_per_job != AUTO else cores
    if launcher == "basic":
        return Share(own, 1)
    n_jobs = hydra.launcher.get("n_jobs")
    if launcher == "joblib" and isinstance(n_jobs, int):
        return Share(own, cores if n_jobs < 0 else n_jobs)
    return Share(own, None)


def unused_archive_dir(job: Job, overrides: Sequence[str]) -> str | None:
    """A note when `dataset.archive_dir` was given (in `overrides`), does not exist, and the
    source does not need it (TFDS has the dataset prepared): neither created nor ignored."""
    dataset = job.cfg.dataset
    if not any(o.startswith("dataset.archive_dir=") for o in overrides):
        return None
    if Path(dataset.archive_dir).expanduser().exists() or dataset.source == "archive":
        return None  # the archive source fetches into it (or says why it cannot)
    if dataset.source == "tfds" and not _tfds_prepared(job):
        return None  # TFDS will prepare from it: the fetch fills it
    return (
        f"note: dataset.archive_dir={dataset.archive_dir} does not exist; the "
        f"{dataset.source} source does not need it here (it is not created)"
    )


def _tfds_prepared(job: Job) -> bool:
    """TFDS has the job's dataset prepared: it needs no archives."""
    return prepared_anywhere(job.cfg.dataset.tfds_data_dir, job.info.tfds_name)


def dry_run_line(job: Job) -> str:
    """What a dry run prints: the job, checked as far as it can be without data or Keras."""
    t, dataset = job.cfg.trainer, job.cfg.dataset
    line = f"dry run: {job.name} lr={t.lr} epochs={t.epochs} flops/image={job.flops:,}"
    prepared = dataset.source == "tfds" and _tfds_prepared(job)
    missing = (
        []
        if dataset.source == "synthetic" or prepared
        else missing_files(job.info, dataset.archive_dir)
    )
    if missing:
        line += (
            f"; warning: {len(missing)} {dataset.name} archive(s) not in "
            f"{dataset.archive_dir}: the run downloads them (dsbench data "
            f"datasets={dataset.name} does it ahead)"
        )
    return line
