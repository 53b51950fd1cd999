"""The one exception type for bad input: its message is printed as one line and the run stops."""


class DsbenchError(Exception):
    """Bad input (config, data, geometry); the message says what is wrong and what is allowed."""
