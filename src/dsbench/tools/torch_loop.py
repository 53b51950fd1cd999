"""A hand-written PyTorch training loop: the bench's outside reference (`dsbench.tools.bench`).

It is what a researcher who knows PyTorch would write for speed: plain `torch.nn` layers in
channels-last memory, bf16 autocast when the suite trains in `mixed_bfloat16`, the whole uint8
training set on the device, shuffling and scaling there, no host sync inside an epoch (loss
and hits are summed on the device and read once per epoch), cuDNN autotuning, eager mode.

The model is `dsbench.frameworks.torch_model.build`: the same plan as the suite's Keras model,
so both have the same layers, shapes, parameters and FLOPs.

PyTorch is optional: this module imports it inside its functions, and the bench leaves the
loop out where it is not installed.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from dsbench.config import TrainerConfig
from dsbench.contract import Metric
from dsbench.errors import DsbenchError
from dsbench.model.plan import Plan
from dsbench.training.timing import steady_rate

PRECISIONS = ("float32", "mixed_bfloat16")


def available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def check(trainer: TrainerConfig) -> None:
    """Stops on a trainer config this loop does not reproduce (the bench calls it before it
    trains anything)."""
    if trainer.precision not in PRECISIONS:
        raise DsbenchError(
            f"the PyTorch loop trains in {' or '.join(PRECISIONS)}, not trainer.precision="
            f"{trainer.precision}: bench with one of those, or with torch=false"
        )
    if trainer.schedule != "constant":
        raise DsbenchError(
            f"the PyTorch loop trains with a constant learning rate, not trainer.schedule="
            f"{trainer.schedule}: bench with trainer.schedule=constant, or with torch=false"
        )


def _optimizer(model: Any, trainer: TrainerConfig) -> Any:
    import torch

    params, lr, wd = model.parameters(), trainer.lr, trainer.weight_decay
    if trainer.optimizer == "sgd":
        return torch.optim.SGD(params, lr, momentum=trainer.momentum, weight_decay=wd)
    if trainer.optimizer == "adamw":
        return torch.optim.AdamW(params, lr, eps=1e-7, weight_decay=wd)
    return torch.optim.Adam(params, lr, eps=1e-7, weight_decay=wd)  # Keras' epsilon


def train(plan: Plan, trainer: TrainerConfig, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Train `trainer.epochs` epochs on uint8 images `x` (N, H, W, C) and labels `y`.

    Returns steady images/s (median over the epochs after the first, which holds cuDNN's
    autotuning and warm-up), peak device memory (CUDA only, else NaN), and the last epoch's
    training loss and accuracy. The last partial batch of an epoch is dropped, so every
    step has one shape; images/s counts the images trained.
    """
    import torch
    import torch.nn.functional as F

    check(trainer)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(trainer.seed)
    torch.backends.cudnn.benchmark = True

    from dsbench.frameworks.torch_model import build

    model = build(plan, x.shape[1:]).to(device, memory_format=torch.channels_last)
    opt = _optimizer(model, trainer)
    images = torch.from_numpy(np.ascontiguousarray(x)).to(device)  # (N, H, W, C) uint8
    labels = torch.from_numpy(y.astype(np.int64)).to(device)
    batch = trainer.batch_size
    steps = len(images) // batch
    if steps < 1:
        raise DsbenchError(f"{len(images)} training images are fewer than one batch of {batch}")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds: list[float] = []
    model.train()
    for _ in range(trainer.epochs):
        sync()
        start = time.perf_counter()
        order = torch.randperm(len(images), device=device)
        loss_sum = torch.zeros((), device=device)
        hits = torch.zeros((), device=device, dtype=torch.int64)
        for step in range(steps):
            idx = order[step * batch : (step + 1) * batch]
            # (B, H, W, C) → (B, C, H, W): a view that is channels-last in memory.
            xb, yb = images[idx].permute(0, 3, 1, 2), labels[idx]
            with torch.autocast(device.type, torch.bfloat16, trainer.precision != "float32"):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            hits += (logits.argmax(dim=1) == yb).sum()
        sync()
        seconds.append(time.perf_counter() - start)
    return {
        "images_per_sec": steady_rate([steps * batch / s for s in seconds]),
        Metric.COMPILE_SECONDS: math.nan,  # eager: nothing is compiled
        Metric.PEAK_MEMORY_BYTES: float(torch.cuda.max_memory_allocated()) if cuda else math.nan,
        "train_loss": float(loss_sum) / steps,
        "train_accuracy": float(hits) / (steps * batch),
    }
