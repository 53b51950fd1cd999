"""Real services for the scale-out tests: a throwaway PostgreSQL cluster and `make server`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.mlflow_ui import free_port, wait_until_healthy
from devtools.postgres import postgres as cluster

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def postgres() -> Iterator[str]:
    """A new PostgreSQL cluster with an empty database `mlflow`; yields its URI."""
    with cluster() as base:
        yield f"{base}/mlflow"


@contextmanager
def make_server(store: str, artifacts: Path, log_file: Path) -> Iterator[str]:
    """`make server` over `store` on a free 127.0.0.1 port; yields its URL."""
    port = free_port()
    command = [
        "make",
        "-s",
        "-C",
        str(ROOT),
        "server",
        f"VENV={sys.prefix}",
        f"SERVER_STORE={store}",
        f"ARTIFACTS={artifacts}",
        f"PORT={port}",
    ]
    with open(log_file, "w") as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server, f"make server did not answer on {url}: {log_file}", 90)
        yield url
    finally:
        _stop_group(server)


def _stop_group(process: subprocess.Popen) -> None:
    """Stop a process started with start_new_session and everything it started."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
