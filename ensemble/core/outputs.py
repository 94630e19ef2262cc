"""What one model computes over one split, with its sample ids: what inference computes, the
cache stores and every combination reads. numpy only; imports none of them.

Three payloads, told apart by their class attribute ``kind``:

- :class:`Logits` (``"dense"``): one row of C numbers per sample, an (n, C) array.
- :class:`Ragged` (``"ragged"``): a variable number of rows of C numbers per sample (e.g. one
  per character), stored flat as (N, C) values with (n + 1,) row offsets.
- :class:`Texts` (``"texts"``): a variable number of candidate texts per sample with one score
  each (generation), stored flat in candidate order with (n + 1,) row offsets.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import ClassVar, Iterator, Mapping, Sequence

import numpy as np

__all__ = ['Logits', 'Ragged', 'Texts', 'PAYLOAD_KINDS']

#: The ``kind`` of every payload class, in the order above.
PAYLOAD_KINDS = ("dense", "ragged", "texts")


@dataclass(frozen=True, eq=False)
class Logits:
    """One model's logits over one split.

    Attributes
    ----------
    ids : ndarray of str, shape (n,)
        Sample ids, in the split's row order.
    values : ndarray of float32, shape (n, C)
        Logits; column j is class ``labels[j]``.
    labels : tuple of str, length C
        Class names from the model's ``config.id2label``, in column order.
    model, split : str
        Names of the model and the split.
    meta : mapping
        Where the numbers came from: cache key and path, settings, digests.
    kind : str, class attribute
        ``"dense"``.
    """

    kind: ClassVar[str] = "dense"

    ids: np.ndarray
    values: np.ndarray
    labels: tuple[str, ...]
    model: str = ""
    split: str = ""
    meta: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if self.values.ndim != 2 or self.values.shape != (len(self.ids), len(self.labels)):
            raise ValueError(f"logits of shape {self.values.shape} do not match {len(self.ids)} ids "
                             f"and {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.ids)

    def probabilities(self) -> np.ndarray:
        """Softmax over classes, shape (n, C), float64."""
        from scipy.special import softmax

        return softmax(self.values.astype(np.float64), axis=1)

    def predictions(self) -> np.ndarray:
        """The class index with the highest logit, shape (n,)."""
        return self.values.argmax(axis=1)


def _check_ids(what: str, ids) -> None:
    if not isinstance(ids, np.ndarray) or ids.ndim != 1:
        raise ValueError(f"{what}: ids must be a 1-D array, got {type(ids).__name__}"
                         f"{'' if not isinstance(ids, np.ndarray) else f' of shape {ids.shape}'}")


def _check_offsets(what: str, offsets, n: int, total: int, unit: str) -> np.ndarray:
    """``offsets`` as int64, after checking it is (n + 1,), starts at 0, never decreases and
    ends at ``total``; a ValueError naming ``what`` otherwise."""
    arr = np.asarray(offsets)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what}: offsets must be integers, got dtype {arr.dtype}")
    if arr.shape != (n + 1,):
        raise ValueError(f"{what}: offsets of shape {arr.shape} do not match {n} ids (expected ({n + 1},))")
    arr = arr.astype(np.int64, copy=False)
    if arr[0] != 0:
        raise ValueError(f"{what}: offsets must start at 0, not {arr[0]}")
    if n and np.any(np.diff(arr) < 0):
        i = int(np.flatnonzero(np.diff(arr) < 0)[0])
        raise ValueError(f"{what}: offsets decrease at row {i} ({arr[i]} then {arr[i + 1]})")
    if arr[-1] != total:
        raise ValueError(f"{what}: offsets end at {arr[-1]}, but there are {total} {unit}")
    return arr


def _row_index(i, n: int) -> int:
    i = operator.index(i)
    if not -n <= i < n:
        raise IndexError(f"row {i} out of range for {n} rows")
    return i + n if i < 0 else i


@dataclass(frozen=True, eq=False)
class Ragged:
    """A model's outputs over one split with a variable number of units per sample (e.g. one
    row of class probabilities per character for token classification).

    Row i's units are ``values[offsets[i]:offsets[i + 1]]``; a row may have none.

    Attributes
    ----------
    ids : ndarray of str, shape (n,)
        Sample ids, in the split's row order.
    values : ndarray of float32, shape (N, C)
        Every row's units, concatenated in row order; N = ``offsets[-1]``. Column j is class
        ``labels[j]``.
    offsets : ndarray of int64, shape (n + 1,)
        Where each row's units start in ``values``: 0 first, never decreasing, N last. Any
        integer array is accepted and kept as int64.
    labels : tuple of str, length C
        Class names, in column order.
    model, split : str
        Names of the model and the split.
    meta : mapping
        Where the numbers came from: cache key and path, settings, digests.
    kind : str, class attribute
        ``"ragged"``.

    Raises
    ------
    ValueError
        When the shapes disagree or the offsets are not as above.
    """

    kind: ClassVar[str] = "ragged"

    ids: np.ndarray
    values: np.ndarray
    offsets: np.ndarray
    labels: tuple[str, ...]
    model: str = ""
    split: str = ""
    meta: Mapping = field(default_factory=dict)

    def __post_init__(self):
        _check_ids("ragged outputs", self.ids)
        if not isinstance(self.values, np.ndarray) or self.values.ndim != 2 \
                or self.values.shape[1] != len(self.labels):
            shape = getattr(self.values, "shape", None)
            raise ValueError(f"ragged outputs: values of shape {shape} do not match {len(self.labels)} labels "
                             f"(expected (N, {len(self.labels)}))")
        offsets = _check_offsets("ragged outputs", self.offsets, len(self.ids), len(self.values), "rows of values")
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "labels", tuple(self.labels))

    @classmethod
    def from_rows(cls, ids: np.ndarray, rows: Sequence[np.ndarray], labels: Sequence[str], model: str = "",
                  split: str = "", meta: Mapping | None = None) -> "Ragged":
        """Build from one (len_i, C) array per id.

        Parameters
        ----------
        ids : ndarray of str, shape (n,)
        rows : sequence of n arrays, shapes (len_i, C)
        labels : sequence of str, length C
        model, split : str
        meta : mapping, optional
        """
        c = len(labels)
        arrays = [np.asarray(r, dtype=np.float32) for r in rows]
        arrays = [a.reshape(0, c) if a.size == 0 and a.ndim != 2 else a for a in arrays]  # [] for a row of none
        if len(arrays) != len(ids):
            raise ValueError(f"ragged outputs: {len(arrays)} rows for {len(ids)} ids")
        bad = [i for i, a in enumerate(arrays) if a.ndim != 2 or a.shape[1] != c]
        if bad:
            raise ValueError(f"ragged outputs: row {bad[0]} has shape {arrays[bad[0]].shape}, expected (len, {c})")
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in arrays], out=offsets[1:])
        values = np.concatenate(arrays) if arrays else np.zeros((0, c), dtype=np.float32)
        return cls(ids, values, offsets, tuple(labels), model, split, dict(meta or {}))

    def __len__(self) -> int:
        return len(self.ids)

    def lengths(self) -> np.ndarray:
        """How many units each row has, shape (n,), int64."""
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        """Row ``i``'s units, shape (len_i, C): a view of ``values``. Negative ``i`` counts from the end."""
        i = _row_index(i, len(self))
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def rows(self) -> Iterator[np.ndarray]:
        """Every row's units in order, as :meth:`row` gives them."""
        for i in range(len(self)):
            yield self.values[self.offsets[i]:self.offsets[i + 1]]


