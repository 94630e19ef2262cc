"""Tensor file I/O that streams: read and write safetensors at the offsets its header gives.

A safetensors file is an 8-byte little-endian header length, a JSON header (name -> dtype,
shape, data offsets, plus ``__metadata__``), then the raw little-endian bytes of every tensor.
Reading a tensor's bytes with plain ``readinto`` at those offsets keeps the process's resident
memory at one small chunk buffer: memory-mapping the file (``safe_open``) would count every
page touched in the resident set. Writing the header first (names, dtypes, shapes and offsets
are known before any arithmetic) lets the writer append each tensor as it is computed.

The header is validated before anything is allocated from it: its length, JSON, dtypes,
shapes and offsets (in bounds, matching the shape, contiguous, no overlap), so that a
truncated or hostile file is refused with a message instead of a crash or a huge allocation.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Mapping, Sequence

import numpy as np

from ensemble.core.errors import EnsembleError

if sys.byteorder != "little":  # pragma: no cover - every platform torch supports today
    raise ImportError("ensemble.tensorio assumes a little-endian machine")

__all__ = ['DTYPES', 'FLOAT_DTYPES', 'TensorInfo', 'SafetensorsFile', 'SafetensorsWriter', 'to_float', 'from_float']

# safetensors dtype -> (numpy storage dtype, itemsize). BF16 and FP8 are stored as raw unsigned
# integers of their width; to_float / from_float convert BF16 (FP8 is copied, never averaged).
DTYPES: dict[str, tuple[np.dtype, int]] = {
    "F64": (np.dtype("<f8"), 8),
    "F32": (np.dtype("<f4"), 4),
    "F16": (np.dtype("<f2"), 2),
    "BF16": (np.dtype("<u2"), 2),
    "I64": (np.dtype("<i8"), 8),
    "I32": (np.dtype("<i4"), 4),
    "I16": (np.dtype("<i2"), 2),
    "I8": (np.dtype("i1"), 1),
    "U64": (np.dtype("<u8"), 8),
    "U32": (np.dtype("<u4"), 4),
    "U16": (np.dtype("<u2"), 2),
    "U8": (np.dtype("u1"), 1),
    "BOOL": (np.dtype("u1"), 1),
    "F8_E4M3": (np.dtype("u1"), 1),
    "F8_E5M2": (np.dtype("u1"), 1),
}
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})

# The reference implementation refuses headers above 100 MB; so do we, before reading them.
MAX_HEADER_BYTES = 100_000_000


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lies in a file: ``start`` and ``end`` are absolute byte offsets."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def itemsize(self) -> int:
        return DTYPES[self.dtype][1]


def _corrupt(path: Path, why: str) -> EnsembleError:
    return EnsembleError(
        f"{path}: truncated or corrupt safetensors file ({why}); re-save it from the model "
        "or leave this checkpoint out"
    )


class SafetensorsFile:
    """A validated safetensors header and an open file to read tensor bytes from.

    Parameters
    ----------
    path : path-like
        The ``.safetensors`` file.

    Attributes
    ----------
    tensors : dict[str, TensorInfo]
        Every tensor, in the order of its data in the file.
    metadata : dict[str, str]
        The header's ``__metadata__`` (empty when absent).
    header_bytes : bytes
        The first ``8 + header length`` bytes of the file, as read.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self._f: BinaryIO = open(self.path, "rb", buffering=0)
        except OSError as e:
            raise EnsembleError(f"{self.path}: cannot open ({e.strerror}); check the path") from None
        try:
            self.size = os.fstat(self._f.fileno()).st_size
            self.header_bytes, self.metadata, self.tensors = self._parse()
        except BaseException:
            self._f.close()
            raise

    def _parse(self):
        path = self.path
        if self.size < 8:
            raise _corrupt(path, f"{self.size} bytes, shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", self._f.read(8))
        if n > MAX_HEADER_BYTES:
            raise _corrupt(path, f"header length {n} bytes exceeds the {MAX_HEADER_BYTES} byte limit")
        if 8 + n > self.size:
            raise _corrupt(path, f"header of {n} bytes runs past the end of the {self.size}-byte file")
        raw = self._f.read(n)
        try:
            header = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise _corrupt(path, f"header is not valid JSON: {e.msg if hasattr(e, 'msg') else e}")
        if not isinstance(header, dict):
            raise _corrupt(path, "header is not a JSON object")
        metadata = header.pop("__metadata__", None) or {}
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise _corrupt(path, "__metadata__ must map strings to strings")
        data_start = 8 + n
        data_size = self.size - data_start
        infos = []
        for name, entry in header.items():
            if not isinstance(entry, dict):
                raise _corrupt(path, f"entry for tensor {name!r} is not an object")
            dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
            if dtype not in DTYPES:
                raise _corrupt(path, f"tensor {name!r} has unknown dtype {dtype!r}")
            if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
                raise _corrupt(path, f"tensor {name!r} has an invalid shape {shape!r}")
            if not (
                isinstance(offsets, list)
                and len(offsets) == 2
                and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data_size
            ):
                raise _corrupt(path, f"tensor {name!r} has data offsets {offsets!r} outside the file")
            numel = 1
            for d in shape:
                numel *= d
            if numel * DTYPES[dtype][1] != offsets[1] - offsets[0]:
                raise _corrupt(
                    path,
                    f"tensor {name!r} of shape {shape} and dtype {dtype} needs "
                    f"{numel * DTYPES[dtype][1]} bytes, its offsets span {offsets[1] - offsets[0]}",
                )
            infos.append(
                TensorInfo(name, dtype, tuple(shape), data_start + offsets[0], data_start + offsets[1])
            )
        infos.sort(key=lambda t: (t.start, t.end))
        expected = data_start
        for t in infos:
            if t.start != expected:
                raise _corrupt(path, f"tensor {t.name!r} does not start where the previous one ends")
            expected = t.end
        if expected != self.size:
            raise _corrupt(path, f"data ends at byte {expected} but the file has {self.size} bytes")
        return struct.pack("<Q", n) + raw, metadata, {t.name: t for t in infos}

    def read(self, info: TensorInfo, start: int, count: int, buf: bytearray) -> np.ndarray:
        """Read elements ``[start, start + count)`` of a tensor into ``buf`` and view them.

        The returned array is a view of ``buf`` in the tensor's storage dtype (BF16 as uint16).
        """
        np_dtype, itemsize = DTYPES[info.dtype]
        nbytes = count * itemsize
        mv = memoryview(buf)[:nbytes]
        self._f.seek(info.start + start * itemsize)
        got = 0
        while got < nbytes:
            r = self._f.readinto(mv[got:])
            if not r:
                raise _corrupt(self.path, f"file ended while reading tensor {info.name!r}")
            got += r
        return np.frombuffer(buf, dtype=np_dtype, count=count)

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def to_float(arr: np.ndarray, dtype: str, out_dtype: np.dtype) -> np.ndarray:
    """Storage array of a float safetensors dtype -> array of ``out_dtype`` (exact upcast)."""
    if dtype == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32).astype(out_dtype, copy=False)
    return arr.astype(out_dtype, copy=False)


