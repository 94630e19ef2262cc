"""Content hashes of files, read in chunks so that a large weight file never sits in memory."""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

__all__ = ["sha256_file", "sha256_files"]

_CHUNK = 8 << 20


def sha256_file(path: str | os.PathLike, stop: threading.Event | None = None) -> str:
    """Hex sha256 of a file's bytes (``stop``, when set, abandons the work early)."""
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            if stop is not None and stop.is_set():
                return ""
            h.update(mv[:n])  # hashlib releases the GIL for large updates
    return h.hexdigest()


def sha256_files(paths: Iterable[str | os.PathLike], workers: int | None = None):
    """Start hashing files in background threads; returns a future of {path: hex digest}.

    The threads overlap with whatever the caller does next (hashing runs outside the GIL).
    """
    paths = [Path(p) for p in paths]
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(len(paths), workers or os.cpu_count() or 1)))
    futures = {p: pool.submit(sha256_file, p, stop) for p in paths}
    pool.shutdown(wait=False)

    class _All:
        def result(self) -> dict[Path, str]:
            return {p: f.result() for p, f in futures.items()}

        def cancel(self) -> None:
            stop.set()

    return _All()
