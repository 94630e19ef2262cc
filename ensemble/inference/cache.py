"""A content-addressed store of model outputs: one safetensors file per model x split x settings.

The key is a BLAKE3 hash of everything that changes the numbers: the model's weight files and
``config.json`` and its tokenizer files (by content), the split's ids and texts (by content),
the inference settings (max_length, dtype, device type, attention implementation, batching),
the torch and transformers versions and the cache schema. Paths and modification times are
never part of it; they only let a big file's digest be reused (:class:`~ensemble.io.hashing.DigestMemo`).

Every entry holds the sample ids (``ids_utf8``, their UTF-8 bytes, and ``ids_offsets``, int64
(n + 1,)) and, in its header metadata, ``schema``, ``key``, ``rows`` (n), what produced it and
BLAKE3 checksums of its tensors and of the rest of the header (``header_blake3``). What else it
holds is its payload (:mod:`ensemble.core.outputs`), named by the header field ``payload``:

``payload`` absent: dense (:class:`~ensemble.core.outputs.Logits`)
    ``logits`` F32 (n, C); header ``labels`` (JSON list of C class names), ``logits_blake3``
    (of ``logits``), ``ids_blake3`` (of ``ids_utf8`` then ``ids_offsets``).
``payload = "ragged"`` (:class:`~ensemble.core.outputs.Ragged`)
    ``values`` F32 (N, C) and ``row_offsets`` I64 (n + 1,); header ``units`` (N), ``labels``,
    ``values_blake3`` (of ``values`` then ``row_offsets``), ``ids_blake3``.
``payload = "texts"`` (:class:`~ensemble.core.outputs.Texts`)
    ``scores`` F32 (N,) and ``row_offsets`` I64 (n + 1,), one score per candidate; the
    candidates' UTF-8 bytes ``texts_utf8`` U8 and ``texts_offsets`` I64 (N + 1,); header
    ``candidates`` (N), ``scores_blake3`` (of ``scores`` then ``row_offsets``),
    ``texts_blake3`` (of ``texts_utf8`` then ``texts_offsets``), ``ids_blake3``.

A dense entry never has a ``payload`` field: it is written byte for byte as before payloads
existed, so the keys and files of earlier versions stay hits, and an entry without the field
(every one they wrote) is read as dense, checked as before. The other kinds always have it and
a header checksum, which covers it. Only safetensors tensors and string metadata are stored,
never pickles.

An entry is written to a temporary file in the cache folder and renamed into place under a
per-key file lock; a reader checks the header, the shapes, the checksums and the ids, and an
entry that fails any check is reported, removed and recomputed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.io.atomic import atomic_write
from ensemble.io.hashing import DigestMemo
from ensemble.io.projectfile import find_project

log = logging.getLogger(__name__)

__all__ = ['OutputCache', 'CacheEntry', 'CACHE_SCHEMA', 'default_cache_dir']

CACHE_SCHEMA = "ensemble.logits/1"
_SUFFIX = ".safetensors"
_STALE_TMP_S = 3600

# payload -> its tensors (name -> safetensors dtype), in the order they are written
_TENSORS = {
    "dense": {"logits": "F32", "ids_utf8": "U8", "ids_offsets": "I64"},
    "ragged": {"values": "F32", "row_offsets": "I64", "ids_utf8": "U8", "ids_offsets": "I64"},
    "texts": {"scores": "F32", "row_offsets": "I64", "texts_utf8": "U8", "texts_offsets": "I64",
              "ids_utf8": "U8", "ids_offsets": "I64"},
}
# payload -> the header fields that are checksums or stored elsewhere in the returned object
_NOT_META = {
    "dense": ("labels", "logits_blake3", "ids_blake3", "header_blake3"),
    "ragged": ("labels", "values_blake3", "ids_blake3", "header_blake3"),
    "texts": ("scores_blake3", "texts_blake3", "ids_blake3", "header_blake3"),
}


def default_cache_dir(start: str | os.PathLike | None = None) -> Path:
    """``.ensemble/cache`` beside the nearest ``ensemble.toml`` up from ``start`` (default: the
    current folder), like git looks for ``.git``; the current folder when there is none."""
    project = find_project(start)
    return (project.parent if project is not None else Path(start or os.getcwd()).resolve()) / ".ensemble" / "cache"


def _blake3(data) -> str:
    from blake3 import blake3

    return blake3(memoryview(data).cast("B")).hexdigest()


def _encode_strings(strings) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of ``strings`` concatenated (uint8) and where each starts (int64, len + 1)."""
    encoded = [str(x).encode("utf-8") for x in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _decode_strings(blob: np.ndarray, offsets: np.ndarray, what: str) -> list[str]:
    """The inverse of :func:`_encode_strings`, after checking the offsets."""
    if offsets[0] != 0 or offsets[-1] != blob.size or np.any(np.diff(offsets) < 0):
        raise ValueError(f"{what} offsets are inconsistent")
    raw = blob.tobytes()
    return [raw[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]


def _header_checksum(meta: Mapping[str, str]) -> str:
    """BLAKE3 of every header field but the checksum itself (class names, settings, what produced
    the entry): a swapped class name is a damaged entry, not a silently other member."""
    fields = {k: v for k, v in meta.items() if k != "header_blake3"}
    return _blake3(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8"))


@dataclass(frozen=True)
class CacheEntry:
    """One file of the cache, as listed by :meth:`OutputCache.entries`."""

    path: Path
    key: str
    metadata: Mapping[str, str]
    size: int
    mtime: float
    damaged: str | None = None  # why the header could not be read

    @property
    def rows(self) -> int | None:
        return int(self.metadata["rows"]) if "rows" in self.metadata else None

    @property
    def payload(self) -> str | None:
        """``"dense"``, ``"ragged"`` or ``"texts"``: the header's ``payload``, dense when absent
        (every entry of earlier versions); None when the header could not be read."""
        if not self.metadata:
            return None
        return self.metadata.get("payload", "dense")

    @property
    def settings(self) -> dict:
        """The inference settings the entry recorded (its ``settings`` header); {} when absent or unreadable."""
        try:
            value = json.loads(self.metadata.get("settings") or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


class OutputCache:
    """Logits on disk, keyed by content.

    Parameters
    ----------
    root : path-like, optional
        The cache folder. Default :func:`default_cache_dir`.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.memo = DigestMemo(self.root / "digests.sqlite")

    def __repr__(self) -> str:
        return f"OutputCache({str(self.root)!r})"

    # ------------------------------------------------------------------ keys

    def file_digest(self, path: str | os.PathLike) -> str:
        """A file's BLAKE3 digest, memoised by path, size, mtime_ns and inode."""
        return self.memo.digest(path)

    @staticmethod
    def make_key(parts: Mapping) -> str:
        """The key of an entry: BLAKE3 of the canonical JSON of ``parts`` and the schema."""
        from blake3 import blake3

        blob = json.dumps({"schema": CACHE_SCHEMA, **parts}, sort_keys=True, separators=(",", ":"))
        return blake3(blob.encode("utf-8")).hexdigest()[:40]

    def path_for(self, key: str) -> Path:
        if not (len(key) == 40 and all(c in "0123456789abcdef" for c in key)):
            raise ValueError(f"not a cache key: {key!r}")
        return self.root / f"{key}{_SUFFIX}"

    def lock(self, key: str):
        """A file lock held while one process computes and writes ``key``."""
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / f".{key}.lock"))

    # ------------------------------------------------------------------ read

    def get(self, key: str, ids: np.ndarray | None = None, problems: list | None = None):
        """What is stored under ``key``, or None: a :class:`~ensemble.core.outputs.Logits`,
        :class:`~ensemble.core.outputs.Ragged` or :class:`~ensemble.core.outputs.Texts` by the
        header's ``payload`` (Logits when it has none); ask the result's ``kind``.

        An entry that cannot be read, fails a checksum, has the wrong shape, NaN values or other
        ids than ``ids`` is removed and None is returned (a miss). Why is said in a warning, or,
        when ``problems`` is a list, appended to it for the caller to say.
        """
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            return self._read(path, key, ids)
        except (EnsembleError, OSError, ValueError, KeyError, UnicodeDecodeError) as e:
            why = str(e).split("; ")[0][:200]
            if problems is None:
                log.warning("%s: damaged cache entry (%s); recomputing", path, why)
            else:
                problems.append(f"{path.name}: {why}")
            path.unlink(missing_ok=True)
            return None

    def _read(self, path: Path, key: str, ids: np.ndarray | None):
        from ensemble.io.tensors import DTYPES, SafetensorsFile

        with SafetensorsFile(path) as f:
            meta = dict(f.metadata)
            if meta.get("schema") != CACHE_SCHEMA or meta.get("key") != key:
                raise ValueError("schema or key in the header does not match the file name")
            payload = meta.get("payload", "dense")
            if payload not in _TENSORS:
                raise ValueError(f"unknown payload {payload!r} in the header")
            if payload == "dense":
                # entries written before the header checksum (it came after schema 1) have none to check
                if "header_blake3" in meta and meta["header_blake3"] != _header_checksum(meta):
                    raise ValueError("header checksum mismatch (class names or settings edited)")
            elif meta.get("header_blake3") != _header_checksum(meta):
                raise ValueError("header checksum mismatch (payload, class names or settings edited)")
            t = f.tensors
            if set(t) != set(_TENSORS[payload]):
                raise ValueError(f"unexpected tensors {sorted(t)}")
            n = int(meta["rows"])
            labels = tuple(json.loads(meta["labels"])) if payload != "texts" else ()
            if payload == "dense":
                expected = {"logits": (n, len(labels))}
            elif payload == "ragged":
                expected = {"values": (int(meta["units"]), len(labels)), "row_offsets": (n + 1,)}
            else:
                count = int(meta["candidates"])
                expected = {"scores": (count,), "row_offsets": (n + 1,), "texts_offsets": (count + 1,)}
            for name, shape in expected.items():
                dtype = _TENSORS[payload][name]
                if (t[name].dtype, t[name].shape) != (dtype, shape):
                    raise ValueError(f"{name} are {t[name].dtype}{list(t[name].shape)}, expected {dtype}{list(shape)}")
            if payload == "texts" and (t["texts_utf8"].dtype, len(t["texts_utf8"].shape)) != ("U8", 1):
                raise ValueError("text tensors have the wrong dtype or shape")
            if (t["ids_offsets"].dtype, t["ids_offsets"].shape) != ("I64", (n + 1,)) or t["ids_utf8"].dtype != "U8":
                raise ValueError("id tensors have the wrong dtype or shape")
            parts = {}
            for name, info in t.items():
                buf = bytearray(info.nbytes)
                parts[name] = f.read(info, 0, info.numel, buf).reshape(info.shape) if info.numel else \
                    np.zeros(info.shape, dtype=DTYPES[info.dtype][0])
        return self._payload(path, payload, meta, parts, ids, labels)

    @staticmethod
    def _payload(path: Path, payload: str, meta: dict, parts: dict, ids: np.ndarray | None, labels: tuple):
        """The payload object of an entry whose header and tensor shapes were checked, after the
        checksums, the ids and the values are."""
        n = int(meta["rows"])
        blob, offsets = parts["ids_utf8"], parts["ids_offsets"]
        if payload == "dense" and _blake3(np.ascontiguousarray(parts["logits"])) != meta["logits_blake3"]:
            raise ValueError("logits checksum mismatch")
        if payload == "ragged" and \
                _blake3(parts["values"].tobytes() + parts["row_offsets"].tobytes()) != meta["values_blake3"]:
            raise ValueError("values checksum mismatch")
        if payload == "texts":
            if _blake3(parts["scores"].tobytes() + parts["row_offsets"].tobytes()) != meta["scores_blake3"]:
                raise ValueError("scores checksum mismatch")
            if _blake3(parts["texts_utf8"].tobytes() + parts["texts_offsets"].tobytes()) != meta["texts_blake3"]:
                raise ValueError("texts checksum mismatch")
        if _blake3(blob.tobytes() + offsets.tobytes()) != meta["ids_blake3"]:
            raise ValueError("ids checksum mismatch")
        stored = np.array(_decode_strings(blob, offsets, "id"), dtype=object)
        if ids is not None and (len(ids) != n or not np.array_equal(stored, ids)):
            raise ValueError("its ids differ from the data's")
        extra = {k: v for k, v in meta.items() if k not in _NOT_META[payload]}
        for k in ("settings", "versions"):
            if k in extra:
                extra[k] = json.loads(extra[k])
        common = dict(model=meta.get("model", ""), split=meta.get("split", ""), meta={**extra, "cache_path": str(path)})
        if payload == "dense":
            values = parts["logits"]
            if not np.isfinite(values).all():
                raise ValueError("it holds NaN or infinite logits")
            from ensemble.core.outputs import Logits

            return Logits(stored, np.array(values, dtype=np.float32), labels, **common)
        if payload == "ragged":
            if not np.isfinite(parts["values"]).all():
                raise ValueError("it holds NaN or infinite values")
            from ensemble.core.outputs import Ragged

            return Ragged(stored, np.array(parts["values"], dtype=np.float32),
                          np.array(parts["row_offsets"], dtype=np.int64), labels, **common)
        from ensemble.core.outputs import Texts

        if np.isnan(parts["scores"]).any():
            raise ValueError("it holds NaN scores")
        rows = np.array(parts["row_offsets"], dtype=np.int64)
        if rows[0] != 0 or rows[-1] != len(parts["scores"]) or np.any(np.diff(rows) < 0):
            raise ValueError("candidate offsets are inconsistent")
        flat = _decode_strings(parts["texts_utf8"], parts["texts_offsets"], "text")
        texts = tuple(tuple(flat[rows[i]:rows[i + 1]]) for i in range(n))
        return Texts(stored, texts, np.array(parts["scores"], dtype=np.float32), rows, **common)

    # ------------------------------------------------------------------ write

    def put(self, key: str, logits, metadata: Mapping[str, object]) -> Path:
        """Store ``logits`` under ``key`` atomically; returns the entry's path.

        ``logits`` is any payload of :mod:`ensemble.core.outputs` (:class:`Logits`,
        :class:`Ragged` or :class:`Texts`; an object without ``kind`` is taken as dense).
        ``metadata`` goes into the header, values that are not str as JSON; the fields the
        cache writes itself (``schema``, ``key``, ``payload``, ``rows``, checksums...) win.
        NaN or infinite logits and values, and NaN scores, are refused (an EnsembleError).
        """
        from ensemble.io.tensors import SafetensorsWriter

        payload = getattr(logits, "kind", "dense")
        if payload not in _TENSORS:
            raise EnsembleError(f"cannot cache a payload of kind {payload!r}; the cache holds {', '.join(_TENSORS)}")
        blob, offsets = _encode_strings(logits.ids)
        meta = {k: (v if isinstance(v, str) else json.dumps(v, sort_keys=True)) for k, v in metadata.items()}
        meta.pop("payload", None)  # a dense entry has none (its bytes are those of earlier versions)
        ids_blake3 = _blake3(blob.tobytes() + offsets.tobytes())
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if payload == "dense":
            values = np.ascontiguousarray(logits.values, dtype=np.float32)
            if not np.isfinite(values).all():
                raise EnsembleError("refusing to cache NaN or infinite logits")
            tensors = {"logits": values}
            meta.update(
                schema=CACHE_SCHEMA, key=key, rows=str(len(offsets) - 1), labels=json.dumps(list(logits.labels)),
                logits_blake3=_blake3(values), ids_blake3=ids_blake3, created_utc=created,
            )
        elif payload == "ragged":
            values = np.ascontiguousarray(logits.values, dtype=np.float32)
            if not np.isfinite(values).all():
                raise EnsembleError("refusing to cache NaN or infinite values")
            rows = np.ascontiguousarray(logits.offsets, dtype=np.int64)
            tensors = {"values": values, "row_offsets": rows}
            meta.update(
                schema=CACHE_SCHEMA, key=key, payload=payload, rows=str(len(offsets) - 1), units=str(len(values)),
                labels=json.dumps(list(logits.labels)), values_blake3=_blake3(values.tobytes() + rows.tobytes()),
                ids_blake3=ids_blake3, created_utc=created,
            )
        else:
            scores = np.ascontiguousarray(logits.scores, dtype=np.float32)
            if np.isnan(scores).any():
                raise EnsembleError("refusing to cache NaN scores")
            rows = np.ascontiguousarray(logits.offsets, dtype=np.int64)
            texts, texts_offsets = _encode_strings(t for row in logits.texts for t in row)
            tensors = {"scores": scores, "row_offsets": rows, "texts_utf8": texts, "texts_offsets": texts_offsets}
            meta.update(
                schema=CACHE_SCHEMA, key=key, payload=payload, rows=str(len(offsets) - 1),
                candidates=str(len(scores)), scores_blake3=_blake3(scores.tobytes() + rows.tobytes()),
                texts_blake3=_blake3(texts.tobytes() + texts_offsets.tobytes()), ids_blake3=ids_blake3,
                created_utc=created,
            )
        tensors.update(ids_utf8=blob, ids_offsets=offsets)
        meta["header_blake3"] = _header_checksum(meta)
        layout = [(name, _TENSORS[payload][name], tensors[name].shape) for name in _TENSORS[payload]]

        def write(tmp: Path) -> None:
            w = SafetensorsWriter(tmp, layout, meta)
            try:
                for name, _, _ in layout:
                    w.write(name, tensors[name])
            finally:
                w.close()

        return atomic_write(self.path_for(key), write)

    # ------------------------------------------------------------------ list and prune

    def entries(self) -> list[CacheEntry]:
        """Every entry in the cache folder, of every payload, newest first; unreadable ones (and
        those of a schema or payload this code does not know) have ``damaged`` set."""
        from ensemble.io.tensors import SafetensorsFile

        out = []
        if not self.root.is_dir():
            return out
        for path in self.root.glob(f"*{_SUFFIX}"):
            st = path.stat()
            key = path.name[: -len(_SUFFIX)]
            try:
                with SafetensorsFile(path) as f:
                    meta, damaged = dict(f.metadata), None
                if meta.get("schema") != CACHE_SCHEMA:
                    damaged = f"schema {meta.get('schema')!r}"
                elif meta.get("payload", "dense") not in _TENSORS:
                    damaged = f"payload {meta.get('payload')!r}"
            except EnsembleError as e:
                meta, damaged = {}, str(e).split(": ", 1)[-1].split("; ")[0]
            out.append(CacheEntry(path, key, meta, st.st_size, st.st_mtime, damaged))
        return sorted(out, key=lambda e: -e.mtime)

    def prune(self, model_digests: Iterable[str] | None = None, data_digests: Iterable[str] | None = None,
              *, pairs: Iterable[tuple[str, str]] | None = None, dry_run: bool = False,
              keep=None) -> list[CacheEntry]:
        """Remove the entries no current model or data file can produce.

        An entry is removed when its model digest is not in ``model_digests`` or its data digest
        is not in ``data_digests`` (a None set is not checked), or, with ``pairs``, when its
        (model digest, data digest) is not one of them (a fold model and its own held-out rows),
        and always when it is damaged. ``keep(entry)``, when given, is asked last of an entry
        that would be kept (the inference settings in force, for ``ensemble cache prune``).
        Temporary files older than an hour (left by a killed process) go too. Returns what was
        (or, with ``dry_run``, would be) removed.
        """
        models = None if model_digests is None else set(model_digests)
        datas = None if data_digests is None else set(data_digests)
        pairs = None if pairs is None else set(pairs)
        removed = []
        for e in self.entries():
            stale = e.damaged is not None \
                or (models is not None and e.metadata.get("model_digest") not in models) \
                or (datas is not None and e.metadata.get("data_digest") not in datas) \
                or (pairs is not None and (e.metadata.get("model_digest"), e.metadata.get("data_digest")) not in pairs)
            if not stale and keep is not None:
                stale = not keep(e)
            if stale:
                removed.append(e)
                if not dry_run:
                    e.path.unlink(missing_ok=True)
        if not dry_run and self.root.is_dir():
            for tmp in self.root.glob(".*.tmp-*"):
                if time.time() - tmp.stat().st_mtime > _STALE_TMP_S:
                    tmp.unlink(missing_ok=True)
            self._remove_idle_locks()
        return removed

    def _remove_idle_locks(self) -> None:
        """The ``.KEY.lock`` files no process holds (a finished or interrupted predict leaves
        them): each is taken without waiting, then removed; one held by a live writer is kept."""
        from filelock import FileLock, Timeout

        for path in self.root.glob(".*.lock"):
            try:
                with FileLock(str(path)).acquire(timeout=0):
                    path.unlink(missing_ok=True)
            except (Timeout, OSError):
                continue
