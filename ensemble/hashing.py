"""Content hashes of files: BLAKE3, fed either by a reader that is streaming the file anyway or,
as a fallback, by reading the file in chunks.

BLAKE3 is a cryptographic hash that runs at about 4 GB/s on one core here, against 1.3 GB/s for
hashlib's sha256: hashing every source checkpoint costs less than reading it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from blake3 import blake3

__all__ = ["HASH_NAME", "file_digest", "StreamHasher"]

HASH_NAME = "blake3"
_CHUNK = 8 << 20


def file_digest(path: str | os.PathLike) -> str:
    """Hex BLAKE3 digest of a file's bytes, read in chunks."""
    h = blake3()
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(mv[:n])
    return h.hexdigest()


class StreamHasher:
    """Hash a file from the pieces a reader reads anyway, when they come in file order.

    ``feed(offset, data)`` accepts the piece that starts where the previous one ended; any other
    order, or a file that was not read to its end, falls back to :func:`file_digest`. Pieces of
    different files may be fed from different threads; pieces of one file must come in order.
    """

    def __init__(self, path: str | os.PathLike, size: int, head: bytes = b""):
        self.path, self.size = Path(path), size
        self._h = blake3(head)
        self._pos = len(head)
        self._in_order = True
        self._lock = threading.Lock()

    def feed(self, offset: int, data) -> None:
        with self._lock:
            if self._in_order and offset == self._pos:
                self._h.update(data)
                self._pos += len(data)
            else:
                self._in_order = False

    def hexdigest(self) -> str:
        if self._in_order and self._pos == self.size:
            return self._h.hexdigest()
        return file_digest(self.path)
