"""One training run: `python -m dsbench.train [overrides]` (also `dsbench-train`).

    python -m dsbench.train downsample=avg head=gap trainer.epochs=3
    python -m dsbench.train -m experiments=mnist_downsampling     # a sweep

Order matters: everything that can reject bad input (config, data, model geometry, the
tracking store) runs before an MLflow run is opened, so bad input leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dsbench import cli, config, dataset, springenberg, tracking
from dsbench.describe import shape_table
from dsbench.errors import DsbenchError
from dsbench.evaluate import evaluate_shifts
from dsbench.model import (
    build_keras,
    count_trainable,
    flops_per_image,
    model_name,
    plan_from_config,
    trace,
)
from dsbench.preprocess import springenberg_preprocess

log = logging.getLogger(__name__)
config.register()


def select_backend(backend: str) -> None:
    """Set the Keras backend; it must happen before Keras is first imported."""
    import importlib

    module = {"tensorflow": "tensorflow", "jax": "jax"}[backend]
    try:
        importlib.import_module(module)  # Keras imports it next anyway
    except ImportError as e:
        raise DsbenchError(
            f"trainer.backend={backend} but {module} cannot be imported ({e}); install it "
            f"(pip install {module}) or choose another trainer.backend"
        ) from None
    os.environ["KERAS_BACKEND"] = backend
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise DsbenchError(
                f"Keras already runs the {keras.backend.backend()} backend in this process; "
                f"a sweep over trainer.backend needs one process per job "
                f"(hydra/launcher=joblib) or separate runs"
            )


def train(cfg: config.TrainConfig, output_dir: Path | None = None) -> dict[str, Any]:
    """Train and evaluate one model; returns the final metrics."""
    select_backend(cfg.trainer.backend)
    splits = dataset.load_splits(
        cfg.dataset.name,
        cfg.dataset.source,
        cfg.dataset.archive_dir,
        cfg.dataset.tfds_data_dir,
        cfg.dataset.val_fraction,
        cfg.dataset.split_seed,
        cfg.dataset.train_subset,
        cfg.dataset.test_subset,
        verify_md5=cfg.dataset.verify_md5,
    )
    if cfg.dataset.preprocess == "gcn_zca":
        splits = springenberg_preprocess(splits)  # ZCA fitted on the training split only
    info = splits.info
    plan = plan_from_config(cfg, info.image_shape, info.num_classes)
    rows = trace(plan, info.image_shape)  # bad geometry stops here

    from dsbench import trainer  # imports Keras, now that the backend is set

    trainer.configure(cfg.trainer)  # a precision this device cannot run stops here
    if cfg.tracking.enabled:
        tracking.open_experiment(cfg.tracking)  # an unusable store stops here
    model = build_keras(plan, info.image_shape, model_name(cfg.model, cfg.downsample, cfg.head))
    device_loop = cfg.trainer.loop == "device"
    n, batch = len(splits.x_train), cfg.trainer.batch_size
    steps = n // batch if device_loop else -(-n // batch)  # the device loop drops a part batch
    trainer.compile_model(model, cfg.trainer, steps)
    tags = {
        **tracking.job_tags(cfg),
        "device": trainer.device(),
        "data_source": splits.source,
        "git_commit": tracking.git_commit(),
        **paper_tags(cfg),
    }
    with tracking.tracked_run(cfg, tags) as run:
        run.log_params(config.flatten(cfg))
        run.log_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)), "config.yaml")
        run.log_text(shape_table(rows), "shapes.md")
        if output_dir is not None:
            run.log_artifacts(output_dir / ".hydra", "hydra")
        if device_loop:
            from dsbench import device_loop as loop

            lr = trainer.learning_rate(cfg.trainer, steps)
            history, timing = loop.fit(model, splits, cfg.trainer, run.log_metrics, lr)
        else:
            history, timing = trainer.fit(model, splits, cfg.trainer, run.log_metrics)
        losses = history.history.get("loss", [])
        if model.stop_training and losses and not all(map(_finite, losses)):
            raise FloatingPointError(f"loss became {losses[-1]} in epoch {len(losses)}")
        test = trainer.evaluate(model, splits.x_test, splits.y_test, cfg.trainer.batch_size)
        robustness = evaluate_shifts(
            trainer.predictor(model, cfg.trainer.batch_size),
            splits.x_test,
            splits.y_test,
            cfg.evaluation,
        )
        final = {
            "test_loss": test["loss"],
            "test_accuracy": test["accuracy"],
            "test_error": 1.0 - test["accuracy"],
            "params_total": float(model.count_params()),
            "params_trainable": float(count_trainable(model)),
            "flops_per_image": float(flops_per_image(plan, info.image_shape)),
            "compile_seconds": timing.compile_seconds,
            "steady_images_per_sec": trainer.steady_images_per_sec(timing.epochs),
            "train_images": float(len(splits.x_train)),
            **robustness,
        }
        peak = trainer.peak_memory_bytes()
        if peak is not None:
            final["peak_memory_bytes"] = peak
        run.log_metrics(final)
    log.info("%s: test accuracy %.4f", tracking.run_name(cfg), final["test_accuracy"])
    return final


def paper_tags(cfg: config.TrainConfig) -> dict[str, Any]:
    """`variant` (e.g. All-CNN-C) and `paper_error` (Table 3) for the Springenberg models."""
    tags: dict[str, Any] = {}
    name = springenberg.variant(cfg.model.name, cfg.downsample.name)
    if name:
        tags["variant"] = name
        error = springenberg.paper_error(
            cfg.dataset.name, cfg.model.name, cfg.downsample.name, cfg.trainer.augmented
        )
        if error is not None:
            tags["paper_error"] = error
    return tags


def dry_run(cfg: config.TrainConfig) -> None:
    """What the job would train, checked as far as possible without data or Keras."""
    info = dataset.get_info(cfg.dataset.name)
    plan = plan_from_config(cfg, info.image_shape, info.num_classes)
    trace(plan, info.image_shape)
    print(
        f"dry run: {tracking.run_name(cfg)} lr={cfg.trainer.lr} epochs={cfg.trainer.epochs} "
        f"flops/image={flops_per_image(plan, info.image_shape):,}",
        flush=True,
    )


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


@hydra.main(version_base="1.3", config_path=config.CONF_DIR, config_name="train")
def _app(cfg: DictConfig) -> float:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    with cli.exit_on_bad_input():  # bad input: one line, exit 2; in a sweep, the sweep stops
        checked = config.validate(cfg)
        if checked.dry_run:
            dry_run(checked)
            return 0.0
        if checked.tracking.enabled and checked.tracking.resume:
            done = tracking.finished_run(checked)
            if done is not None:
                print(
                    f"dsbench: skipped {tracking.run_name(checked)}: already FINISHED as run "
                    f"{done.info.run_id} (tracking.resume=false trains it again)",
                    file=sys.stderr,
                    flush=True,
                )
                return done.data.metrics.get("test_accuracy", float("nan"))
        if not tracking.in_sweep():
            return train(checked, output_dir)["test_accuracy"]
        try:
            return train(checked, output_dir)["test_accuracy"]
        except DsbenchError:
            raise
        except Exception as e:
            # Its run is marked FAILED with the reason (one is made if it had none yet), so
            # the sweep counts it and the analysis lists it; the sweep goes on.
            tracking.record_failure(checked, e)
            log.error("job failed (%s: %s); the sweep goes on", type(e).__name__, e)
            return float("nan")


def main() -> None:
    cli.run_app(_app)


if __name__ == "__main__":
    main()