@dataclass(frozen=True, eq=False)
class Texts:
    """A model's candidate texts over one split, each with a score (generation): row i has
    ``offsets[i + 1] - offsets[i]`` candidates, possibly none.

    Attributes
    ----------
    ids : ndarray of str, shape (n,)
        Sample ids, in the split's row order.
    texts : tuple of n tuples of str
        Each row's candidates, in the model's order. Lists are accepted and kept as tuples.
    scores : ndarray of float32, shape (N,)
        One score per candidate, flat in candidate order (row 0's first); N = ``offsets[-1]``,
        the number of candidates in all. NaN is refused; -inf (an impossible candidate) is not.
    offsets : ndarray of int64, shape (n + 1,), optional
        Where each row's candidates start in ``scores``: 0 first, never decreasing, N last, and
        ``offsets[i + 1] - offsets[i] == len(texts[i])``. Derived from ``texts`` when None.
    model, split : str
        Names of the model and the split.
    meta : mapping
        Where the texts came from: cache key and path, settings, digests.
    kind : str, class attribute
        ``"texts"``.

    Raises
    ------
    ValueError
        When the shapes or counts disagree, the offsets are not as above, or a text is not a str.
    """

    kind: ClassVar[str] = "texts"

    ids: np.ndarray
    texts: tuple[tuple[str, ...], ...]
    scores: np.ndarray
    offsets: np.ndarray | None = None
    model: str = ""
    split: str = ""
    meta: Mapping = field(default_factory=dict)

    def __post_init__(self):
        _check_ids("texts", self.ids)
        n = len(self.ids)
        if isinstance(self.texts, (str, bytes)) or len(self.texts) != n:
            raise ValueError(f"texts: {len(self.texts)} rows of candidates for {n} ids")
        texts = tuple(tuple(row) if not isinstance(row, (str, bytes)) else None for row in self.texts)
        for i, row in enumerate(texts):
            if row is None or not all(isinstance(t, str) for t in row):
                raise ValueError(f"texts: row {i} must be a sequence of str, got {self.texts[i]!r:.80}")
        object.__setattr__(self, "texts", texts)
        if not isinstance(self.scores, np.ndarray) or self.scores.ndim != 1:
            raise ValueError(f"texts: scores must be a 1-D array, got shape {getattr(self.scores, 'shape', None)}")
        counts = np.array([len(r) for r in texts], dtype=np.int64)
        if self.offsets is None:
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(counts, out=offsets[1:])
        else:
            offsets = _check_offsets("texts", self.offsets, n, len(self.scores), "scores")
            if not np.array_equal(np.diff(offsets), counts):
                i = int(np.flatnonzero(np.diff(offsets) != counts)[0])
                raise ValueError(f"texts: offsets give row {i} {offsets[i + 1] - offsets[i]} candidates, "
                                 f"it has {counts[i]} texts")
        if offsets[-1] != len(self.scores):
            raise ValueError(f"texts: {offsets[-1]} candidates but {len(self.scores)} scores")
        if np.isnan(self.scores).any():
            raise ValueError("texts: a score is NaN")
        object.__setattr__(self, "offsets", offsets)

    @classmethod
    def from_candidates(cls, ids: np.ndarray, candidates: Sequence[Sequence[tuple[str, float]]], model: str = "",
                        split: str = "", meta: Mapping | None = None) -> "Texts":
        """Build from one list of (text, score) per id.

        Parameters
        ----------
        ids : ndarray of str, shape (n,)
        candidates : sequence of n sequences of (str, float)
        model, split : str
        meta : mapping, optional
        """
        texts = tuple(tuple(t for t, _ in row) for row in candidates)
        scores = np.array([s for row in candidates for _, s in row], dtype=np.float32)
        return cls(ids, texts, scores, None, model, split, dict(meta or {}))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labels(self) -> tuple:
        """No output names: a generation's outputs are texts (what the workflows ask every payload)."""
        return ()

    def candidates(self, i: int) -> list[tuple[str, float]]:
        """Row ``i``'s candidates as (text, score), in order; [] when it has none. Negative ``i``
        counts from the end."""
        i = _row_index(i, len(self))
        start = int(self.offsets[i])
        return [(t, float(self.scores[start + j])) for j, t in enumerate(self.texts[i])]
