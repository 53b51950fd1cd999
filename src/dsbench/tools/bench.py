"""Training speed, measured side by side in one process: `dsbench bench`.

(`make bench`.)

For each model (default: the MNIST convnet and All-CNN-C, batch 512, random data of the real
shape) it measures, interleaved over `repeats` rounds so that a noisy machine affects all alike:

    suite         the suite's own run (dsbench.training.run.train), MLflow on
    no_tracking   the same with tracking.enabled=false
    keras_fit     bare keras.Model.fit on the same model, optimizer and arrays
    torch_loop    a hand-written PyTorch loop of the same layers (dsbench.tools.torch_loop), in the
                  suite's precision, where PyTorch is installed

then one epoch of real MNIST through the suite. It prints and writes
`<out_dir>/<device>-<backend>.md` and `.csv`: steady training images/s (median over rounds of
the median over the epochs after the first), achieved training TFLOP/s (3 × forward FLOPs ×
images/s), compile seconds, peak device memory, the ratios suite/keras_fit, suite/no_tracking
and suite/torch_loop, and the projected time of Springenberg 2015's Table-3 protocol
(12 models × 350 epochs × 50k images) at the measured All-CNN-C rate, scaled by each model's
FLOPs.

A GPU run uses the fast path for the suite (JAX, mixed_bfloat16, trainer.loop=device) unless
`suite=[...]` overrides say otherwise; a CPU run uses the defaults (TensorFlow, float32,
model.fit), or the JAX backend with `"suite=['trainer.backend=jax']"` (Hydra needs the quotes).
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from dsbench import cli, config
from dsbench.contract import Metric
from dsbench.errors import DsbenchError, unknown
from dsbench.provenance import produced_by
from dsbench.training.backend import has_gpu, select_backend
from dsbench.training.job import Job, make_job
from dsbench.training.timing import steady_rate

log = logging.getLogger(__name__)

MODELS = {  # name → overrides of conf/train.yaml
    "mnist_convnet": ["dataset=mnist", "model=convnet"],
    "allcnn_c": ["dataset=cifar10", "model=springenberg_c", "downsample=conv"],
}
FAST_PATH = ["trainer.backend=jax", "trainer.precision=mixed_bfloat16", "trainer.loop=device"]
VARIANTS = ("suite", "no_tracking", "keras_fit", "torch_loop")
TABLE3 = {"models": 12, "epochs": 350, "images": 50_000}  # Springenberg 2015, CIFAR-10


@dataclass
class BenchConfig:
    models: list[str] = field(default_factory=lambda: list(MODELS))
    batch_size: int = 512
    # Training images per epoch; null: 50,000 on a GPU, a CPU-sized number per model.
    images: int | None = None
    epochs: int = 3  # the first holds compilation and warm-up and is not counted
    repeats: int = 3  # interleaved rounds of every variant
    steps_per_execution: int = 16  # suite, device loop: training steps per dispatch
    suite: list[str] = field(default_factory=list)  # overrides of the suite's runs
    # Of VARIANTS, those to measure (torch_loop where PyTorch is installed and `torch` is on).
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    torch: bool = True  # the hand-written PyTorch loop too, where PyTorch is installed
    real_epoch: bool = True  # plus one epoch of real MNIST through the suite
    # The real MNIST archives, for the one real-data epoch: $DSBENCH_DATA/mnist, else data/mnist.
    archive_dir: str = "${oc.env:DSBENCH_DATA,data}/mnist"
    out_dir: str = "results/bench"

    def __post_init__(self) -> None:
        for name in self.models:
            if name not in MODELS:
                raise unknown("bench model", name, MODELS)
        for name in self.variants:
            if name not in VARIANTS:
                raise unknown("bench variant", name, VARIANTS)
        for key in ("batch_size", "epochs", "repeats", "steps_per_execution"):
            if getattr(self, key) < 1:
                raise DsbenchError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.epochs < 2:
            raise DsbenchError("epochs must be >= 2: the first epoch is not counted")
        if self.images is not None and self.images < self.batch_size:
            raise DsbenchError(f"images ({self.images}) must be >= batch_size ({self.batch_size})")


# Training images per epoch on a CPU: epochs of 5 s (convnet) and 20 s (All-CNN-C) on 2 cores.
CPU_IMAGES = {"mnist_convnet": 32768, "allcnn_c": 2048}


def compose_job(overrides: list[str], store: bool = True) -> Job:
    """A training job as `dsbench train <overrides>` would compose and check it
    (its tracking store too, unless `store` is false: the job only describes a model)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    config.register()
    if GlobalHydra.instance().is_initialized():  # inside this module's own Hydra app
        return make_job(compose("train", overrides=overrides), store=store)
    with initialize_config_module(config.CONFIG_PATH.removeprefix("pkg://"), version_base="1.3"):
        return make_job(compose("train", overrides=overrides), store=store)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _synthetic(cfg: config.TrainConfig) -> Any:
    """The random uint8 training arrays every variant of one model trains on."""
    from dsbench.data.splits import load_splits

    synthetic = replace(cfg.dataset, source="synthetic", val_fraction=0.0, test_subset=None)
    return load_splits(synthetic)


