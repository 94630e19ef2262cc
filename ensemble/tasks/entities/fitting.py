"""What the entities ensemble fits on labelled rows: the members' weights (a rule of
:data:`METHODS`) and, optionally, a per-type threshold on the probability of ``O``.

Weight rules:

``uniform``
    Every member the same weight (nothing fitted).
``f1``
    Each member weighted by its entity F-beta on the fitting rows.
``best``
    The member with the highest entity F-beta on the fitting rows alone.
``select``
    Greedy forward selection with replacement (Caruana et al., 2004): from the best member,
    add the member whose extra vote raises the ensemble's F-beta most, while one does; a
    member's weight is how often it was added.
``optimize``
    Coordinate search from equal weights: each member's weight in turn scaled by 0, 1/2, 2
    and kept where the ensemble's F-beta rises, two passes. F-beta is a step function of the
    weights, so no gradient method applies.

Thresholds (``thresholds=True``): after the weights, each type's threshold on ``O``
(:func:`~ensemble.tasks.entities.projection.o_thresholds`) chosen from :data:`GRID` or none
(plain argmax), type by type, by the F-beta of the fitting rows.

Every fit reads the fitting rows only; :mod:`ensemble.tasks.entities.estimate` scores it on rows
it did not see.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.combination import AlignedUnits, decode_rows, mean_units
from ensemble.tasks.entities.spans import Span, micro_f, row_counts

__all__ = ["METHODS", "GRID", "FORMAT", "Fit", "LabelledUnits", "fit_rule", "check_method", "given_thresholds"]

METHODS = ("uniform", "f1", "best", "select", "optimize")
GRID = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


def check_method(method: str) -> str:
    if method not in METHODS:
        raise EnsembleError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    return method


FORMAT = "ensemble.entity-weights/1"


@dataclass
class Fit:
    """A fitted rule: the members' weights (M,) and the O thresholds ({type: number}, or None).

    As a weights file (:meth:`save`, :meth:`load`, format :data:`FORMAT`) it also keeps the
    metric it was fitted by, the tags of the outputs, its apparent score and ``meta`` (the
    members' digests and the validation data it was fitted on, checked before it is reused)."""

    method: str
    weights: np.ndarray
    thresholds: dict | None = None
    members: tuple = field(default_factory=tuple)
    metric: str = "f1"
    tags: tuple = field(default_factory=tuple)
    apparent: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def models(self) -> tuple:
        return tuple(self.members)

    @property
    def labels(self) -> tuple:
        return tuple(self.tags)

    def to_dict(self) -> dict:
        return {"method": self.method, "weights": dict(zip(self.members, map(float, self.weights))),
                "thresholds": self.thresholds}

    def save(self, path) -> None:
        """The weights file, with a checksum of its content, written atomically."""
        from ensemble.io.weightsfile import write_sealed

        doc = {"format": FORMAT, "task": "entities", "method": self.method, "members": list(self.members),
               "weights": [float(w) for w in self.weights], "thresholds": self.thresholds, "metric": self.metric,
               "tags": list(self.tags), "apparent": dict(self.apparent), "meta": dict(self.meta)}
        write_sealed(path, doc)

    @classmethod
    def load(cls, path) -> "Fit":
        """A weights file :meth:`save` wrote, its checksum and every field checked: a one-line
        error naming the file otherwise."""
        from ensemble.io.weightsfile import read_sealed

        return read_sealed(path, FORMAT, "an entities weights file", cls._checked)

    @classmethod
    def _checked(cls, d) -> "Fit":
        from ensemble.tasks.entities.spans import beta_of

        check_method(d["method"])
        members = tuple(str(m) for m in d["members"])
        w = np.asarray(d["weights"], dtype=np.float64)
        if w.shape != (len(members),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(members)} finite numbers >= 0, not all zero")
        limits = d["thresholds"]
        if limits is not None and (not isinstance(limits, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1 for v in limits.values())):
            raise ValueError("thresholds must be null or {type: number in (0, 1]}")
        beta_of(d["metric"])
        return cls(d["method"], w, limits, members, d["metric"], tuple(map(str, d["tags"])), dict(d["apparent"]),
                   dict(d["meta"]))


class LabelledUnits:
    """The members' aligned per-unit outputs on labelled rows, with their texts and gold spans:
    what a rule is fitted and scored on, a subset of rows at a time."""

    def __init__(self, al: AlignedUnits, texts: Sequence[str], gold: Sequence[Sequence[Span]], beta: float = 1.0):
        if len(gold) != len(al.ids) or len(texts) != len(al.ids):
            raise EnsembleError(f"got {len(gold)} rows of gold spans and {len(texts)} texts for {len(al.ids)} rows "
                                "of outputs; give one of each per row")
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not np.isfinite(beta) or beta <= 0:
            raise EnsembleError(f"beta must be a number > 0; got {beta!r}")
        self.al, self.texts, self.gold, self.beta = al, list(texts), [list(map(tuple, g)) for g in gold], float(beta)
        self.types = sorted({t[2:] for t in al.tags if t != "O"})
        every = np.arange(len(al.ids))
        self.member_counts = np.stack([self.counts(self.decode(self.mean(np.eye(len(al.values))[m], every), every),
                                                   every) for m in range(len(al.values))])

    def __len__(self) -> int:
        return len(self.al.ids)

    def mean(self, weights: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The members' weighted mean on ``rows``' units, and those rows' offsets."""
        al = self.al
        lengths = np.diff(al.offsets)[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        units = np.concatenate([np.arange(al.offsets[r], al.offsets[r + 1]) for r in rows]) if len(rows) else \
            np.zeros(0, dtype=np.int64)
        chosen = [m for m, w in enumerate(weights) if w > 0]
        return mean_units([al.values[m][units] for m in chosen], np.asarray(weights)[chosen]), offsets

    def decode(self, mean: tuple[np.ndarray, np.ndarray], rows: np.ndarray, thresholds=None) -> list[list[Span]]:
        values, offsets = mean
        return decode_rows(values, offsets, self.al.tags, [self.texts[r] for r in rows], thresholds)

    def counts(self, spans: Sequence[Sequence[Span]], rows: np.ndarray) -> np.ndarray:
        """``rows``' (true positives, predicted, true) counts of ``spans`` (one list per row)."""
        return row_counts([self.gold[r] for r in rows], spans)

    def f(self, counts: np.ndarray) -> float:
        """Micro F-beta of rows' counts (r, 3)."""
        return float(micro_f(np.asarray(counts).sum(axis=0), self.beta))

    def score(self, weights: np.ndarray, rows: np.ndarray, thresholds=None) -> float:
        return self.f(self.counts(self.decode(self.mean(weights, rows), rows, thresholds), rows))


def _select(units: LabelledUnits, rows: np.ndarray, member_f: np.ndarray, given=None) -> np.ndarray:
    M = len(member_f)
    counts = np.zeros(M)
    counts[int(np.argmax(member_f))] = 1
    best = float(member_f.max()) if given is None else units.score(counts, rows, given)
    for _ in range(2 * M):
        trials = [units.score(counts + np.eye(M)[m], rows, given) for m in range(M)]
        m = int(np.argmax(trials))
        if trials[m] <= best:
            break
        counts[m] += 1
        best = trials[m]
    return counts


def _optimize(units: LabelledUnits, rows: np.ndarray, given=None) -> np.ndarray:
    M = len(units.al.values)
    w = np.ones(M)
    best = units.score(w, rows, given)
    for _ in range(2):
        for m in range(M):
            for scale in (0.0, 0.5, 2.0):
                trial = w.copy()
                trial[m] *= scale
                if trial.sum() <= 0:
                    continue
                s = units.score(trial, rows, given)
                if s > best:
                    w, best = trial, s
    return w


def _thresholds(units: LabelledUnits, weights: np.ndarray, rows: np.ndarray) -> dict:
    mean = units.mean(weights, rows)
    chosen: dict = {}
    best = units.f(units.counts(units.decode(mean, rows), rows))
    for kind in units.types:
        for t in GRID:
            trial = {**chosen, kind: t}
            s = units.f(units.counts(units.decode(mean, rows, trial), rows))
            if s > best:
                chosen, best = trial, s
    return chosen


def given_thresholds(types, thresholds) -> dict | None:
    """``thresholds`` given (a number for every type of ``types``, or ``{type: number}``) as
    ``{type: number}``; None, False or True (fitted) give None."""
    if thresholds is None or isinstance(thresholds, bool):
        return None
    if isinstance(thresholds, dict):
        return dict(thresholds)
    return {k: float(thresholds) for k in sorted(types)}


def fit_rule(units: LabelledUnits, method: str, rows: np.ndarray | None = None, *, thresholds=False) -> Fit:
    """``method`` fitted on ``rows`` of ``units`` (all rows by default): the members' weights,
    then, with ``thresholds=True``, the O threshold of each type. Thresholds given (a number, or
    ``{type: number}``) are the ones the weights are fitted under and that the fit keeps."""
    check_method(method)
    rows = np.arange(len(units)) if rows is None else np.asarray(rows)
    given = given_thresholds(units.types, thresholds)
    M = len(units.al.values)
    member_f = np.array([units.f(c[rows]) for c in units.member_counts])
    if method == "uniform":
        w = np.ones(M)
    elif method == "f1":
        w = member_f if member_f.sum() > 0 else np.ones(M)
    elif method == "best":
        w = (np.arange(M) == int(np.argmax(member_f))).astype(np.float64)
    elif method == "select":
        w = _select(units, rows, member_f, given)
    else:
        w = _optimize(units, rows, given)
    limits = _thresholds(units, w, rows) if thresholds is True else given
    return Fit(method, np.asarray(w, dtype=np.float64), limits, units.al.members)
