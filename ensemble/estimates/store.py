"""Cross-validated estimates stored on disk, content-addressed, so that ``vote --weights auto``,
``report`` and ``ensemble run`` compute each one once.

An entry's key is the BLAKE3 of everything the estimate depends on: the aligned logits and the
labels (their bytes), the folds (their row indices), the procedure and its options, the metrics
and the bootstrap's settings. Changed inputs are another key, so a miss, never a stale hit.
Entries live in ``estimates/`` beside the logit cache, one ``.npz`` file each (read with
``allow_pickle=False``): the arrays, and a JSON document with its own BLAKE3. An entry that cannot
be read or whose checksum fails is removed with a warning and recomputed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ensemble.io.atomic import atomic_write

log = logging.getLogger(__name__)

__all__ = ['EstimateStore', 'data_digest', 'input_digest']

SCHEMA = "ensemble.estimate/1"


def data_digest(arrays, y, plan) -> str:
    """BLAKE3 of the aligned arrays, the labels and the folds' row indices: what every estimate on
    them shares, hashed once (:func:`input_digest` adds the options)."""
    from blake3 import blake3

    h = blake3(max_threads=blake3.AUTO)  # the same digest, hashed on every core
    for i, a in enumerate(arrays):
        _update(h, f"member{i}", a)
    _update(h, "y", np.asarray(y, dtype=np.int64))
    for r, pairs in enumerate(plan.rounds):
        for i, (train, test) in enumerate(pairs):
            _update(h, f"round{r}.fold{i}.train", np.asarray(train, dtype=np.int64))
            _update(h, f"round{r}.fold{i}.test", np.asarray(test, dtype=np.int64))
    return h.hexdigest()


def input_digest(data: str, options: Mapping) -> str:
    """An entry's key: BLAKE3 of :func:`data_digest`'s ``data`` and the options (JSON)."""
    from blake3 import blake3

    h = blake3(data.encode())
    h.update(json.dumps({"schema": SCHEMA, **options}, sort_keys=True, default=_jsonable).encode())
    return h.hexdigest()[:40]


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    raise TypeError(f"not JSON: {type(v).__name__}")


class EstimateStore:
    """A folder of stored estimates.

    Parameters
    ----------
    root : path-like
        The folder (created on first write), e.g. ``.ensemble/cache/estimates``.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"EstimateStore({str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        if not (len(key) == 40 and all(c in "0123456789abcdef" for c in key)):
            raise ValueError(f"not an estimate key: {key!r}")
        return self.root / f"{key}.npz"

    def get(self, key: str) -> tuple[dict, dict[str, np.ndarray]] | None:
        """(document, arrays) stored under ``key``, or None: absent, or damaged (then removed,
        with a warning)."""
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            doc_bytes = arrays.pop("_doc").tobytes()
            doc = json.loads(doc_bytes.decode("utf-8"))
            if doc.get("schema") != SCHEMA or doc.get("key") != key:
                raise ValueError(f"schema {doc.get('schema')!r}, key {doc.get('key')!r}")
            if doc.pop("blake3", None) != _checksum(doc, arrays):
                raise ValueError("its checksum does not match its content")
        except Exception as e:  # any unreadable entry: recomputed, never trusted
            log.warning("%s: a stored estimate is damaged (%s); removed, it is recomputed", path,
                        str(e).splitlines()[0][:120] if str(e) else type(e).__name__)
            path.unlink(missing_ok=True)
            return None
        return doc["value"], arrays

    def put(self, key: str, value: Mapping, arrays: Mapping[str, np.ndarray]) -> Path:
        """Store a JSON-able ``value`` and ``arrays`` under ``key``, atomically."""
        doc = {"schema": SCHEMA, "key": key, "value": value}
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        doc["blake3"] = _checksum(doc, arrays)
        blob = np.frombuffer(json.dumps(doc, sort_keys=True, default=_jsonable).encode("utf-8"), dtype=np.uint8)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, _doc=blob, **arrays)

        self.root.mkdir(parents=True, exist_ok=True)
        return atomic_write(self.path_for(key), write)

    def cached(self, key: str, compute: Callable[[], object], save: Callable, load: Callable):
        """The stored value of ``key`` (``load(value, arrays)``), or ``compute()`` stored with
        ``save(result) -> (value, arrays)``; a store that cannot be written is a warning."""
        hit = self.get(key)
        if hit is not None:
            try:
                return load(*hit)
            except (KeyError, TypeError, ValueError) as e:
                log.warning("%s: a stored estimate is damaged (%s); recomputed", self.path_for(key), str(e)[:120])
        result = compute()
        try:
            self.put(key, *save(result))
        except OSError as e:
            log.warning("%s: the estimate could not be stored (%s); it will be computed again next time",
                        self.root, e)
        return result


def _checksum(doc: Mapping, arrays: Mapping[str, np.ndarray]) -> str:
    from blake3 import blake3

    h = blake3(json.dumps(doc, sort_keys=True, default=_jsonable).encode("utf-8"))
    for k in sorted(arrays):
        _update(h, k, arrays[k])
    return h.hexdigest()


def _update(h, name: str, a: np.ndarray) -> None:
    """Feed an array to a BLAKE3 hasher: its name, dtype and shape, then its bytes (no copy
    when it is contiguous)."""
    a = np.ascontiguousarray(a)
    h.update(f"|{name}|{a.dtype.str}|{a.shape}|".encode())
    h.update(memoryview(a).cast("B"))
