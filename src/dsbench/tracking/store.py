"""The MLflow store: checked before data is loaded, created once, and its experiment.

- `check_store`: a store this run can use, found out in seconds (a local folder we can
  write, a server that answers, a database that accepts us), before data or a model is
  loaded; MLflow's own retries would take minutes to say the same.
- `ready_store`: the store's schema created by exactly one process when many start on a
  fresh store at once (MLflow's first use of a sqlite file or database races otherwise).
- `bound_retries`: how long MLflow retries a server that stops answering mid-run.

Kept free of Keras (as all of dsbench.tracking) so that Hydra can load the sweep callback
before the Keras backend is chosen.
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path
from urllib.parse import urlparse

from dsbench.config import TrackingConfig
from dsbench.contract import DESCRIPTION
from dsbench.errors import DsbenchError, ExternalError, connection_reason, one_line

CHECK_TIMEOUT = 5  # seconds a server or database has to answer the check
REQUEST_TIMEOUT = 30  # seconds one request to a tracking server may take (MLflow's: 120)
DATABASES = ("postgresql", "mysql", "mssql")  # MLflow's SQL stores besides sqlite
_ready: set[str] = set()  # stores this process has seen initialised


def open_experiment(tracking: TrackingConfig) -> str:
    """Point MLflow at the store and return the experiment id (created if new). The store
    was checked before (`check_store`, once per job): this only opens it."""
    import mlflow

    ready_store(tracking.uri)
    mlflow.set_tracking_uri(tracking.uri)
    try:
        create_beside_store(tracking)
        experiment_id = mlflow.set_experiment(tracking.experiment).experiment_id
        if tracking.description:  # the note the MLflow UI shows above the runs
            mlflow.set_experiment_tag(DESCRIPTION, tracking.description.strip())
        return experiment_id
    except mlflow.exceptions.MlflowException as e:
        raise store_error(
            e, f"cannot use MLflow experiment {tracking.experiment!r} at {redacted(tracking.uri)}"
        ) from None


def create_beside_store(tracking: TrackingConfig) -> None:
    """A new experiment of a sqlite store keeps its artifacts beside the store's file, in
    `mlruns/<experiment>`: MLflow's default is `./mlruns` of whatever folder the command ran
    in, which scatters one store's artifacts over the folders it was used from (a study's
    store kept outside the work tree would put them in the work tree)."""
    import mlflow

    path = local_store(tracking.uri)
    if not tracking.uri.startswith("sqlite:") or path is None:
        return  # a server or database has its own artifact root; a folder store holds them
    client = mlflow.MlflowClient()
    if client.get_experiment_by_name(tracking.experiment) is not None:
        return
    folder = re.sub(r"[^A-Za-z0-9_.-]+", "-", tracking.experiment).strip("-.") or "experiment"
    location = (path.resolve().parent / "mlruns" / folder).as_uri()
    try:
        client.create_experiment(tracking.experiment, artifact_location=location)
    except mlflow.exceptions.MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":  # another job of the sweep created it
            raise


# MLflow's error codes for a request that was wrong (a bad name, a deleted experiment): the
# input's fault. Every other code (INTERNAL_ERROR, TEMPORARILY_UNAVAILABLE, a refused
# connection after the retries, permissions) is the store's, not the input's.
INPUT_ERRORS = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "INVALID_STATE",
    "BAD_REQUEST",
}


# A store's failures that have a cause a user can act on: (text in the error, the cause in
# words). Matched in the lower-cased message of MLflow's error and its causes.
KNOWN_CAUSES = (
    ("readonly database", "its database file or folder is read-only"),
    ("read-only file system", "its file system is read-only"),
    ("database is locked", "its database stayed locked by another process beyond the retries"),
    ("unable to open database file", "its database file cannot be opened (moved or removed?)"),
    ("disk is full", "its disk is full"),
    ("no space left", "its disk is full"),
    ("disk i/o error", "its disk failed to read or write"),
    ("permission denied", "permission denied on its files"),
    ("max retries exceeded", "the server stopped answering"),
    ("connection refused", "the server refused the connection"),
    ("500 server error", "the server answered with an internal error (HTTP 500)"),
    ("503 server error", "the server is unavailable (HTTP 503)"),
)
HTTP_ERRORS = re.compile(r"too many (\d{3}) error responses")
# What follows a SQLAlchemy message: the statement and its parameters (never on a terminal).
SQL_DETAIL = re.compile(r"\s*(\[SQL:|\[parameters:|\(Background on this error).*", re.S)


def cause_in_words(e: BaseException) -> str:
    """Why a store failed, in words: a known cause, else the error's first sentence without
    SQL, parameters or links."""
    chain, seen = [], set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(" ".join(str(getattr(e, "message", e)).split()))
        e = e.__cause__ or e.__context__
    text = " ".join(chain).lower()
    if status := HTTP_ERRORS.search(text):  # urllib3's retries ran out on error answers
        return f"the server answered with HTTP {status[1]} errors beyond the retries"
    for needle, words in KNOWN_CAUSES:
        if needle in text:
            return words
    return SQL_DETAIL.sub("", chain[0])[:160] or "an error without a message"


def unique_key_violation(e: BaseException | None) -> bool:
    """Two writers inserted the same row (sqlite's or PostgreSQL's words, also as a
    server relays them). MLflow calls it BAD_REQUEST, but it is a race between jobs."""
    text = str(e).lower()
    return "unique constraint" in text or "duplicate key value" in text


def store_error(e: Exception, what: str) -> DsbenchError:
    """An MLflow failure as one line: bad input (DsbenchError) or the store's (ExternalError),
    with the cause in words and what to do; never SQL or its parameters."""
    cause = cause_in_words(e)
    if getattr(e, "error_code", None) in INPUT_ERRORS and not unique_key_violation(e):
        return DsbenchError(f"{what}: {cause}")
    return ExternalError(
        f"{what}: {cause}; fix it and run the same command again (finished runs are kept "
        "and skipped)"
    )


class StoreUnreachable(ExternalError):
    """The store check failed: nothing can be recorded there now (not even the failure)."""


def deleted_error(tracking: TrackingConfig, experiment_id: str) -> DsbenchError:
    return DsbenchError(
        f"MLflow experiment {tracking.experiment!r} at {tracking.uri} was deleted; restore it "
        f"(mlflow experiments restore --experiment-id {experiment_id}) or choose another "
        "tracking.experiment"
    )


def local_store(uri: str) -> Path | None:
    """The sqlite file or the store folder of a local store; None for a server or database."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        return Path(uri.removeprefix("sqlite:///"))
    if parsed.scheme in ("", "file"):
        return Path(parsed.path)
    return None


