"""What a user must know reaches them without configuring logging.

The workflows say what they decided through :mod:`logging` (the CLI shows it; a notebook that set
up logging shows it). A plain script or a Jupyter notebook that never configured logging shows
warnings only (Python's last-resort handler), so the headline, the members left out of a vote and
``auto``'s choice would be lost. :func:`notice` logs them at INFO as before and, when no handler
anywhere would receive the record, prints them to stderr itself: once either way.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["notice"]


def notice(logger: logging.Logger, msg: str, *args, **kwargs) -> None:
    """``logger.info(msg, *args, **kwargs)``, printed to stderr when logging is not configured
    (no handler on ``logger`` or any of its parents)."""
    logger.info(msg, *args, **kwargs)
    if not logger.hasHandlers():
        print(msg % args if args else msg, file=sys.stderr, flush=True)
