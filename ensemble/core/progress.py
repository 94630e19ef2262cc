"""Progress bars for the long steps of the combining half (the cross-validation's folds), shown
only where the command line turned them on: on a terminal, and not with ``-q``.

The command line sets the switch for the duration of a command (:func:`enabled`); library
calls from a notebook run without bars unless they set it themselves.
"""

from __future__ import annotations

import contextlib
import contextvars

__all__ = ['enabled', 'bar']

_ON = contextvars.ContextVar("ensemble_progress", default=False)


@contextlib.contextmanager
def enabled(on: bool = True):
    """Within this block, :func:`bar` shows (``on``) or hides its bars."""
    token = _ON.set(bool(on))
    try:
        yield
    finally:
        _ON.reset(token)


def bar(total: int, desc: str, unit: str = "fold"):
    """A tqdm bar on stderr, disabled unless :func:`enabled`; it leaves no line behind."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not _ON.get(), leave=False)
