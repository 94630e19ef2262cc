"""The one exception type that the CLI turns into a one-line message and exit code 1."""

from __future__ import annotations

__all__ = ["EnsembleError"]


class EnsembleError(Exception):
    """A user-facing error: bad input, a missing file, a refused overwrite.

    The message is one line that names the file and says how to fix it. The CLI prints it
    as ``error: <message>`` and exits with status 1; library callers can catch it.
    """

    def __init__(self, message: str):
        if "\n" in message:
            raise ValueError("EnsembleError messages must be one line")
        super().__init__(message)
