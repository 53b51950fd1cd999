"""A hand-written PyTorch training loop: the bench's outside reference (`dsbench.bench`).

It is what a researcher who knows PyTorch would write for speed: plain `torch.nn` layers in
channels-last memory, bf16 autocast when the suite trains in `mixed_bfloat16`, the whole uint8
training set on the device, shuffling and scaling there, no host sync inside an epoch (loss
and hits are summed on the device and read once per epoch), cuDNN autotuning, eager mode.

The layers come from the same plan as the suite's Keras model (`dsbench.model.plan`), so both
have the same layers, shapes, parameters and FLOPs; `build` checks every layer's output shape
against the plan. Differences that do not change the cost: torch's default initialisation,
logits into `cross_entropy` instead of a softmax layer, and a stride-2 "same" window padded
on both sides (Keras pads only the end: same output size, shifted by half a pixel).

PyTorch is optional: this module imports it inside its functions, and the bench leaves the
loop out where it is not installed.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import numpy as np

from dsbench import layers as spec
from dsbench.config import TrainerConfig
from dsbench.errors import DsbenchError
from dsbench.layers import Shape
from dsbench.model import Plan, trace
from dsbench.shapes import total_padding

PRECISIONS = ("float32", "mixed_bfloat16")
SUPPORTED = (
    spec.Rescale,
    spec.Pad,
    spec.Conv,
    spec.Pool,
    spec.Dropout,
    spec.Flatten,
    spec.Dense,
    spec.GlobalAvgPool,
    spec.Softmax,
)


def available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _same_padding(n: int, kernel: int, stride: int, padding: str) -> int:
    # Half the total padding Keras applies, rounded up: the output size is Keras' own
    # (n − k + total is a multiple of the stride, so one more pixel does not change it).
    return -(-total_padding(n, kernel, stride, padding) // 2)


def _layer(name: str, s: spec.LayerSpec, x: Shape) -> Any:
    """The torch layer of one spec, given its input shape (height, width, channels)."""
    import torch
    from torch import nn

    class Scale(nn.Module):  # uint8 → float in [0, 1], as the Keras model's Rescaling
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return t.float() * s.scale

    class GlobalAverage(nn.Module):  # (B, C, H, W) → (B, C)
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return t.mean(dim=(2, 3))

    if isinstance(s, spec.Rescale):
        return Scale()
    if isinstance(s, spec.Pad):
        return nn.ZeroPad2d((*s.cols, *s.rows))
    if isinstance(s, spec.Conv):
        pad = _same_padding(x[0], s.kernel, s.stride, s.padding)
        conv = nn.Conv2d(x[2], s.filters, s.kernel, stride=s.stride, padding=pad)
        return nn.Sequential(conv, nn.ReLU(inplace=True)) if s.activation == "relu" else conv
    if isinstance(s, spec.Pool):
        pad = _same_padding(x[0], s.window, s.stride, s.padding)
        if s.kind == "max":
            return nn.MaxPool2d(s.window, s.stride, padding=pad)
        # Keras averages over the pixels inside the map only.
        return nn.AvgPool2d(s.window, s.stride, padding=pad, count_include_pad=False)
    if isinstance(s, spec.Dropout):
        return nn.Dropout(s.rate)
    if isinstance(s, spec.Flatten):
        return nn.Flatten()
    if isinstance(s, spec.Dense):
        return nn.Linear(x[0], s.units)
    if isinstance(s, spec.GlobalAvgPool):
        return GlobalAverage()
    if isinstance(s, spec.Softmax):
        return nn.Identity()  # logits go to cross_entropy, which applies the softmax
    raise DsbenchError(
        f"the PyTorch loop has no layer for {name} ({type(s).__name__}); it covers "
        f"{', '.join(t.__name__ for t in SUPPORTED)}: bench a model made of those"
    )


def build(plan: Plan, input_shape: Shape) -> Any:
    """The planned model as a `torch.nn.Sequential` (input: a (B, C, H, W) uint8 batch).

    Every layer's output shape is checked against the plan's (`dsbench.model.trace`).
    """
    import torch
    from torch import nn

    traced = trace(plan, input_shape)
    inputs = [tuple(input_shape)] + [shape for _, _, shape in traced[:-1]]
    model = nn.Sequential()
    for (name, s, _), x in zip(traced, inputs, strict=True):
        model.add_module(name, _layer(name, s, x))
    with torch.no_grad():
        h, w, c = input_shape
        uint8 = isinstance(plan[0][1], spec.Rescale)  # else the data is preprocessed floats
        t = torch.zeros((1, c, h, w), dtype=torch.uint8 if uint8 else torch.float32)
        model.train(False)  # dropout off while checking shapes
        for (name, _, want), layer in zip(traced, model, strict=True):
            t = layer(t)
            got = tuple(t.shape[1:]) if t.dim() == 2 else (*t.shape[2:], t.shape[1])
            if got != tuple(want):
                raise DsbenchError(f"PyTorch layer {name} gives {got}, the plan says {want}")
    return model


def count_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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
    rates = [steps * batch / s for s in seconds]
    return {
        "images_per_sec": statistics.median(rates[1:]) if len(rates) > 1 else math.nan,
        "compile_seconds": math.nan,  # eager: nothing is compiled
        "peak_memory_bytes": float(torch.cuda.max_memory_allocated()) if cuda else math.nan,
        "train_loss": float(loss_sum) / steps,
        "train_accuracy": float(hits) / (steps * batch),
    }