def from_float(arr: np.ndarray, dtype: str) -> np.ndarray:
    """Float array -> storage array of a float safetensors dtype, rounding to nearest even.

    BF16 follows torch's conversion: round to nearest even on the upper 16 bits of the float32
    pattern, and a canonical quiet NaN (0x7FC0) for any NaN.
    """
    if dtype == "BF16":
        f = arr.astype(np.float32, copy=False)
        u = f.view(np.uint32)
        out = ((u + (((u >> 16) & 1) + np.uint32(0x7FFF))) >> 16).astype(np.uint16)
        nan = np.isnan(f)
        if nan.any():
            out[nan] = 0x7FC0
        return out
    return arr.astype(DTYPES[dtype][0], copy=False)


class SafetensorsWriter:
    """Write a safetensors file tensor by tensor, header first.

    Parameters
    ----------
    path : path-like
        The file to create (it must not exist).
    entries : sequence of (name, dtype, shape)
        The tensors, in the order their data will be written.
    metadata : mapping of str to str
        The header's ``__metadata__``. :meth:`rewrite_metadata` may replace it later with a
        mapping whose JSON has the same length (e.g. hashes that were placeholders).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        entries: Sequence[tuple[str, str, Sequence[int]]],
        metadata: Mapping[str, str],
    ):
        self.path = Path(path)
        self._order = []
        self._layout = {}
        offset = 0
        for name, dtype, shape in entries:
            numel = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
            nbytes = numel * DTYPES[dtype][1]
            self._layout[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            self._order.append((name, nbytes))
            offset += nbytes
        self._header_len = None
        header = self._header(metadata)
        self._header_len = len(header)
        self._f = open(self.path, "xb")
        self._f.write(struct.pack("<Q", len(header)) + header)
        self._next = 0
        self._written = 0  # bytes of the current tensor written so far

    def _header(self, metadata: Mapping[str, str]) -> bytes:
        body = json.dumps({"__metadata__": dict(metadata), **self._layout}, separators=(",", ":")).encode()
        if self._header_len is None:
            return body + b" " * (-len(body) % 8)  # pad to 8 bytes like the reference writer
        if len(body) > self._header_len:
            raise ValueError("rewritten safetensors metadata is longer than the reserved header")
        return body + b" " * (self._header_len - len(body))

    def write(self, name: str, data: np.ndarray | bytes) -> None:
        """Append bytes of tensor ``name``; a tensor may be written in several calls."""
        while (
            self._next < len(self._order)
            and self._order[self._next][1] == 0
            and self._order[self._next][0] != name
        ):
            self._next += 1  # zero-size tensors need no bytes
        if self._next >= len(self._order) or self._order[self._next][0] != name:
            expected = self._order[self._next][0] if self._next < len(self._order) else None
            raise ValueError(f"tensor {name!r} written out of order, expected {expected!r}")
        mv = memoryview(data).cast("B")
        total = self._order[self._next][1]
        if self._written + mv.nbytes > total:
            raise ValueError(f"tensor {name!r}: more bytes written than its shape holds")
        try:
            self._f.write(mv)
        except OSError as e:  # a full disk: name the file being written, not what it was read from
            raise OSError(e.errno, e.strerror, str(self.path)) from None
        self._written += mv.nbytes
        if self._written == total:
            self._next += 1
            self._written = 0

    def rewrite_metadata(self, metadata: Mapping[str, str]) -> None:
        """Replace ``__metadata__`` in the header already written (same length or shorter)."""
        header = self._header(metadata)
        with open(self.path, "r+b") as f:
            f.seek(8)
            f.write(header)

    def close(self) -> None:
        """Close the file; raises if some tensor was not written in full."""
        if not self._f.closed:
            self._f.close()
        # Zero-size tensors need no write call.
        while self._next < len(self._order) and self._order[self._next][1] == 0:
            self._next += 1
        if self._next != len(self._order):
            raise ValueError(f"{self.path}: tensor {self._order[self._next][0]!r} was not written")

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()


def iter_chunks(numel: int, chunk: int) -> Iterable[tuple[int, int]]:
    """(start, count) element ranges covering ``numel`` in pieces of at most ``chunk``."""
    for start in range(0, numel, chunk):
        yield start, min(chunk, numel - start)
