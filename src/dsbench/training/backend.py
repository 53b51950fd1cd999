"""The Keras backend and the device: chosen before Keras is first imported."""

from __future__ import annotations

import os
import sys

from dsbench.errors import DsbenchError
from dsbench.quiet import import_quietly

BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax"}


def set_backend(backend: str) -> None:
    """Name the Keras backend, importing nothing: whatever imports Keras first (TFDS may,
    through TensorFlow) then gets this one."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend


# Each pool a job's training may start threads in, and the variable that sizes it; read when
# the library first starts (TensorFlow's runtime, OpenMP, OpenBLAS, MKL).
THREAD_VARIABLES = (
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def limit_threads(threads: int) -> None:
    """Let this process's training use `threads` threads: before TensorFlow starts (a worker
    of a sweep trains every job it runs with the same layout). Measured here: TensorFlow on
    one thread uses one core (its pools and oneDNN's OpenMP). XLA on a CPU (the JAX backend)
    takes no thread count: JAX 0.10 used both cores of this machine with its multi-threaded
    Eigen flag off, so a JAX job on a CPU is not limited."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


def select_backend(backend: str) -> None:
    """Set the Keras backend and check that it can run; before Keras is first imported."""
    module = BACKEND_MODULES[backend]
    set_backend(backend)
    try:
        import_quietly(module, "keras")  # the backend first, then Keras on it
    except ImportError as e:
        raise DsbenchError(
            f"trainer.backend={backend} but {module} cannot be imported ({e}); install it "
            f"(pip install {module}) or choose another trainer.backend"
        ) from None
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise DsbenchError(
                f"Keras already runs the {keras.backend.backend()} backend in this process; "
                f"a sweep over trainer.backend needs one process per job "
                f"(hydra/launcher=joblib) or separate runs"
            )


def has_gpu() -> bool:
    """Whether JAX, the suite's GPU path, sees a GPU (the TensorFlow build is CPU-only)."""
    try:
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    except (ImportError, RuntimeError):
        return False


def device() -> str:
    """The first device of the active Keras backend, as Keras names it."""
    import keras

    devices = keras.distribution.list_devices()
    return devices[0] if devices else "unknown"
