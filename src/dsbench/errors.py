"""The exceptions printed as one line that stop a run: bad input, and failures from outside."""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Iterable

_STOP = threading.Event()


def request_stop() -> None:
    """The process was told to stop (SIGTERM, or its sweep's process ended): whatever fails
    after this was stopped, not broken, and its run ends KILLED, not FAILED (a library may
    turn the KeyboardInterrupt that the signal raises into its own exception)."""
    _STOP.set()


def stop_requested() -> bool:
    return _STOP.is_set()


class DsbenchError(Exception):
    """Bad input (config, data, geometry); the message says what is wrong and what is allowed."""


class ExternalError(DsbenchError):
    """Not the user's input but something the run needs from outside: a download, the
    tracking server or database, a dataset another process prepares. Also one line, but exit
    1, not 2; in a sweep it fails that job (a FAILED run with the reason) and the sweep goes on.
    """


class Diverged(FloatingPointError):
    """The training loss became NaN or infinite: an outcome of the config (an lr too high,
    say), not a failure of the machine. Its run is FAILED with the reason `Diverged: …`, a
    resumed sweep does not train it again, and a study reports it as a result."""


DIVERGED = f"{Diverged.__name__}: "  # how a diverged run's failure_reason tag begins


def one_line(error: BaseException, limit: int = 400) -> str:
    """A library exception's message on one line (TFDS, tarfile…), capped in length."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def did_you_mean(name: str, names: Iterable[str], prefix: str = "") -> str:
    """` (did you mean x?)` with the one or two names closest to a misspelt one, else ""."""
    close = difflib.get_close_matches(str(name), list(names), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(prefix + c for c in close)}?)" if close else ""


def unknown(what: str, value: object, allowed: Iterable[str]) -> DsbenchError:
    """The error for a name that is not among the allowed ones: what was asked, the closest
    names, what exists."""
    allowed = list(allowed)
    return DsbenchError(
        f"unknown {what} {value!r}{did_you_mean(str(value), allowed)}; "
        f"choose one of: {', '.join(allowed)}"
    )


def connection_reason(e: Exception) -> str:
    """A failed HTTP request (requests), short: `<url> answered 404 Not Found`, `<url>: [Errno
    111] Connection refused` instead of the long repr requests nests the cause in."""
    response = getattr(e, "response", None)
    if response is not None:
        return f"{response.url} answered {response.status_code} {response.reason}"
    text = str(e)
    found = re.search(r"\[Errno -?\d+\] [^'\")]+|Read timed out|timed out", text)
    what = found.group(0) if found else f"{type(e).__name__}: {one_line(e, 200)}"
    request = getattr(e, "request", None)
    return f"{request.url}: {what}" if request is not None else what
