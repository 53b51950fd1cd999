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
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np

from dsbench.config import TrainerConfig
from dsbench.contract import Metric
from dsbench.data.splits import Splits
from dsbench.errors import DsbenchError
from dsbench.training.timing import EpochTime, Fitted, steps_per_epoch

State = tuple[list, list, list]  # trainable, non-trainable and optimizer values


@dataclass(frozen=True)
class Programs:
    """The compiled step functions of one model and data shape, and how an epoch uses them."""

    train: Any  # state, x, y, (per_dispatch, batch) indices → state, loss sum, hit count
    train_rest: Any | None  # the same for the epoch's last `rest` steps, if any
    draw: Any  # key → the epoch's shuffled indices, (steps, batch)
    evaluate: Any | None  # state, x, y, w → loss sum, hit count of one padded batch
    val: list[tuple[jax.Array, ...]]  # the validation set as padded device batches
    steps: int
    per_dispatch: int
    chunks: int  # dispatches of per_dispatch steps; then train_rest


def fit(
    model: keras.Model,
    splits: Splits,
    trainer: TrainerConfig,
    log: Callable[[dict[str, float], int], None],
    learning_rate: Any,
) -> Fitted:
    """Train `model` (compiled by fit.compile_model) for trainer.epochs; `log(metrics,
    epoch)` gets the same per-epoch numbers as the Keras loop. `learning_rate` is the
    optimizer's schedule (or constant), read per epoch for the `lr` metric."""
    state = _initial_state(model)
    x_train = jax.device_put(splits.x_train)  # uint8, once
    y_train = jax.device_put(splits.y_train.astype(np.int32))
    t0 = time.perf_counter()
    programs = compile_programs(model, state, x_train, y_train, splits, trainer)
    fitted = Fitted(compile_seconds=time.perf_counter() - t0)
    key = jax.random.key(trainer.seed)
    progress = keras.utils.Progbar(trainer.epochs, verbose=trainer.verbose, unit_name="epoch")
    for epoch in range(trainer.epochs):
        t_epoch = time.perf_counter()
        state, metrics = train_epoch(
            programs, state, x_train, y_train, jax.random.fold_in(key, epoch)
        )
        train_s = time.perf_counter() - t_epoch  # train_epoch waited for the device
        if programs.evaluate is not None:
            metrics |= validate(programs, state, len(splits.x_val))
        steps, batch = programs.steps, trainer.batch_size
        record = EpochTime(time.perf_counter() - t_epoch, train_s, steps, steps * batch)
        fitted.epochs.append(record)
        fitted.losses.append(metrics[Metric.LOSS])
        fitted.val_accuracy.append(metrics.get(Metric.VAL_ACCURACY, math.nan))
        lr = learning_rate((epoch + 1) * steps) if callable(learning_rate) else learning_rate
        log({**metrics, **record.metrics(), Metric.LR: float(lr)}, epoch + 1)  # step = epoch
        progress.update(epoch + 1, list(metrics.items()))
        if not math.isfinite(metrics[Metric.LOSS]):
            fitted.stopped = True  # dsbench.training.run turns this into a Diverged run
            break
    _write_back(model, state)
    return fitted


