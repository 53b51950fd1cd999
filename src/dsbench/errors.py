"""The one exception type for bad input: its message is printed as one line and the run stops."""


class DsbenchError(Exception):
    """Bad input (config, data, geometry); the message says what is wrong and what is allowed."""


def one_line(error: BaseException, limit: int = 400) -> str:
    """A library exception's message on one line (TFDS, tarfile…), capped in length."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
