"""The core of combining: logits in one class order and one row order (aligned by class name and
sample id), and the rules that combine several models' logits into probabilities.

numpy only: the layer every fit, estimate and workflow stands on, importing none of them.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.core.options import ALLOWED

__all__ = ['COMBINE_RULES', 'softmax', 'log_softmax', 'combine', 'mix', 'rank_mean', 'generic_names', 'align', 'as_arrays', 'Aligned', 'class_lookup', 'LogProbs', 'as_log_probs', 'probabilities']

COMBINE_RULES = ALLOWED["combine"]
_GENERIC = re.compile(r"LABEL_\d+")


def generic_names(names: Sequence) -> bool:
    """Whether every name is transformers' default for an unnamed output (``LABEL_0``...): the
    head says nothing of what its outputs are."""
    return all(_GENERIC.fullmatch(str(n)) for n in names)
# Ties between vote shares are broken by the weighted mean probability, scaled far below the
# smallest difference two vote shares can have.
_TIE_BREAK = 1e-9


def class_lookup(values: Sequence, labels: Sequence[str], *, digits: bool = False) -> tuple[np.ndarray, int | None]:
    """Class names as indices into ``labels``: (indices (n,), the first row whose value is not a
    class name, or None). With ``digits``, a value that is not a name but an integer string in
    0..C-1 is taken as that index (unless the names are integers themselves). Callers word the
    error: a data file names its path, a fit its argument."""
    import unicodedata

    # NFC on both sides: a label typed on macOS (NFD Hangul) is the same class as its NFC twin
    index = {unicodedata.normalize("NFC", str(name)): i for i, name in enumerate(labels)}
    numeric = digits and not all(str(c).lstrip("-").isdigit() for c in labels)
    out = np.empty(len(values), dtype=np.int64)
    for row, value in enumerate(values):
        value = unicodedata.normalize("NFC", str(value))
        i = index.get(value)
        if i is None and numeric and value.lstrip("-").isdigit() and 0 <= int(value) < len(labels):
            i = int(value)
        if i is None:
            return out, row
        out[row] = i
    return out, None


class LogProbs(np.ndarray):
    """An array whose rows are log-probabilities already (:func:`as_log_probs`):
    :func:`log_softmax` returns its rows as they are instead of computing them again, so that a
    cross-validation computes them once, not in every fold. Row selections stay LogProbs;
    arithmetic on them gives plain arrays (their rows are no longer normalised)."""

    def __array_wrap__(self, obj, context=None, return_scalar=False):
        return obj.view(np.ndarray) if isinstance(obj, np.ndarray) else obj


def probabilities(lp: np.ndarray) -> np.ndarray:
    """``exp(lp)``: for a :class:`LogProbs` array computed once and kept with it (read-only), so
    that the estimates of one report exponentiate each member once, not in every combination;
    row selections are new arrays and computed each time."""
    if not isinstance(lp, LogProbs):
        return np.exp(lp)
    p = getattr(lp, "_probs", None)
    if p is None:
        p = np.exp(lp.view(np.ndarray))
        p.flags.writeable = False
        lp._probs = p
    return p


def as_log_probs(z: np.ndarray) -> LogProbs:
    """``log_softmax(z)`` marked as such. Every combination rule, temperature and fit gives the
    same result from it as from ``z``: each is unchanged by adding a constant to a row."""
    return z if isinstance(z, LogProbs) else log_softmax(z).view(LogProbs)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis of a 2-D array, in float64 (a new array; for
    :class:`LogProbs`, the array itself)."""
    if isinstance(z, LogProbs):
        return z
    out = np.array(z, dtype=np.float64)
    out -= out.max(axis=1, keepdims=True)
    # a product with a vector of ones sums the short rows about 3x faster than .sum(axis=1)
    out -= np.log(np.exp(out) @ np.ones(out.shape[1]))[:, None]
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    return probabilities(log_softmax(z))


def _normalised(weights, M: int) -> np.ndarray:
    w = np.full(M, 1.0 / M) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (M,):
        raise EnsembleError(f"got {w.size} weights, {M} models")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise EnsembleError(f"weights must be finite, non-negative and not all zero; got {w.tolist()}")
    return w / w.sum()


