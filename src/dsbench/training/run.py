"""One training run of a checked job: load data → build → fit → evaluate → record.

The job (dsbench.training.job) was checked before: config, geometry, sizes and the store.
What is left to fail here is what only the data, the framework or the device can tell (an
archive's md5, a precision this device cannot run); all of it comes before an MLflow run
is opened, so bad input leaves no run behind, and the archive path reads numpy only, so
bad data stops before TensorFlow is imported.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from dsbench import hooks
from dsbench.config import flatten, usable_cores
from dsbench.contract import Metric, Tag
from dsbench.data.preprocess import springenberg_preprocess
from dsbench.data.splits import Splits, load_splits, split_records
from dsbench.errors import Diverged
from dsbench.model.plan import model_name, shape_table
from dsbench.provenance import git_commit
from dsbench.tracking import recorder as tracking
from dsbench.training.backend import device, limit_threads, select_backend, set_backend
from dsbench.training.job import Job
from dsbench.training.timing import Fitted, steps_per_epoch

log = logging.getLogger(__name__)


def train(job: Job, output_dir: Path | None = None) -> dict[str, float]:
    """Train and evaluate one model; returns the final metrics (also logged to its run)."""
    splits = load_data(job)
    model = build(job, splits)
    with tracking.tracked_run(job.cfg, run_tags(job, splits)) as run:
        record_inputs(job, run, output_dir, splits)
        fitted = fit_model(job, model, splits, run.log_metrics)
        final = evaluate(job, model, splits, fitted)
        run.log_metrics(final)
        if job.cfg.tracking.log_model:  # a diverged run raised above: it logs none
            run.log_model(model, splits.x_test[:2])
    return final


def result_line(name: str, final: dict[str, float]) -> str:
    """A run's result in one line: what the tables compare, and what it cost."""
    parts = [f"test error {100 * final[Metric.TEST_ERROR]:.2f} %"]
    for key, what in (
        (Metric.SHIFT_CONSISTENCY, "shift consistency"),
        (Metric.CIRCULAR_SHIFT_CONSISTENCY, "circular shift consistency"),
    ):
        if key in final:
            parts.append(f"{what} {100 * final[key]:.1f} %")
    parts.append(f"{int(final[Metric.PARAMS_TRAINABLE]):,} params")
    if Metric.TOTAL_TRAIN_SECONDS in final:
        parts.append(f"trained in {duration(final[Metric.TOTAL_TRAIN_SECONDS])}")
    return f"{name}: {', '.join(parts)}"


def duration(seconds: float) -> str:
    """4 s, 3 min 20 s, 2 h 05 min."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def load_data(job: Job) -> Splits:
    """The job's splits, preprocessed as the config asks."""
    if job.share.threads < usable_cores():  # a job of a sweep, beside others
        limit_threads(job.share.threads)  # before TensorFlow starts (TFDS may start it)
    set_backend(job.cfg.trainer.backend)  # before TFDS may import Keras through TensorFlow
    splits = load_splits(job.cfg.dataset)
    if job.cfg.dataset.preprocess == "gcn_zca":
        splits = springenberg_preprocess(splits)  # ZCA fitted on the training split only
    return splits


def build(job: Job, splits: Splits) -> Any:
    """The job's Keras model, compiled with its optimizer and schedule."""
    select_backend(job.cfg.trainer.backend)
    from dsbench.frameworks.keras_model import build_keras  # Keras, now that the backend is set
    from dsbench.training import fit

    fit.configure(job.cfg.trainer)  # a precision this device cannot run stops here
    cfg = job.cfg
    name = model_name(cfg.model, cfg.downsample, cfg.head)
    model = build_keras(job.plan, job.info.image_shape, name)
    fit.compile_model(model, cfg.trainer, steps_per_epoch(len(splits.x_train), cfg.trainer))
    return model


def run_tags(job: Job, splits: Splits) -> dict[str, Any]:
    """What the run is found and grouped by, where it ran, and its studies' tags."""
    return {
        **tracking.job_tags(job.cfg),
        Tag.DEVICE: device(),
        Tag.DATA_SOURCE: splits.source,
        Tag.GIT_COMMIT: git_commit(),
        Tag.THREADS: job.share.threads,
        **({Tag.JOBS_AT_ONCE: job.share.jobs} if job.share.jobs is not None else {}),
        **hooks.run_tags(job.cfg),
    }


def record_inputs(job: Job, run: tracking.Tracker, output_dir: Path | None, splits: Splits) -> None:
    """The run's params, its data (MLflow inputs with digests), its whole config, the
    model's predicted shapes, Hydra's files."""
    run.log_params(flatten(job.cfg))
    # The official location: the archives' md5s say they are its files, whichever mirror or
    # folder they were read from.
    source = None if splits.source == "synthetic" else splits.info.url
    run.log_inputs(split_records(splits, job.cfg.dataset), source)
    run.log_text(OmegaConf.to_yaml(OmegaConf.structured(job.cfg)), "config.yaml")
    run.log_text(shape_table(job.shapes), "shapes.md")
    if output_dir is not None:
        run.log_artifacts(output_dir / ".hydra", "hydra")


def fit_model(job: Job, model: Any, splits: Splits, log_epoch: Any) -> Fitted:
    """Train with the job's loop; a loss that became NaN or infinite raises Diverged."""
    from dsbench.training import fit

    trainer = job.cfg.trainer
    if trainer.loop == "device":
        from dsbench.training import device_loop

        lr = fit.learning_rate(trainer, steps_per_epoch(len(splits.x_train), trainer))
        fitted = device_loop.fit(model, splits, trainer, log_epoch, lr)
    else:
        fitted = fit.fit(model, splits, trainer, log_epoch)
    if fitted.diverged:
        raise Diverged(f"loss became {fitted.losses[-1]} in epoch {len(fitted.losses)}")
    return fitted


def evaluate(job: Job, model: Any, splits: Splits, fitted: Fitted) -> dict[str, float]:
    """The run's final metrics: test set, shifted test sets, size, cost and speed."""
    from dsbench.frameworks.keras_model import count_trainable
    from dsbench.training import fit
    from dsbench.training.evaluate import evaluate_shifts

    batch = job.cfg.trainer.batch_size
    test = fit.evaluate(model, splits.x_test, splits.y_test, batch)
    predict = fit.predictor(model, batch)
    final = {
        Metric.TEST_LOSS: test[Metric.LOSS],
        Metric.TEST_ACCURACY: test[Metric.ACCURACY],
        Metric.TEST_ERROR: 1.0 - test[Metric.ACCURACY],
        Metric.PARAMS_TOTAL: float(model.count_params()),
        Metric.PARAMS_TRAINABLE: float(count_trainable(model)),
        Metric.FLOPS_PER_IMAGE: float(job.flops),
        Metric.TRAIN_IMAGES: float(len(splits.x_train)),
        **fitted.metrics(),
        **evaluate_shifts(predict, splits.x_test, splits.y_test, job.cfg.evaluation, batch),
    }
    peak = fit.peak_memory_bytes()
    if peak is not None:
        final[Metric.PEAK_MEMORY_BYTES] = peak
    return final
