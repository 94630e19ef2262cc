"""Members' per-unit tag probabilities combined: each member's tags put in the common order
(:func:`~ensemble.tasks.entities.alignment.align_tags`), the members checked to cover the same
rows with the same units (characters of the same texts), a weighted mean on every unit over the
members that cover it, and each row's spans decoded from the mean.

Averaging on characters is what lets members with different tokenizers vote: position by position
their tokens are different pieces of the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.alignment import align_tags
from ensemble.tasks.entities.projection import decode, o_thresholds
from ensemble.tasks.entities.spans import Span

__all__ = ["AlignedUnits", "align_units", "mean_units", "decode_rows"]


@dataclass
class AlignedUnits:
    """Members' outputs on one split in one row order and one order of tags.

    Attributes
    ----------
    ids : ndarray of str, shape (n,)
    offsets : ndarray of int64, shape (n + 1,)
        Row i's units are ``values[m][offsets[i]:offsets[i + 1]]`` for every member m.
    tags : tuple of str, length K
        ``O``, then ``B-``/``I-`` of each entity type.
    members : tuple of str
    values : list of ndarray, each (N, K) float64
        Each member's per-unit probabilities in ``tags``; NaN rows for units it does not cover.
    y : EntityTruth or None
        The rows' gold spans, set by the workflows on a labelled split.

    ``labels``, ``arrays`` and ``models`` name ``tags``, ``values`` and ``members`` as the
    workflows ask every task's aligned outputs (:class:`~ensemble.core.combination.Aligned`).
    """

    ids: np.ndarray
    offsets: np.ndarray
    tags: tuple
    members: tuple
    values: list
    y: object = None

    @property
    def labels(self) -> tuple:
        return self.tags

    @property
    def arrays(self) -> list:
        return self.values

    @property
    def models(self) -> tuple:
        return self.members


def align_units(outputs: Sequence) -> AlignedUnits:
    """Members' :class:`~ensemble.core.outputs.Ragged` outputs (per-unit tag probabilities of one
    split) aligned: rows in the first member's order, tags in the common order. A member without
    some row, or whose row has another number of units (it was run over other texts), is an error
    naming the member and the row."""
    if not outputs:
        raise EnsembleError("no members' outputs to combine; give at least one")
    names = [o.model or f"member {i}" for i, o in enumerate(outputs)]
    if len(set(names)) < len(names):
        raise EnsembleError(f"two members are called {next(n for n in names if names.count(n) > 1)!r}; name each once")
    alignment = align_tags({n: list(o.labels) for n, o in zip(names, outputs)})
    first = outputs[0]
    ids = np.asarray(first.ids)
    lengths = first.lengths()
    values = []
    for name, out in zip(names, outputs):
        where = {str(i): r for r, i in enumerate(out.ids)}
        missing = [str(i) for i in ids if str(i) not in where]
        if missing or len(out.ids) != len(ids):
            known = set(map(str, ids))
            extra = missing[0] if missing else next(str(i) for i in out.ids if str(i) not in known)
            raise EnsembleError(f"{name}: its outputs {'lack' if missing else 'have an extra'} row {extra!r} of "
                                f"{names[0]}'s; run every member over the same split")
        order = np.array([where[str(i)] for i in ids], dtype=np.int64)
        own = out.lengths()[order]
        if (own != lengths).any():
            r = int(np.flatnonzero(own != lengths)[0])
            raise EnsembleError(f"{name}: row {str(ids[r])!r} has {own[r]} units, {names[0]}'s has {lengths[r]}: the members "
                                "were run over different texts; run every member over the same split")
        rows = [np.arange(out.offsets[j], out.offsets[j + 1]) for j in order]
        taken = out.values[np.concatenate(rows)] if rows else out.values[:0]
        values.append(alignment.to_common(name, taken))
    return AlignedUnits(ids, np.asarray(first.offsets, dtype=np.int64), alignment.tags, tuple(names), values)


def mean_units(values: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """The weighted mean of the members' per-unit probabilities (each (N, K)), on each unit over
    the members that cover it (weights renormalised there); NaN rows where none does. ``weights``
    default to equal; they must be finite, non-negative and not all zero."""
    if weights is None:
        weights = np.ones(len(values))
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(values),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise EnsembleError(f"weights must be {len(values)} finite numbers >= 0, not all zero; got {list(weights)}")
    total = np.zeros_like(np.asarray(values[0], dtype=np.float64))
    mass = np.zeros(len(total))
    for v, wm in zip(values, w):
        if wm == 0:
            continue
        covered = ~np.isnan(v).any(axis=1)
        total[covered] += wm * v[covered]
        mass[covered] += wm
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / mass[:, None]  # 0/0: NaN where no member with weight covers the unit


def decode_rows(values: np.ndarray, offsets: np.ndarray, tags: Sequence[str],
                texts: Sequence[str] | None = None, thresholds=None) -> list[list[Span]]:
    """Each row's spans decoded from its units' probabilities (:func:`~ensemble.tasks.entities.projection.decode`),
    whitespace trimmed from their edges when the rows' ``texts`` are given; ``thresholds``: the
    O thresholds (None, a number, or ``{type: number}``; :func:`~ensemble.tasks.entities.projection.o_thresholds`)."""
    limits = o_thresholds(tags, thresholds)
    out = []
    for i in range(len(offsets) - 1):
        out.append(decode(values[offsets[i]:offsets[i + 1]], tags, None if texts is None else texts[i], limits))
    return out
