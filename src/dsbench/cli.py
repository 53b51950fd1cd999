"""Entry-point wrapper: bad input ends with one error line and exit 2; a failure from
outside (a download, the tracking store) with one line and exit 1.

Hydra prints multi-line reports (and tracebacks for errors inside the app); users of a
benchmark want one line that says what is wrong and what is allowed. Unexpected errors
(bugs) keep their traceback.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

from dsbench.errors import DsbenchError, ExternalError, did_you_mean, request_stop

EXIT_BAD_INPUT = 2


def config_error_line(e: BaseException) -> str:
    """A Hydra/OmegaConf error (composition, schema) as one line: an unknown option or key
    with the closest valid names, else the messages of its cause chain, joined. (Never
    Hydra's advice to append with `+key`: a typo is not a new key.)"""
    if isinstance(e, MissingConfigException) and e.missing_cfg_file and e.options:
        group, _, value = e.missing_cfg_file.rpartition("/")
        return (
            f"unknown {group or 'config'} {value!r}{did_you_mean(value, e.options)}; "
            f"choose one of: {', '.join(e.options)}"
        )
    if (line := _unknown_key(e)) is not None:
        return line
    parts: list[str] = []
    while e is not None:  # Hydra wraps the useful message (sometimes in an empty one)
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        skip = ("full_key", "object_type", "reference_type", "value:")
        parts += [ln for ln in lines if not ln.startswith(skip) and ln not in parts]
        e = e.__cause__
    return ": ".join(parts) or "invalid configuration"


def _unknown_key(e: BaseException) -> str | None:
    """`a.b.typo=value` for a key the schema does not have: one line naming the closest keys
    of that level, and all of them where they fit."""
    text = " ".join(str(x) for x in _chain(e))
    override = re.search(r"Could not override '([^']+)'", text)
    key = re.search(r"Key '([^']+)' not in '(\w+)'", text)
    if not (override and key):
        return None
    from dsbench import config

    schema = getattr(config, key[2], None)
    if not dataclasses.is_dataclass(schema):
        return None
    full = override[1]
    prefix = full[: -len(key[1])] if full.endswith(key[1]) else ""
    names = [f.name for f in dataclasses.fields(schema)]
    if issubclass(schema, config.TrainConfig) and not prefix:  # groups that are no schema key
        names += [g for g in config.config_groups() if g not in names]
    line = f"unknown key {full!r}{did_you_mean(key[1], names, prefix)}"
    keys = f"; the keys{' of ' + prefix.rstrip('.') if prefix else ''}: {', '.join(names)}"
    return line + keys if len(line + keys) <= 300 else line


def _chain(e: BaseException | None) -> Iterator[BaseException]:
    while e is not None:
        yield e
        e = e.__cause__


EXIT_EXTERNAL = 1  # not the input: a download, the tracking store (errors.ExternalError)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    print(f"dsbench: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def fail_on(e: DsbenchError) -> NoReturn:
    fail(str(e), EXIT_EXTERNAL if isinstance(e, ExternalError) else EXIT_BAD_INPUT)


def _sigterm(signum: int, frame: Any) -> None:
    request_stop()
    raise KeyboardInterrupt  # so the open MLflow run ends KILLED, not RUNNING forever


COMMAND_PID = "DSBENCH_COMMAND_PID"  # the command's process; a sweep's workers end with it
PR_SET_PDEATHSIG = 1  # Linux prctl: the signal this process gets when its parent dies


def end_with_the_command() -> None:
    """In a worker process of a sweep (the default launcher runs jobs in them): get SIGTERM,
    and so end the open run KILLED, when the command's process ends, however it ends (a
    SIGKILL included); a worker would otherwise train on, orphaned, beside a resumed sweep."""
    command = int(os.environ.get(COMMAND_PID, "0"))
    if not command or command == os.getpid() or os.getppid() != command:
        return
    signal.signal(signal.SIGTERM, _sigterm)
    os.environ[COMMAND_PID] = str(os.getpid())  # inherited by the processes it starts
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != command:  # it ended before the line above
            os.kill(os.getpid(), signal.SIGTERM)


@contextmanager
def exit_on_bad_input() -> Iterator[None]:
    """Wrap a Hydra task's body: bad input exits there, before Hydra reports the job failed.

    SystemExit passes through Hydra's job runner, which would otherwise print its own
    "Error executing job" line; in a sweep it stops the sweep.
    """
    try:
        yield
    except DsbenchError as e:
        if not isinstance(e, ExternalError):
            discard_output_dir()  # bad input leaves nothing behind
        fail_on(e)


HYDRA_FILES = {".hydra"}  # what Hydra writes into a job's folder before the job runs


def discard_output_dir() -> None:
    """Remove this job's output folder if it holds only what Hydra wrote before the job ran
    (its config in .hydra/, an empty or INFO-only log): a job that did nothing leaves none."""
    import shutil

    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    folder = Path(HydraConfig.get().runtime.output_dir)
    if folder.resolve() == Path.cwd().resolve() or not folder.is_dir():
        return
    if all(p.name in HYDRA_FILES or p.suffix == ".log" for p in folder.iterdir()):
        shutil.rmtree(folder)
        remove_empty_parents(folder)


def remove_empty_parents(folder: Path) -> None:
    """The folders Hydra made above a removed one (outputs/runs/), while empty and below the
    current folder."""
    here, parent = Path.cwd().resolve(), folder.resolve().parent
    while parent != here and here in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def run_app(app: Callable[[], Any]) -> None:
    # Composition errors reach us instead of Hydra's multi-line report.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    # MLflow's loggers then go where Hydra's job logging sends them (the job's log file),
    # instead of a handler of MLflow's own on stderr.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    # joblib's loky executor says so when it replaces a worker it reaped; every job's
    # outcome still comes back (and a job that failed is recorded by its own run).
    warnings.filterwarnings("ignore", "A worker stopped while some jobs", UserWarning)
    signal.signal(signal.SIGTERM, _sigterm)
    os.environ[COMMAND_PID] = str(os.getpid())  # inherited by the processes it starts
    from dsbench.tracking import sweep

    aborted = True
    try:
        app()
        aborted = False
        if sweep.state.closed:
            print(f"dsbench: the sweep's {sweep.state.closed}", flush=True)
        # Counted by the store when on_multirun_end closed the sweep, and by this process.
        failures = max(
            sweep.state.failures, sweep.state.job_failures, sweep.state.marked_failures()
        )
        if failures:
            print(
                f"dsbench: {failures} job(s) of the sweep failed; their runs carry a "
                "failure_reason tag (the log has each reason)",
                file=sys.stderr,
            )
            sys.exit(1)
    except DsbenchError as e:
        fail_on(e)
    except sweep.SweepAborted as e:
        fail(str(e), e.code)
    except (HydraException, OmegaConfBaseException) as e:
        fail(config_error_line(e))
    except KeyboardInterrupt:
        print("dsbench: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        try:
            sweep.close_sweep(aborted=aborted)
        except Exception as e:  # the store is gone too: say so without a traceback
            print(
                f"dsbench: cannot close the sweep's parent run ({config_error_line(e)})",
                file=sys.stderr,
            )
