"""One whole training run: data → plan → Keras model → fit → evaluation → MLflow.

Order matters: everything that can reject bad input (config, model geometry, the store's
folder, data, precision) runs before an MLflow run is opened, so bad input leaves nothing
behind; and what needs no framework (config, geometry, the store's folder, archives and
their md5) runs before TensorFlow is imported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from dsbench.config import TrainConfig, flatten
from dsbench.data.preprocess import springenberg_preprocess
from dsbench.data.registry import DatasetInfo, get_info
from dsbench.data.splits import check_sizes, load_splits
from dsbench.errors import Diverged, DsbenchError
from dsbench.model.layers import LayerSpec, Shape
from dsbench.model.plan import (
    Plan,
    flops_per_image,
    model_name,
    plan_from_config,
    shape_table,
    trace,
)
from dsbench.provenance import git_commit
from dsbench.studies import springenberg2015
from dsbench.tracking import runs as tracking
from dsbench.tracking.store import check_store, open_experiment
from dsbench.training.backend import select_backend, set_backend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Planned:
    """A run's model, checked without data or a framework."""

    info: DatasetInfo
    plan: Plan
    rows: list[tuple[str, LayerSpec, Shape]]  # each layer's predicted output shape


def preflight(cfg: TrainConfig) -> Planned:
    """The dataset and model a config names, the model's geometry traced: bad names and
    sizes stop here, in pure Python."""
    info = get_info(cfg.dataset.name)
    check_fits(cfg, info)
    plan = plan_from_config(cfg, info.image_shape, info.num_classes)
    return Planned(info, plan, trace(plan, info.image_shape))


def check_fits(cfg: TrainConfig, info: DatasetInfo) -> None:
    """Sizes that only make sense within the data: subsets, shifts, padding, batches."""
    data = cfg.dataset
    check_sizes(info, data.source, data.val_fraction, data.train_subset, data.test_subset)
    side = min(info.image_shape[:2])
    h, w = info.image_shape[:2]
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
    subset = data.train_subset
    if cfg.trainer.loop == "device" and subset is not None and cfg.trainer.batch_size > subset:
        raise DsbenchError(
            f"trainer.batch_size={cfg.trainer.batch_size} is larger than the "
            f"{data.train_subset} training examples: the device loop would train no step; "
            f"use at most {data.train_subset}"
        )


def train(cfg: TrainConfig, output_dir: Path | None = None) -> dict[str, Any]:
    """Train and evaluate one model; returns the final metrics."""
    planned = preflight(cfg)
    if cfg.tracking.enabled:
        check_store(cfg.tracking.uri)  # unwritable, down or refusing: before the data loads
    set_backend(cfg.trainer.backend)
    splits = load_splits(  # the archive path reads numpy only: bad data stops before Keras
        cfg.dataset.name,
        cfg.dataset.source,
        cfg.dataset.archive_dir,
        cfg.dataset.tfds_data_dir,
        cfg.dataset.val_fraction,
        cfg.dataset.split_seed,
        cfg.dataset.train_subset,
        cfg.dataset.test_subset,
        verify_md5=cfg.dataset.verify_md5,
        url=cfg.dataset.url,
    )
    if cfg.dataset.preprocess == "gcn_zca":
        splits = springenberg_preprocess(splits)  # ZCA fitted on the training split only
    info, plan = planned.info, planned.plan
    select_backend(cfg.trainer.backend)

    # Keras, now that the backend is set.
    from dsbench.build.keras_model import build_keras, count_trainable
    from dsbench.training import fit
    from dsbench.training.backend import device
    from dsbench.training.evaluate import evaluate_shifts

    fit.configure(cfg.trainer)  # a precision this device cannot run stops here
    if cfg.tracking.enabled:
        open_experiment(cfg.tracking)  # an unusable store stops here
    model = build_keras(plan, info.image_shape, model_name(cfg.model, cfg.downsample, cfg.head))
    device_loop = cfg.trainer.loop == "device"
    n, batch = len(splits.x_train), cfg.trainer.batch_size
    steps = n // batch if device_loop else -(-n // batch)  # the device loop drops a part batch
    fit.compile_model(model, cfg.trainer, steps)
    tags = {
        **tracking.job_tags(cfg),
        "device": device(),
        "data_source": splits.source,
        "git_commit": git_commit(),
        **paper_tags(cfg),
    }
    with tracking.tracked_run(cfg, tags) as run:
        run.log_params(flatten(cfg))
        run.log_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)), "config.yaml")
        run.log_text(shape_table(planned.rows), "shapes.md")
        if output_dir is not None:
            run.log_artifacts(output_dir / ".hydra", "hydra")
        if device_loop:
            from dsbench.training import device_loop as loop

            lr = fit.learning_rate(cfg.trainer, steps)
            history, timing = loop.fit(model, splits, cfg.trainer, run.log_metrics, lr)
        else:
            history, timing = fit.fit(model, splits, cfg.trainer, run.log_metrics)
        losses = history.history.get("loss", [])
        if model.stop_training and losses and not all(map(_finite, losses)):
            raise Diverged(f"loss became {losses[-1]} in epoch {len(losses)}")
        test = fit.evaluate(model, splits.x_test, splits.y_test, batch)
        robustness = evaluate_shifts(
            fit.predictor(model, batch), splits.x_test, splits.y_test, cfg.evaluation, batch
        )
        final = {
            "test_loss": test["loss"],
            "test_accuracy": test["accuracy"],
            "test_error": 1.0 - test["accuracy"],
            "params_total": float(model.count_params()),
            "params_trainable": float(count_trainable(model)),
            "flops_per_image": float(flops_per_image(plan, info.image_shape)),
            "compile_seconds": timing.compile_seconds,
            "steady_images_per_sec": fit.steady_images_per_sec(timing.epochs),
            "total_train_seconds": sum(e["epoch_seconds"] for e in timing.epochs),
            "train_images": float(len(splits.x_train)),
            "stopped_epoch": float(len(timing.epochs)),  # the epochs trained
            **robustness,
        }
        if timing.best_epoch is not None:  # early stopping: the weights evaluated
            final["best_epoch"] = float(timing.best_epoch)
        peak = fit.peak_memory_bytes()
        if peak is not None:
            final["peak_memory_bytes"] = peak
        run.log_metrics(final)
    log.info("%s: test accuracy %.4f", tracking.run_name(cfg), final["test_accuracy"])
    return final


def paper_tags(cfg: TrainConfig) -> dict[str, Any]:
    """`variant` (e.g. All-CNN-C) and `paper_error` (Table 3) for the Springenberg models."""
    tags: dict[str, Any] = {}
    name = springenberg2015.variant(cfg.model.name, cfg.downsample.name)
    if name:
        tags["variant"] = name
        error = springenberg2015.paper_error(
            cfg.dataset.name, cfg.model.name, cfg.downsample.name, cfg.trainer.augmented
        )
        if error is not None:
            tags["paper_error"] = error
    return tags


def dry_run(cfg: TrainConfig) -> None:
    """What the job would train, checked as far as possible without data or Keras."""
    planned = preflight(cfg)
    print(
        f"dry run: {tracking.run_name(cfg)} lr={cfg.trainer.lr} epochs={cfg.trainer.epochs} "
        f"flops/image={flops_per_image(planned.plan, planned.info.image_shape):,}",
        flush=True,
    )


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")