def mix(log_probs: Sequence[np.ndarray], w: np.ndarray, rule: str, logits: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """:func:`combine` from log-probabilities already computed (``logits`` for the "logit" rule)."""
    if rule == "logit":
        return softmax(sum(wi * np.asarray(a, dtype=np.float64) for wi, a in zip(w, logits)))
    used = [(wi, lp) for wi, lp in zip(w, log_probs) if wi != 0]  # a member of weight 0 adds nothing
    if rule == "rank":
        return rank_mean([lp for _, lp in used], [wi for wi, _ in used], half=True)
    if rule == "geometric":
        return softmax(sum(wi * lp for wi, lp in used))
    probs = sum(wi * probabilities(lp) for wi, lp in used)
    if rule == "prob":
        return probs
    shares = np.zeros_like(probs)
    rows = np.arange(len(probs))
    for wi, lp in zip(w, log_probs):
        shares[rows, lp.argmax(axis=1)] += wi
    shares += _TIE_BREAK * probs
    return shares / shares.sum(axis=1, keepdims=True)


def rank_mean(arrays: Sequence[np.ndarray], w: Sequence[float], *, half: bool = False) -> np.ndarray:
    """The weighted mean (by ``w``, normalised) of each array's average ranks within each column,
    divided by the number of rows n: in (0, 1]; with ``half``, ranks minus one half, in (0, 1),
    so that two complementary columns (a two-class softmax) still sum to 1 in every row."""
    from scipy.stats import rankdata

    total = sum(w)
    n = len(arrays[0])
    ranks = sum(wi * rankdata(np.asarray(a, dtype=np.float64), axis=0) for wi, a in zip(w, arrays)) / total
    return (ranks - 0.5 if half else ranks) / max(1, n)


def combine(logits: Sequence[np.ndarray], weights: Sequence[float] | None = None, rule: str = "prob") -> np.ndarray:
    """Combine aligned logits of M models into probabilities, shape (n, C).

    Parameters
    ----------
    logits : sequence of M Logits, or of M aligned arrays of shape (n, C)
        Logits are aligned by class name and row id first (the first model's orders).
    weights : sequence of M non-negative floats, optional
        Normalised to sum to 1. Default uniform.
    rule : {"prob", "logit", "geometric", "vote", "rank"}, default "prob"
        - "prob": weighted mean of the probabilities (soft voting).
        - "logit": softmax of the weighted mean of the logits.
        - "geometric": softmax of the weighted mean of the log-probabilities (a normalised
          weighted geometric mean of the probabilities).
        - "vote": weighted share of the models whose top class it is (hard voting); ties go to
          the class with the higher weighted mean probability.
        - "rank": the weighted mean of each model's ranks of the rows in each class's column,
          minus one half, divided by n (in (0, 1)): for ROC AUC, where members calibrated
          differently should count by their order of the rows, not by the scale of their
          probabilities. Its rows are scores, not probabilities (for two classes they still sum
          to 1), and they depend on the rows combined together (a test set is ranked within
          itself).
    """
    if rule not in COMBINE_RULES:
        raise EnsembleError(f"combine rule must be one of {', '.join(COMBINE_RULES)}; got {rule!r}")
    logits, _, _ = as_arrays(logits)
    w = _normalised(weights, len(logits))
    return mix([log_softmax(a) for a in logits] if rule != "logit" else [], w, rule, logits)


class Aligned:
    """Several models' logits over one split, in one class order and one row order.

    Attributes
    ----------
    labels : tuple of str
        The class names, in the column order of the first model.
    ids : ndarray of str
        The row ids (the first model's order, or the order asked for).
    arrays : list of ndarray (n, C)
    models : tuple of str
    y : ndarray of int (n,) or None
        The true class indices in ``labels`` order, when gathered from a labelled split.
    logits : list of Logits or None
        The models' Logits as read (with their cache keys in ``meta``), when gathered.
    """

    def __init__(self, labels, ids, arrays, models, y=None, logits=None):
        self.labels, self.ids, self.arrays, self.models = tuple(labels), ids, arrays, tuple(models)
        self.y, self.logits = y, logits

    def __repr__(self) -> str:
        n = len(self.ids)
        return (f"Aligned({len(self.models)} models ({', '.join(self.models)}), {n} rows, {len(self.labels)} classes"
                f"{'' if self.y is None else ', labelled'})")


def align(logits: Sequence, ids: Sequence[str] | None = None, labels: Sequence[str] | None = None) -> Aligned:
    """Put each model's logits in one class order (by name, from ``config.id2label``) and one row
    order (by sample id).

    Parameters
    ----------
    logits : sequence of Logits
    ids : sequence of str, optional
        The row order wanted (default: the first model's).
    labels : sequence of str, optional
        The class order wanted (default: the first model's).
    """
    if not logits:
        raise EnsembleError("no models to combine; give at least one")
    first = logits[0]
    labels = tuple(labels) if labels is not None else tuple(first.labels)
    generic = [generic_names(lg.labels) for lg in logits]
    if any(generic) and not all(generic):
        g = logits[generic.index(True)]
        named = logits[generic.index(False)]
        raise EnsembleError(
            f"model {g.model} has generic class names ({', '.join(g.labels[:3])}...) but {named.model} names "
            f"its classes ({', '.join(named.labels[:3])}...); set id2label (and label2id) in {g.model}'s "
            "config.json to the class names in its training order, then re-run ensemble predict (a regression or "
            "multi-label member: or say which label column each output is, once, with outputs)"
        )
    want_ids = np.asarray(first.ids if ids is None else ids, dtype=object)
    arrays = []
    for lg in logits:
        if set(lg.labels) != set(labels):
            only_here = sorted(set(lg.labels) - set(labels))
            only_there = sorted(set(labels) - set(lg.labels))
            raise EnsembleError(
                f"model {lg.model} has labels that differ from {first.model}: only in {lg.model}: "
                f"{', '.join(only_here) or '-'}; only in {first.model}: {', '.join(only_there) or '-'}; "
                "ensemble only models of one label set"
            )
        cols = [lg.labels.index(c) for c in labels]
        values = np.asarray(lg.values)[:, cols]
        if len(lg.ids) == len(want_ids) and np.array_equal(lg.ids, want_ids):
            arrays.append(values)
            continue
        position = {v: i for i, v in enumerate(lg.ids)}
        missing = next((v for v in want_ids if v not in position), None)
        if missing is not None:
            raise EnsembleError(f"model {lg.model} has no row for id {missing!r} of split {lg.split or '?'}; "
                                "re-run ensemble predict on the current data")
        if len(lg.ids) != len(want_ids):
            extra = next(v for v in lg.ids if v not in set(want_ids))
            raise EnsembleError(f"model {lg.model} has a row for id {extra!r} that split {lg.split or '?'} lacks; "
                                "re-run ensemble predict on the current data")
        arrays.append(values[[position[v] for v in want_ids]])
    return Aligned(labels, want_ids, arrays, [lg.model for lg in logits])


def _is_logits(item) -> bool:
    return hasattr(item, "values") and hasattr(item, "labels") and hasattr(item, "ids")


def as_arrays(logits: Sequence, ids: Sequence[str] | None = None, labels: Sequence[str] | None = None):
    """Several models' logits as aligned arrays: ``Logits`` are aligned by class name and row id
    (:func:`align`); plain arrays are taken as already aligned.

    Returns
    -------
    (arrays, names, labels)
        M arrays of shape (n, C); the model names (``Logits.model``, else ``model0``...); the class
        names in column order (``labels``, else the first model's, else ``"0"``... for arrays).
    """
    items = list(logits)
    if not items:
        raise EnsembleError("no models to combine; give the logits of at least one model")
    kinds = [_is_logits(i) for i in items]
    if any(kinds) and not all(kinds):
        i = kinds.index(False) if kinds[0] else kinds.index(True)
        raise EnsembleError(f"item {i} is {'an array' if kinds[0] else 'Logits'} but item 0 is "
                            f"{'Logits' if kinds[0] else 'an array'}; pass every model's Logits (aligned by class "
                            "name and id) or every model's aligned array")
    if kinds[0]:
        al = align(items, ids=ids, labels=labels)
        names = tuple(lg.model or f"model{i}" for i, lg in enumerate(items))
        return [np.asarray(a) for a in al.arrays], names, al.labels
    arrays = [np.asanyarray(a) for a in items]  # LogProbs stay marked
    C = arrays[0].shape[-1] if arrays[0].ndim else 0
    return arrays, tuple(f"model{i}" for i in range(len(arrays))), tuple(labels) if labels else tuple(map(str, range(C)))
