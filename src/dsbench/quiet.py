"""TensorFlow's first import, with its C++ start-up lines kept off stderr.

Importing TensorFlow prints "All log messages before absl::InitializeLog() is called are
written to STDERR" and "oneDNN custom operations are on…" (twice) straight to file
descriptor 2, before any setting can silence them (TF_CPP_MIN_LOG_LEVEL does not). An error
found after that import would then not be the one line on stderr. So the import runs with
descriptor 2 pointed at /dev/null; a failing import still raises, and is reported after.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType


@contextmanager
def stderr_closed() -> Iterator[None]:
    """File descriptor 2 (C++ writes there directly) goes to /dev/null for the block."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def import_quietly(*modules: str) -> list[ModuleType]:
    """Import `modules` (tensorflow, keras, tensorflow_datasets…), silently the first time."""
    if "tensorflow" in sys.modules:
        return [importlib.import_module(m) for m in modules]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # its later C++ INFO/WARNING lines
    with stderr_closed():
        return [importlib.import_module(m) for m in modules]
