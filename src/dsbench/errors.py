"""The one exception type for bad input: its message is printed as one line and the run stops."""

from __future__ import annotations

from collections.abc import Iterable


class DsbenchError(Exception):
    """Bad input (config, data, geometry); the message says what is wrong and what is allowed."""


def one_line(error: BaseException, limit: int = 400) -> str:
    """A library exception's message on one line (TFDS, tarfile…), capped in length."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unknown(what: str, value: object, allowed: Iterable[str]) -> DsbenchError:
    """The error for a name that is not among the allowed ones: what was asked, what exists."""
    return DsbenchError(f"unknown {what} {value!r}; choose one of: {', '.join(allowed)}")
