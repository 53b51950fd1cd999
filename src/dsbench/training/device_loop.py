"""The device-resident training loop (`trainer.loop=device`, JAX backend): the GPU fast path.

`model.fit` pays per step for what this loop pays once: the training set goes to the device
once, as uint8 (the model scales it); each epoch draws its shuffle on the device; every
dispatch runs `trainer.steps_per_execution` steps in one compiled program (batches
gathered on the device, augmented by the model's own random layers, trained); the loss and
accuracy sums stay on the device until the epoch ends and come back in one transfer. The
step functions are compiled ahead of time, and that time is reported apart from the epochs.

The model, optimizer and metrics are the suite's own (Keras' public stateless API:
`Model.stateless_call`, `Optimizer.stateless_apply`); at the end the trained values are
written back into the Keras model, so evaluation and logging are the same as with `fit`.
The last partial batch of an epoch is dropped (static shapes): an epoch is
`len(x_train) // batch_size` steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np

from dsbench.config import TrainerConfig
from dsbench.data.splits import Splits
from dsbench.errors import DsbenchError


@dataclass
class History:
    """What dsbench.training.run reads of keras.callbacks.History."""

    history: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class DeviceTiming:
    compile_seconds: float = math.nan
    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None  # no early stopping here: every epoch is trained


def fit(
    model: keras.Model,
    splits: Splits,
    trainer: TrainerConfig,
    log: Callable[[dict[str, float], int], None],
    learning_rate: Any,
) -> tuple[History, DeviceTiming]:
    """Train `model` (compiled by trainer.compile_model) for trainer.epochs; `log(metrics,
    epoch)` gets the same per-epoch numbers as the Keras loop. `learning_rate` is the
    optimizer's schedule (or constant), read per epoch for the `lr` metric."""
    batch, n = trainer.batch_size, len(splits.x_train)
    steps = n // batch
    if steps < 1:
        raise DsbenchError(
            f"trainer.loop=device needs at least one full batch: {n} training images < "
            f"trainer.batch_size={batch}; lower the batch size or use more images"
        )
    per_dispatch = min(trainer.steps_per_execution, steps)
    chunks, rest = divmod(steps, per_dispatch)

    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    x_train = jax.device_put(splits.x_train)  # uint8, once
    y_train = jax.device_put(splits.y_train.astype(np.int32))

    def loss_and_updates(trainable, non_trainable, x, y):
        y_pred, non_trainable, losses = model.stateless_call(
            trainable, non_trainable, x, training=True, return_losses=True
        )
        per_example, correct = _loss_and_correct(y, y_pred)
        loss = per_example.mean()
        if losses:
            loss = loss + sum(losses)
        return loss, (non_trainable, correct.sum())

    grad_fn = jax.value_and_grad(loss_and_updates, has_aux=True)

    def train_steps(state, x_all, y_all, indices):  # indices: (k, batch) → k steps
        # A Python loop, unrolled when traced, and not lax.scan: no while loop is left in
        # the program. XLA:CPU runs convolutions inside a loop body many times slower
        # (jax-ml/jax#12868; measured here: 4–6× per step, even for a scan of length 1), and
        # XLA on a GPU evaluates a while loop's condition on the host, once per iteration.
        # The price is compile time, which grows with steps_per_execution.
        trainable, non_trainable, opt_vars = state
        loss_sum, correct_sum = jnp.zeros(()), jnp.zeros((), jnp.int32)
        for i in range(indices.shape[0]):
            idx = indices[i]
            (loss, (non_trainable, correct)), grads = grad_fn(
                trainable, non_trainable, x_all[idx], y_all[idx]
            )
            trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
            loss_sum, correct_sum = loss_sum + loss, correct_sum + correct
        return (trainable, non_trainable, opt_vars), loss_sum, correct_sum

    def eval_batch(state, x, y, w):  # one padded batch of the evaluation set
        trainable, non_trainable, _ = state
        y_pred = model.stateless_call(trainable, non_trainable, x, training=False)[0]
        loss, correct = _loss_and_correct(y, y_pred)
        return (loss * w).sum(), (correct * w).sum()

    def shuffle(key):
        return jax.random.permutation(key, n)[: steps * batch].reshape(steps, batch)

    # Ahead-of-time compilation, timed apart from the epochs.
    t0 = time.perf_counter()
    index_spec = jax.ShapeDtypeStruct((per_dispatch, batch), jnp.int32)
    train_jit = jax.jit(train_steps, donate_argnums=0)
    run = train_jit.lower(state, x_train, y_train, index_spec).compile()
    run_rest = (
        train_jit.lower(
            state, x_train, y_train, jax.ShapeDtypeStruct((rest, batch), jnp.int32)
        ).compile()
        if rest
        else None
    )
    draw = jax.jit(shuffle).lower(jax.random.key(0)).compile()
    has_val = len(splits.x_val) > 0
    if has_val:
        val = _padded(splits.x_val, splits.y_val, batch)
        evaluate = jax.jit(eval_batch).lower(state, *val[0]).compile()
    compile_seconds = time.perf_counter() - t0

    timing, history = DeviceTiming(compile_seconds=compile_seconds), History()
    key = jax.random.key(trainer.seed)
    progress = keras.utils.Progbar(trainer.epochs, verbose=trainer.verbose, unit_name="epoch")
    for epoch in range(trainer.epochs):
        t_epoch = time.perf_counter()
        order = draw(jax.random.fold_in(key, epoch))
        blocks = order[: chunks * per_dispatch].reshape(chunks, per_dispatch, batch)
        loss_sum, correct_sum = jnp.zeros(()), jnp.zeros((), jnp.int32)
        for c in range(chunks):  # asynchronous: nothing here waits for the device
            state, loss, correct = run(state, x_train, y_train, blocks[c])
            loss_sum, correct_sum = loss_sum + loss, correct_sum + correct
        if run_rest is not None:
            state, loss, correct = run_rest(state, x_train, y_train, order[chunks * per_dispatch :])
            loss_sum, correct_sum = loss_sum + loss, correct_sum + correct
        metrics = {"loss": float(loss_sum) / steps, "accuracy": int(correct_sum) / (steps * batch)}
        train_s = time.perf_counter() - t_epoch  # the float() above waited for the device
        if has_val:
            val_loss, val_correct = jnp.zeros(()), jnp.zeros(())
            for x, y, w in val:  # asynchronous, summed on the device
                loss, correct = evaluate(state, x, y, w)
                val_loss, val_correct = val_loss + loss, val_correct + correct
            metrics["val_loss"] = float(val_loss) / len(splits.x_val)
            metrics["val_accuracy"] = float(val_correct) / len(splits.x_val)
        epoch_timing = {
            "epoch_seconds": time.perf_counter() - t_epoch,
            "train_seconds": train_s,
            "step_seconds": train_s / steps,
            "train_images_per_sec": steps * batch / train_s,
        }
        timing.epochs.append(epoch_timing)
        lr = learning_rate((epoch + 1) * steps) if callable(learning_rate) else learning_rate
        for k, v in metrics.items():
            history.history.setdefault(k, []).append(v)
        log({**metrics, **epoch_timing, "lr": float(lr)}, epoch + 1)  # step = epoch, 1-based
        progress.update(epoch + 1, [(k, v) for k, v in metrics.items()])
        if not math.isfinite(metrics["loss"]):
            model.stop_training = True  # dsbench.training.run turns this into a FAILED run
            break
    _write_back(model, state)
    return history, timing