def compile_programs(
    model: keras.Model,
    state: State,
    x_train: jax.Array,
    y_train: jax.Array,
    splits: Splits,
    trainer: TrainerConfig,
) -> Programs:
    """Every step function the epochs run, compiled ahead of time (the time is reported
    apart from the epochs)."""
    batch, n = trainer.batch_size, len(splits.x_train)
    steps = steps_per_epoch(n, trainer)
    if steps < 1:
        raise DsbenchError(
            f"trainer.loop=device needs at least one full batch: {n} training images < "
            f"trainer.batch_size={batch}; lower the batch size or use more images"
        )
    per_dispatch = min(trainer.steps_per_execution, steps)
    chunks, rest = divmod(steps, per_dispatch)
    train_jit = jax.jit(_train_steps(model), donate_argnums=0)

    def train_program(k: int) -> Any:
        indices = jax.ShapeDtypeStruct((k, batch), jnp.int32)
        return train_jit.lower(state, x_train, y_train, indices).compile()

    def shuffle(key: jax.Array) -> jax.Array:
        return jax.random.permutation(key, n)[: steps * batch].reshape(steps, batch)

    val = _padded(splits.x_val, splits.y_val, batch) if len(splits.x_val) else []
    evaluate = jax.jit(_eval_batch(model)).lower(state, *val[0]).compile() if val else None
    return Programs(
        train=train_program(per_dispatch),
        train_rest=train_program(rest) if rest else None,
        draw=jax.jit(shuffle).lower(jax.random.key(0)).compile(),
        evaluate=evaluate,
        val=val,
        steps=steps,
        per_dispatch=per_dispatch,
        chunks=chunks,
    )


def train_epoch(
    programs: Programs, state: State, x: jax.Array, y: jax.Array, key: jax.Array
) -> tuple[State, dict[str, float]]:
    """One epoch: a shuffle drawn on the device, then every dispatch; the loss and hit sums
    come back in one transfer at the end."""
    p = programs
    order = p.draw(key)
    blocks = order[: p.chunks * p.per_dispatch].reshape(p.chunks, p.per_dispatch, -1)
    loss_sum, correct_sum = jnp.zeros(()), jnp.zeros((), jnp.int32)
    for c in range(p.chunks):  # asynchronous: nothing here waits for the device
        state, loss, correct = p.train(state, x, y, blocks[c])
        loss_sum, correct_sum = loss_sum + loss, correct_sum + correct
    if p.train_rest is not None:
        state, loss, correct = p.train_rest(state, x, y, order[p.chunks * p.per_dispatch :])
        loss_sum, correct_sum = loss_sum + loss, correct_sum + correct
    images = p.steps * order.shape[1]
    metrics = {Metric.LOSS: float(loss_sum) / p.steps, Metric.ACCURACY: int(correct_sum) / images}
    return state, metrics


def validate(programs: Programs, state: State, n: int) -> dict[str, float]:
    """Loss and accuracy on the validation set, summed on the device."""
    val_loss, val_correct = jnp.zeros(()), jnp.zeros(())
    for x, y, w in programs.val:  # asynchronous, summed on the device
        loss, correct = programs.evaluate(state, x, y, w)
        val_loss, val_correct = val_loss + loss, val_correct + correct
    return {Metric.VAL_LOSS: float(val_loss) / n, Metric.VAL_ACCURACY: float(val_correct) / n}


def _initial_state(model: keras.Model) -> State:
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    return (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )


def _train_steps(model: keras.Model) -> Callable[..., Any]:
    """k training steps in one program: (state, x_all, y_all, indices (k, batch)) → (state,
    loss sum, hit count)."""

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

    def train_steps(state, x_all, y_all, indices):
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
            trainable, opt_vars = model.optimizer.stateless_apply(opt_vars, grads, trainable)
            loss_sum, correct_sum = loss_sum + loss, correct_sum + correct
        return (trainable, non_trainable, opt_vars), loss_sum, correct_sum

    return train_steps


def _eval_batch(model: keras.Model) -> Callable[..., Any]:
    def eval_batch(state, x, y, w):  # one padded batch of the evaluation set
        trainable, non_trainable, _ = state
        y_pred = model.stateless_call(trainable, non_trainable, x, training=False)[0]
        loss, correct = _loss_and_correct(y, y_pred)
        return (loss * w).sum(), (correct * w).sum()

    return eval_batch


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


def _write_back(model: keras.Model, state: State) -> None:
    trainable, non_trainable, opt_vars = state
    for variables, values in (
        (model.trainable_variables, trainable),
        (model.non_trainable_variables, non_trainable),
        (model.optimizer.variables, opt_vars),
    ):
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
