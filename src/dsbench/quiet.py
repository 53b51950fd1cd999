"""TensorFlow's first import, with its C++ start-up lines kept off stderr.

Importing TensorFlow prints "All log messages before absl::InitializeLog() is called are
written to STDERR" and "oneDNN custom operations are on…" (twice) straight to file
descriptor 2, before any setting can silence them (TF_CPP_MIN_LOG_LEVEL does not). An error
found after that import would then not be the one line on stderr. So the import runs with
descriptor 2 pointed at a temporary file, dropped when the import succeeds and written out
when it fails (so a broken install still says why).
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType


@contextmanager
def stderr_captured() -> Iterator[None]:
    """File descriptor 2 (C++ writes there directly) goes to a temporary file for the block;
    what it caught is written to stderr after all if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        try:
            os.dup2(caught.fileno(), 2)
            yield
        except BaseException:
            os.dup2(saved, 2)
            caught.seek(0)
            os.write(2, caught.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_quietly(*modules: str) -> list[ModuleType]:
    """Import `modules` (tensorflow, keras, tensorflow_datasets…), silently the first time."""
    if "tensorflow" in sys.modules:
        return [importlib.import_module(m) for m in modules]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # its later C++ INFO/WARNING lines
    with stderr_captured():
        return [importlib.import_module(m) for m in modules]