def keras_fit(job: Job) -> dict[str, float]:
    """Bare Keras: the same model and optimizer, `fit` on the same arrays, no callbacks of
    ours but a clock."""
    import keras

    from dsbench.frameworks.keras_model import build_keras
    from dsbench.training import fit

    cfg = job.cfg
    splits = _synthetic(cfg)
    info = splits.info
    fit.configure(cfg.trainer)
    model = build_keras(job.plan, info.image_shape)
    steps = -(-len(splits.x_train) // cfg.trainer.batch_size)
    fit.compile_model(model, cfg.trainer, steps)

    class Clock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self.t)

    clock = Clock()
    model.fit(
        splits.x_train,
        splits.y_train,
        batch_size=cfg.trainer.batch_size,
        epochs=cfg.trainer.epochs,
        callbacks=[clock],
        verbose=0,
    )
    return {
        "images_per_sec": steady_rate([len(splits.x_train) / s for s in clock.seconds]),
        Metric.COMPILE_SECONDS: math.nan,
        Metric.PEAK_MEMORY_BYTES: fit.peak_memory_bytes() or math.nan,
    }


def torch_loop(job: Job) -> dict[str, float]:
    """The hand-written PyTorch loop on the same layers and arrays (dsbench.tools.torch_loop)."""
    from dsbench.tools import torch_loop as loop

    splits = _synthetic(job.cfg)
    return loop.train(job.plan, job.cfg.trainer, splits.x_train, splits.y_train)


REFERENCE_LOOPS = {"keras_fit": keras_fit, "torch_loop": torch_loop}  # the rest run the suite


def suite(job: Job) -> dict[str, float]:
    from dsbench.training.run import train

    final = train(job)
    return {
        "images_per_sec": final[Metric.STEADY_IMAGES_PER_SEC],
        Metric.COMPILE_SECONDS: final[Metric.COMPILE_SECONDS],
        Metric.PEAK_MEMORY_BYTES: final.get(Metric.PEAK_MEMORY_BYTES, math.nan),  # JAX, GPU only
        Metric.FLOPS_PER_IMAGE: final[Metric.FLOPS_PER_IMAGE],
        Metric.TRAIN_IMAGES: final[Metric.TRAIN_IMAGES],
    }


def suite_overrides(suite: list[str]) -> list[str]:
    """How the suite trains: the fast path on a GPU, the defaults on a CPU, then `suite`."""
    return (FAST_PATH if has_gpu() else []) + list(suite)


def suite_backend(suite: list[str]) -> str:
    """The Keras backend the suite's runs need (JAX on a GPU or where `suite` asks for it),
    chosen before Keras is imported."""
    return "jax" if has_gpu() or any("backend=jax" in o for o in suite) else "tensorflow"


