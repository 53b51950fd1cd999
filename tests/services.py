"""Real services for the scale-out tests: a throwaway PostgreSQL cluster and `make server`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dsbench.tools.ui import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[1]


def _run(command: list[str]) -> None:
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out.stdout}\n{out.stderr}")


@contextmanager
def postgres() -> Iterator[str]:
    """A new PostgreSQL cluster (Debian's `postgresql`, `make install`) on a free 127.0.0.1
    port, with an empty database `mlflow`; yields its URI. Stopped and removed afterwards.

    PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user.
    """
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        raise RuntimeError("PostgreSQL is not installed: run make install (Debian postgresql)")
    bin_dir = bins[-1].parent
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="dsbench-pg-"))  # not under pytest's 0700 tmp
    if as_owner:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()
    pg_ctl = [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(data)]
    _run([*as_owner, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "dsbench"])
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    _run([*pg_ctl, "-l", str(folder / "server.log"), "-o", options, "-w", "start"])
    try:
        host = ["-h", "127.0.0.1", "-p", str(port), "-U", "dsbench"]
        _run([str(bin_dir.parent / "bin" / "createdb"), *host, "mlflow"])
        yield f"postgresql://dsbench@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


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
