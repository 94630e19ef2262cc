"""Write a file so that readers see the old version or the new one, never a part of it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable

__all__ = ['atomic_write', 'output_lock']


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    The temporary name, ``.<name>.tmp-<random>`` in the same folder, keeps the rename atomic
    (one file system) and lets ``OutputCache.prune`` find what a killed process left. The
    temporary file is removed when ``write`` fails. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def output_lock(path: str | os.PathLike):
    """A lock that serialises writers of ``path`` on this machine, kept in the system's
    temporary folder (named by a digest of the absolute path) so that no lock file is left
    beside the outputs a user keeps, such as ``weights/``."""
    import hashlib
    import tempfile

    from filelock import FileLock

    folder = Path(tempfile.gettempdir()) / "ensemble-locks"
    folder.mkdir(exist_ok=True)
    name = hashlib.sha256(str(Path(path).resolve()).encode("utf-8")).hexdigest()[:32]
    return FileLock(str(folder / f"{name}.lock"))
