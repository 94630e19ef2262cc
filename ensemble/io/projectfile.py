"""Where the project file is: the nearest ``ensemble.toml`` up from a folder, like git looks for
``.git``. Reading it is the CLI's (:mod:`ensemble.cli.project`); finding it is also the cache's,
whose default folder sits beside it."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PROJECT_FILE", "find_project"]

PROJECT_FILE = "ensemble.toml"


def find_project(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest ``ensemble.toml`` in ``start`` (default: the current folder) or its parents."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder / PROJECT_FILE
    return None