def measure(bench: BenchConfig, store: str) -> list[dict[str, Any]]:
    from dsbench.tools import torch_loop as loop

    gpu = has_gpu()
    overrides = suite_overrides(bench.suite)
    common = [
        "dataset.source=synthetic",
        "dataset.val_fraction=0",
        "dataset.test_subset=1024",
        "evaluation.shifts=[]",
        "evaluation.consistency_shift=0",
        f"trainer.batch_size={bench.batch_size}",
        f"trainer.epochs={bench.epochs}",
        f"trainer.steps_per_execution={bench.steps_per_execution}",
        "trainer.verbose=0",
        f"tracking.uri={store}",
        "tracking.experiment=bench",
        "tracking.resume=false",
        "tracking.system_metrics=false",
    ]
    with_torch = bench.torch and loop.available()
    if bench.torch and not with_torch:
        log.info("PyTorch is not installed: the torch_loop variant is left out")
    rows = []
    for name in bench.models:
        images = bench.images or (50_000 if gpu else CPU_IMAGES[name])
        base = [*MODELS[name], *common, f"dataset.train_subset={images}"]
        fit_job = compose_job([*base, *[o for o in overrides if "loop=" not in o]])
        variants = {
            "suite": compose_job([*base, *overrides]),
            "no_tracking": compose_job([*base, *overrides, "tracking.enabled=false"]),
            "keras_fit": fit_job,
            "torch_loop": fit_job,  # the same trainer settings as bare fit
        }
        if with_torch and "torch_loop" in bench.variants:
            loop.check(fit_job.cfg.trainer)  # before anything trains
        wanted = [v for v in bench.variants if v != "torch_loop" or with_torch]
        variants = {v: job for v, job in variants.items() if v in wanted}
        results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        names = list(variants)
        for round_ in range(bench.repeats):
            # Each round starts with another variant: no variant always runs first or last.
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for variant in order:
                measured = REFERENCE_LOOPS.get(variant, suite)(variants[variant])
                log.info(
                    "%s %s round %d: %.0f img/s",
                    name,
                    variant,
                    round_ + 1,
                    measured["images_per_sec"],
                )
                results[variant].append(measured)
        flops = fit_job.flops
        for variant, measured in results.items():
            rows.append(_row(name, variant, images, bench.batch_size, flops, measured))
    if bench.real_epoch:
        job = compose_job(
            [
                *MODELS["mnist_convnet"],
                *overrides,
                "dataset.source=archive",
                f"dataset.archive_dir={bench.archive_dir}",
                "trainer.epochs=1",
                "trainer.verbose=0",
                f"tracking.uri={store}",
                "tracking.experiment=bench",
                "tracking.resume=false",
            ]
        )
        measured = suite(job)
        name = "mnist_convnet (real MNIST, 1 epoch)"
        images = int(measured[Metric.TRAIN_IMAGES])
        flops = measured[Metric.FLOPS_PER_IMAGE]
        rows.append(_row(name, "suite", images, job.cfg.trainer.batch_size, flops, [measured]))
    return rows


def _row(
    model: str, variant: str, images: int, batch: int, flops: float, rounds: list[dict[str, float]]
) -> dict[str, Any]:
    """One line of the table: medians over the rounds of one variant."""
    rate = _median([m["images_per_sec"] for m in rounds])
    return {
        "model": model,
        "variant": variant,
        "images": images,
        "batch": batch,
        "images_per_sec": rate,
        "train_tflops": 3 * flops * rate / 1e12,
        Metric.COMPILE_SECONDS: _median([m[Metric.COMPILE_SECONDS] for m in rounds]),
        "peak_memory_gib": _median([m[Metric.PEAK_MEMORY_BYTES] for m in rounds]) / 2**30,
        "rounds": [round(m["images_per_sec"], 1) for m in rounds],
    }


def write_report(
    out_dir: Path, name: str, rows: list[dict[str, Any]], rounded: dict[str, int], head: list[str]
) -> Path:
    """A bench's table: `<name>.csv` (every digit) and `<name>.md` (the `head` lines, then the
    table rounded as `rounded` says), printed too."""
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / f"{name}.csv", index=False)
    text = "\n".join([*head, "", table.round(rounded).to_markdown(index=False), ""])
    path = out_dir / f"{name}.md"
    path.write_text(text)
    print(text)
    return path


def device_name() -> str:
    """A file name for the machine: the GPU's kind, or the CPU's core count."""
    if has_gpu():
        import jax

        kind = jax.devices()[0].device_kind
    else:
        kind = f"cpu {os.cpu_count()}core"
    return "-".join("".join(c if c.isalnum() else " " for c in kind.lower()).split())


def table3_projection(rows: list[dict[str, Any]]) -> str:
    """Springenberg 2015's Table 3 (12 models × 350 epochs × 50k CIFAR-10 images) at the
    suite's All-CNN-C training FLOP/s, each model scaled by its own FLOPs."""
    from dsbench.studies import springenberg2015

    measured = [r for r in rows if r["model"] == "allcnn_c" and r["variant"] == "suite"]
    if not measured or not measured[0]["train_tflops"] > 0:
        return "Table-3 projection: needs the allcnn_c model in `models`."
    flops = 0
    for model in ("springenberg_a", "springenberg_b", "springenberg_c"):
        for downsample in springenberg2015.VARIANTS:
            overrides = ["dataset=cifar10", f"model={model}", f"downsample={downsample}"]
            flops += compose_job(overrides, store=False).flops
    seconds = TABLE3["epochs"] * TABLE3["images"] * 3 * flops / (measured[0]["train_tflops"] * 1e12)
    return (
        f"Table-3 projection: {TABLE3['models']} models × {TABLE3['epochs']} epochs × "
        f"{TABLE3['images']:,} images = {seconds / 60:,.0f} device-minutes "
        f"({seconds / 3600:,.1f} h) at the suite's All-CNN-C rate of "
        f"{measured[0]['train_tflops']:.2f} training TFLOP/s, each model scaled by its FLOPs"
    )