def store_exists(uri: str) -> bool:
    """A server or database is taken to exist; a local store exists once its file or folder
    does (so a lookup that finds none creates none)."""
    path = local_store(uri)
    if path is None:
        return True
    return path.is_file() if uri.startswith("sqlite:") else path.is_dir()


def check_writable(uri: str) -> None:
    """Refuse a local store we could not write, before any training is spent."""
    path = local_store(uri)  # a file store's folder: MLflow creates it in an existing parent
    if path is None:
        return  # a server or database: MLflow reports its own errors
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise DsbenchError(
            f"tracking.uri {uri}: folder {folder} does not exist or is not writable; "
            "use an existing writable folder, e.g. tracking.uri=sqlite:///mlflow.db"
        )


def redacted(uri: str) -> str:
    """The URI without its password, for messages."""
    parsed = urlparse(uri)
    if parsed.password:
        return uri.replace(f":{parsed.password}@", ":***@", 1)
    return uri


def check_store(uri: str) -> None:
    """Refuse a store this run cannot use, within seconds: a local store's folder must be
    writable (bad input), a server must answer /health and a database must accept a
    connection (else ExternalError, naming the URI, the cause and what to do)."""
    scheme = urlparse(uri).scheme.split("+")[0]
    if local_store(uri) is not None:
        check_writable(uri)
    elif scheme in ("http", "https"):
        _check_server(uri)
    elif scheme in DATABASES:
        _check_database(uri)


