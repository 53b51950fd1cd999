"""A throwaway PostgreSQL cluster on 127.0.0.1, for the tests and the analysis bench.

Debian's `postgresql` (`make install`). PostgreSQL refuses to run as root: as root, the
cluster belongs to the `postgres` user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.mlflow_ui import free_port


def _run(command: list[str]) -> None:
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out.stdout}\n{out.stderr}")


@contextmanager
def postgres(databases: tuple[str, ...] = ("mlflow",), folder: Path | None = None) -> Iterator[str]:
    """A PostgreSQL cluster on a free 127.0.0.1 port; yields its base URI
    `postgresql://dsbench@127.0.0.1:PORT` (append `/<database>`). Stopped afterwards.

    Without `folder`: a new cluster in a temporary folder, with empty `databases`, removed
    afterwards. With `folder`: the cluster there is kept (created the first time), and the
    `databases` it lacks are created.
    """
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        raise RuntimeError("PostgreSQL is not installed: run make install (Debian postgresql)")
    bin_dir = bins[-1].parent
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    temporary = folder is None
    # Not under pytest's 0700 tmp, nor a home folder: the postgres user must reach it.
    folder = Path(tempfile.mkdtemp(prefix="dsbench-pg-")) if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    if as_owner:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()
    pg_ctl = [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(data)]
    if not (data / "PG_VERSION").is_file():
        _run([*as_owner, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "dsbench"])
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    _run([*pg_ctl, "-l", str(folder / "server.log"), "-o", options, "-w", "start"])
    try:
        host = ["-h", "127.0.0.1", "-p", str(port), "-U", "dsbench"]
        listed = subprocess.run(
            [
                str(bin_dir / "psql"),
                *host,
                "-At",
                "-c",
                "select datname from pg_database",
                "postgres",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.split()
        for database in databases:
            if database not in listed:
                _run([str(bin_dir / "createdb"), *host, database])
        yield f"postgresql://dsbench@127.0.0.1:{port}"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True, timeout=60)
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