def _round_ratio(rounds: dict[str, list[float]], a: str, b: str) -> float:
    return statistics.median(x / y for x, y in zip(rounds[a], rounds[b], strict=True))


def ratios(rows: list[dict[str, Any]]) -> list[str]:
    """suite / keras_fit, suite / no_tracking and suite / torch_loop, of those measured: the
    median over rounds of each round's ratio (the variants of one round ran minutes apart, so
    a slow phase of the machine cancels)."""
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        rounds = {r["variant"]: r["rounds"] for r in rows if r["model"] == model}
        if "suite" not in rounds or len(rounds) < 2:
            continue
        parts = [
            f"suite / {other} = {_round_ratio(rounds, 'suite', other):.3f}"
            for other in ("keras_fit", "no_tracking", "torch_loop")
            if other in rounds
        ]
        if "torch_loop" not in rounds:
            parts.append("suite / torch_loop = – (not measured: no PyTorch, or torch=false)")
        lines.append(f"{model}: {', '.join(parts)}")
    return lines


def write(
    rows: list[dict[str, Any]],
    out_dir: Path,
    command: str,
    overrides: list[str],
    title: str = "Training speed",
    notes: Sequence[str] = (),
) -> Path:
    """`<out_dir>/<device>-<backend>.md` and `.csv`; `notes`: further lines after the table."""
    import keras
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{device_name()}-{keras.backend.backend()}"
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / f"{name}.csv", index=False)
    shown = table.assign(
        images_per_sec=table["images_per_sec"].round(0),
        train_tflops=table["train_tflops"].round(4),
        compile_seconds=table[Metric.COMPILE_SECONDS].round(2),
        peak_memory_gib=table["peak_memory_gib"].round(2),
    )
    libraries = ["keras", keras.backend.backend()]
    if "torch_loop" in set(table["variant"]):
        libraries.append("torch")
    setup = f"`{' '.join(overrides)}`" if overrides else "the defaults (TensorFlow, float32, fit)"
    text = "\n".join(
        [
            f"# {title} on {name}",
            "",
            produced_by(f"`{command}`", *libraries) + f" Keras backend: {keras.backend.backend()}.",
            f"The suite ran with {setup}; bare fit and the PyTorch loop in the same precision.",
            "",
            "Steady images/s: median over rounds of the median over the epochs after the first; "
            "`rounds`: each round's value. Training TFLOP/s = 3 × forward FLOPs × images/s. "
            "Compile seconds: the suite's (–: bare fit does not separate it; the PyTorch loop "
            "is eager). Peak memory: where the backend reports it (JAX and PyTorch on a GPU). "
            "The device loop and the PyTorch loop drop an epoch's last partial batch and count "
            "the images they trained.",
            "",
            shown.astype(object)
            .where(shown.notna(), None)
            .to_markdown(index=False, missingval="–"),
            "",
            *(f"- {line}" for line in ratios(rows)),
            f"- {table3_projection(rows)}",
            "",
            *notes,
        ]
    )
    path = out_dir / f"{name}.md"
    path.write_text(text)
    print(text)
    return path


ConfigStore.instance().store(name="bench_schema", node=BenchConfig)


@hydra.main(version_base="1.3", config_path=config.CONFIG_PATH, config_name="bench")
def _app(cfg: DictConfig) -> None:
    with cli.exit_on_bad_input():
        bench = config.validate(cfg, BenchConfig)
        select_backend(suite_backend(bench.suite))
        with tempfile.TemporaryDirectory() as store:
            rows = measure(bench, f"sqlite:///{store}/mlflow.db")
        command = " ".join(["dsbench bench", *sys.argv[1:]])
        write(rows, Path(bench.out_dir), command, suite_overrides(bench.suite))


def main() -> None:
    cli.run_app(_app)


if __name__ == "__main__":
    main()
