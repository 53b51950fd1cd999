"""Fetch a dataset's official archives into its archive dir: md5-checked, written atomically,
one process at a time.

The one download path of the suite: the archive source reads these files, and TFDS prepares
from them (they are its manual dir), so TFDS never downloads anything itself.

- **Where from**: `dataset.url` if set, else `$DSBENCH_MIRROR/<dataset>/` if that variable
  is set (a local mirror of all datasets), else the official folder in the registry.
- **Checked**: each file's published md5, computed while it arrives.
- **Atomic**: a file is written under a temporary name in the same folder and renamed only
  when it is complete and its md5 matches; a broken or corrupt download leaves nothing.
- **Resumed**: a connection that breaks off is retried from the byte it stopped at (HTTP
  Range), up to `RETRIES` times.
- **Parallel-safe**: any number of processes may start on an empty folder; a file lock in
  it lets exactly one download, the others wait and then find the files there.

numpy-free and framework-free: missing or bad data is found before TensorFlow is imported.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO

from dsbench.config import check_url
from dsbench.data.registry import DatasetInfo
from dsbench.errors import DsbenchError, ExternalError, connection_reason

MIRROR_ENV = "DSBENCH_MIRROR"  # base URL of a mirror holding <dataset>/<official file name>
LOCK_NAME = ".dsbench-fetch.lock"
RETRIES = 3  # attempts per file; each one resumes where the last broke off
BACKOFF = 2.0  # seconds before the second attempt, doubled for each next one, at most 10
TIMEOUT = (10, 60)  # seconds: to connect, and between two reads of the body
CHUNK = 1 << 16
LOCK_TIMEOUT = 3600  # seconds a process waits for another one's download


def source_url(info: DatasetInfo, url: str | None = None) -> str:
    """The folder URL the files of `info` are fetched from, ending in "/"."""
    if url:
        base, what = url, "dataset.url"
    elif os.environ.get(MIRROR_ENV):
        base, what = f"{os.environ[MIRROR_ENV].rstrip('/')}/{info.name}", f"${MIRROR_ENV}"
    else:
        base, what = info.url, "the registry"
    check_url(base, what)
    return base.rstrip("/") + "/"


def missing_files(info: DatasetInfo, archive_dir: str | PathLike[str]) -> list[str]:
    """The official file names of `info` that are not in `archive_dir`."""
    folder = Path(archive_dir).expanduser()
    return [name for name, _ in info.files.values() if not (folder / name).is_file()]


def ensure_archives(
    info: DatasetInfo,
    archive_dir: str | PathLike[str],
    url: str | None = None,
    progress: bool | None = None,
) -> list[str]:
    """Download the files of `info` that `archive_dir` lacks; returns the names fetched.

    Files already there are left as they are (their md5 is checked where they are read).
    A folder that holds them all is only looked at, so a read-only shared folder works.
    `progress`: a tqdm bar per file; None shows it only on a terminal.
    """
    folder = Path(archive_dir).expanduser()
    if not missing_files(info, folder):
        return []
    base = source_url(info, url)  # a bad URL is bad input: before anything is created
    created = next((p for p in (folder, *folder.parents) if p.parent.exists()), folder)
    created = None if created.exists() else created  # the first folder this call makes
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock_path = folder / LOCK_NAME
        lock_path.touch(exist_ok=True)
    except OSError as e:
        missing = missing_files(info, folder)
        raise DsbenchError(
            f"{info.name} archive dir {folder} lacks {len(missing)} of its files and cannot be "
            f"written ({e.strerror}): use a writable dataset.archive_dir, or put them there"
        ) from None
    from filelock import FileLock, Timeout

    fetched: list[str] = []
    try:
        with FileLock(lock_path, timeout=LOCK_TIMEOUT):
            # Another process may have fetched them while this one waited.
            for name, md5 in info.files.values():
                if not (folder / name).is_file():
                    download(base + name, folder / name, md5, progress)
                    fetched.append(name)
    except Timeout:
        raise ExternalError(
            f"waited {LOCK_TIMEOUT} s for another process's download into {folder} "
            f"(it holds {lock_path}): let it finish, or stop it"
        ) from None
    except ExternalError as e:
        missing = missing_files(info, folder)
        names = missing[0] if len(missing) == 1 else f"{len(missing)} files"  # one short line
        _remove_if_empty(created, folder / LOCK_NAME)  # a failed fetch leaves nothing
        reason = str(e).replace(base, "")  # the file's name, without the URL a second time
        raise ExternalError(
            f"cannot fetch {info.name} ({names}) from {base}: {reason}; put the official "
            f"files in {folder} or set dataset.url or ${MIRROR_ENV}"
        ) from None
    return fetched


def _remove_if_empty(created: Path | None, lock: Path) -> None:
    """Remove the folders this fetch made (`created` and below), if they hold only the lock."""
    if created is None:
        return
    lock.unlink(missing_ok=True)
    for folder in sorted((created, *created.rglob("*")), key=lambda p: -len(p.parts)):
        try:
            folder.rmdir()  # only an empty folder: anything else stays
        except OSError:
            return


def download(url: str, dest: Path, md5: str, progress: bool | None = None) -> None:
    """Fetch `url` to `dest`: via a temporary file in dest's folder, renamed once complete
    and its md5 is `md5`; retried from where a broken connection stopped."""
    import requests

    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        _download(requests, url, tmp, md5, progress)
        os.replace(tmp, dest)
    except OSError as e:  # a full disk, an I/O error: not the input's fault, one line
        raise ExternalError(f"cannot write {tmp} ({e.strerror or e})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _download(requests: Any, url: str, tmp: Path, md5: str, progress: bool | None) -> None:
    """The attempts of `download`, into `tmp`; raises unless it holds the official file.
    (requests' exceptions are OSErrors too: they are all handled here.)"""
    error = "no attempt"
    with open(tmp, "wb") as out:
        part = _Partial(out)
        for attempt in range(RETRIES):
            if attempt:
                time.sleep(min(BACKOFF * 2 ** (attempt - 1), 10))
            try:
                _get(requests, url, part, progress)
                break
            except _Broken as e:  # the server answered, then stopped: resume
                error = str(e)
            except requests.RequestException as e:
                error = connection_reason(e)
                if e.response is not None and e.response.status_code < 500:
                    raise ExternalError(error) from None  # 404, 403…: retrying won't help
        else:
            raise ExternalError(f"{error} ({RETRIES} attempts)")
        out.flush()
        os.fsync(out.fileno())
    if (actual := part.digest.hexdigest()) != md5:
        raise ExternalError(
            f"{url} gave {part.size:,} bytes with md5 {actual}, expected {md5} (the "
            "published md5): that is not the official file; nothing was kept"
        )


class _Broken(Exception):
    """A response whose body ended before its Content-Length."""


class _Partial:
    """The bytes of one file received so far: in `out`, hashed, counted (across attempts)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out, self.digest, self.size = out, hashlib.md5(), 0

    def add(self, chunk: bytes) -> None:
        self.out.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)

    def restart(self) -> None:
        self.out.seek(0)
        self.out.truncate()
        self.digest, self.size = hashlib.md5(), 0


def _get(requests: Any, url: str, part: _Partial, progress: bool | None) -> None:
    """One attempt: GET the bytes after those `part` holds (all, the first time)."""
    # identity: a server must not gzip the .gz bytes again on the way (md5 and Range count
    # the file's own bytes).
    headers = {"Accept-Encoding": "identity"}
    if part.size:
        headers["Range"] = f"bytes={part.size}-"
    with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT) as response:
        response.raise_for_status()
        if part.size and response.status_code != 206:  # the server ignores Range: restart
            part.restart()
        remaining = response.headers.get("Content-Length")
        total = part.size + int(remaining) if remaining is not None else None
        from tqdm import tqdm

        with tqdm(
            total=total,
            initial=part.size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=Path(url).name,
            disable=None if progress is None else not progress,  # None: only on a terminal
            file=sys.stderr,
            leave=False,
        ) as bar:
            try:
                for chunk in response.iter_content(CHUNK):
                    part.add(chunk)
                    bar.update(len(chunk))
            except requests.RequestException as e:  # the connection broke mid-body
                reason = connection_reason(e)
                raise _Broken(f"{url} broke off after {part.size:,} bytes ({reason})") from None
        if total is not None and part.size < total:
            raise _Broken(f"{url} broke off after {part.size:,} of {total:,} bytes")
