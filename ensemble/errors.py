"""The one exception type that the CLI turns into a one-line message and exit code 1, and how
its messages name an option: as the CLI flag under the CLI, as the keyword argument elsewhere."""

from __future__ import annotations

import contextlib
import contextvars

__all__ = ["EnsembleError", "flag", "cli_messages"]

# Set by the CLI while a command runs: messages then name flags (--force) instead of keyword
# arguments (force=True), so that a notebook user is told what to pass to the function.
_CLI = contextvars.ContextVar("ensemble_cli", default=False)


class EnsembleError(Exception):
    """A user-facing error: bad input, a missing file, a refused overwrite.

    The message is one line that names the file and says how to fix it. The CLI prints it
    as ``error: <message>`` and exits with status 1; library callers can catch it.
    """

    def __init__(self, message: str):
        if "\n" in message:
            raise ValueError("EnsembleError messages must be one line")
        super().__init__(message)


def flag(name: str, value: str = "True") -> str:
    """How a message names option ``name``: ``--force`` under the CLI, ``force=True`` for the
    library (``value`` is what to pass; a flag that takes a value shows it: ``--out ...``)."""
    if _CLI.get():
        return f"--{name.replace('_', '-')}" + ("" if value == "True" else f" {value}")
    return f"{name}={value}"


@contextlib.contextmanager
def cli_messages():
    """Context: messages name CLI flags while it is active (used by the CLI's commands)."""
    token = _CLI.set(True)
    try:
        yield
    finally:
        _CLI.reset(token)