def _loss_and_correct(y: jax.Array, y_pred: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-example cross-entropy and top-1 hits, computed in float32 whatever the policy."""
    y_pred = y_pred.astype(jnp.float32)
    loss = keras.losses.sparse_categorical_crossentropy(y, y_pred)
    return loss, jnp.argmax(y_pred, axis=-1) == y


def _padded(x: np.ndarray, y: np.ndarray, batch: int) -> list[tuple[jax.Array, ...]]:
    """An evaluation set as device batches (x, y, weight), zero-padded to full batches, with
    0/1 weights; sliced once here, not every epoch."""
    steps = -(-len(x) // batch)
    pad = steps * batch - len(x)
    xs = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    ys = np.concatenate([y.astype(np.int32), np.zeros(pad, np.int32)])
    weight = np.concatenate([np.ones(len(x), np.float32), np.zeros(pad, np.float32)])
    return [
        tuple(jax.device_put(a[i * batch : (i + 1) * batch]) for a in (xs, ys, weight))
        for i in range(steps)
    ]


def _write_back(model: keras.Model, state: tuple[list, list, list]) -> None:
    trainable, non_trainable, opt_vars = state
    for variables, values in (
        (model.trainable_variables, trainable),
        (model.non_trainable_variables, non_trainable),
        (model.optimizer.variables, opt_vars),
    ):
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