def _check_server(uri: str) -> None:
    import requests

    env = os.environ.get
    headers, auth = {}, None
    if env("MLFLOW_TRACKING_TOKEN"):  # the credentials and TLS settings MLflow itself reads
        headers["Authorization"] = f"Bearer {env('MLFLOW_TRACKING_TOKEN')}"
    elif env("MLFLOW_TRACKING_USERNAME") and env("MLFLOW_TRACKING_PASSWORD"):
        auth = (env("MLFLOW_TRACKING_USERNAME"), env("MLFLOW_TRACKING_PASSWORD"))
    insecure = env("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true"
    verify: bool | str = False if insecure else env("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    try:
        response = requests.get(
            uri.rstrip("/") + "/health",
            timeout=CHECK_TIMEOUT,
            headers=headers,
            auth=auth,
            verify=verify,
            cert=env("MLFLOW_TRACKING_CLIENT_CERT_PATH"),
        )
    except requests.RequestException as e:
        raise StoreUnreachable(
            f"tracking server {redacted(uri)} is unreachable ({connection_reason(e)}): start "
            "it (make server), or point tracking.uri at a running one"
        ) from None
    if response.status_code in (401, 403):
        raise StoreUnreachable(
            f"tracking server {redacted(uri)} refused us (HTTP {response.status_code}): set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
        )
    if response.status_code != 200:
        raise StoreUnreachable(
            f"tracking server {redacted(uri)} answered /health with HTTP "
            f"{response.status_code}: is tracking.uri an MLflow server (make server)?"
        )


def _check_database(uri: str) -> None:
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    timeout = {"connect_timeout": CHECK_TIMEOUT} if uri.startswith(("postgresql", "mysql")) else {}
    try:
        engine = sqlalchemy.create_engine(uri, poolclass=NullPool, connect_args=timeout)
        with engine.connect():
            pass
        engine.dispose()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as e:
        cause = one_line(getattr(e, "orig", None) or e, 300)
        raise StoreUnreachable(
            f"tracking database {redacted(uri)} cannot be used ({cause}): start it (or "
            "create the database), check host, port, user and password in tracking.uri"
        ) from None


def ready_store(uri: str) -> None:
    """Make sure the store's schema exists, created by one process only.

    MLflow creates (and migrates) the tables on a store's first use; processes that do it at
    the same moment fail (`table … already exists`, `alembic_version` mismatches). A sqlite
    store is initialised under a file lock beside it; a database (many hosts, no shared
    lock) is retried until the process that won has finished.
    """
    if uri in _ready:
        return
    from mlflow import MlflowClient

    def touch() -> None:  # builds the store: creates or checks the schema
        try:
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        except Exception as e:  # not a database, a schema MLflow cannot migrate, a race
            raise ExternalError(
                f"tracking store {redacted(uri)} cannot be opened: {type(e).__name__}: "
                f"{one_line(getattr(e, 'message', e), 300)}"
            ) from e

    scheme = urlparse(uri).scheme.split("+")[0]
    if scheme == "sqlite":
        from filelock import FileLock

        with FileLock(f"{local_store(uri)}.lock"):
            touch()
    elif scheme in DATABASES:
        for attempt in range(6):
            try:
                touch()
                break
            except ExternalError:
                if attempt == 5:
                    raise
                time.sleep(2**attempt)  # 1 + 2 + … + 16 s: long enough for a migration
    _ready.add(uri)


def bound_retries(seconds: float) -> None:
    """Retry a tracking server that stops answering for about `seconds`, then fail.

    MLflow's defaults (7 retries, backoff factor 2, 120 s a request) wait about 4 minutes
    for a server that refuses, far longer for one that hangs. urllib3 sleeps 0, 2, 4, … s
    between k retries with backoff factor 1: 2^k − 2 s in all; each request may take up to
    REQUEST_TIMEOUT more. MLFLOW_HTTP_REQUEST_* variables the user set are kept.
    """
    retries = max(1, min(10, round(math.log2(seconds + 2))))  # MLflow caps retries at 10
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(REQUEST_TIMEOUT))
