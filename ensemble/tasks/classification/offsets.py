"""A class-prior adjustment: offsets added to the ensemble's log-probabilities, as fitted state
(:class:`Adjustment`) and as a method that fits it on validation probabilities
(:func:`fit_adjustment`).

The methods layer, beside :mod:`ensemble.tasks.classification.weighting`, whose :class:`~ensemble.tasks.classification.weights.Weights`
applies an adjustment last. :mod:`ensemble.tasks.classification.offset_choice` reads target priors and estimates the
adjustments honestly; this module imports neither.

Two ways to move the decision between classes after training:

* ``prior`` (logit adjustment under label shift): offsets ``log pi_t - log pi_v`` for a target
  prior pi_t and the validation's pi_v; nothing is fitted.
* ``fit``: per-class offsets chosen on the validation rows to maximise accuracy or macro-F1 by
  exact coordinate ascent (:func:`fit_offsets`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ensemble.core.combination import softmax
from ensemble.core.errors import EnsembleError, flag
from ensemble.core.options import ALLOWED, check_option
from ensemble.core.scores import f1_from_counts, need_classes, weighted_scores

__all__ = ['ADJUSTMENTS', 'Adjustment', 'needs_prior', 'check_adjust', 'adjust_metric_for', 'empirical_prior', 'fit_adjustment', 'fit_offsets', 'importance']

ADJUSTMENTS = tuple(a for a in ALLOWED["adjust"] if a != "auto")  # "auto" chooses among them
def needs_prior() -> str:
    """The message for an adjustment toward a prior that was not given, in the words of the face."""
    from ensemble.core.errors import option

    return (f"adjust prior needs a target prior; {option('prior', 'FILE')} with the training data file, "
            "'uniform', or shares like a=0.7,b=0.3")
_EPS = 1e-15
_METRICS = ALLOWED["adjust_metric"]


@dataclass(frozen=True)
class Adjustment:
    """Offsets added to the ensemble's log-probabilities.

    Attributes
    ----------
    kind : {"none", "prior", "fit"}
    offsets : ndarray (C,)
    labels : tuple of str
    target, source : ndarray (C,) or None
        The target prior and the validation's, when a prior was involved.
    metric : str or None
        What "fit" maximised.
    """

    kind: str
    offsets: np.ndarray
    labels: tuple[str, ...] = ()
    target: np.ndarray | None = None
    source: np.ndarray | None = None
    metric: str | None = None

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """Adjusted probabilities, shape (n, C)."""
        if self.kind == "none":
            return proba
        return softmax(_log(proba) + self.offsets)

    def to_dict(self) -> dict:
        def lst(a):
            return None if a is None else [float(v) for v in a]

        return {"kind": self.kind, "offsets": lst(self.offsets), "labels": list(self.labels),
                "target_prior": lst(self.target), "validation_prior": lst(self.source), "metric": self.metric}

    @classmethod
    def from_dict(cls, d: Mapping) -> Adjustment:
        def arr(v):
            return None if v is None else np.asarray(v, dtype=np.float64)

        if d.get("kind") not in ADJUSTMENTS:
            raise ValueError(f"adjustment kind {d.get('kind')!r}")
        return cls(d["kind"], arr(d["offsets"]), tuple(d.get("labels", ())), arr(d.get("target_prior")),
                   arr(d.get("validation_prior")), d.get("metric"))


def empirical_prior(y: np.ndarray, C: int) -> np.ndarray:
    """Class frequencies of ``y``; a class absent from ``y`` gets half a row (no log of 0)."""
    counts = np.bincount(y, minlength=C).astype(float)
    counts[counts == 0] = 0.5
    return counts / counts.sum()


# --------------------------------------------------------------------------- fitting


def _log(proba: np.ndarray) -> np.ndarray:
    return np.log(np.clip(proba, _EPS, None))


def fit_offsets(proba: np.ndarray, y: np.ndarray, metric: str = "accuracy", *, sample_weight=None,
                start: np.ndarray | None = None, rounds: int = 10) -> np.ndarray:
    """Per-class offsets added to ``log(proba)`` that maximise ``metric`` on (``proba``, ``y``).

    Exact coordinate ascent: for class c with the other offsets fixed, row i is predicted c
    exactly when its offset exceeds ``t_i = max_{j != c}(s_ij + b_j) - s_ic``, so the metric is a
    step function of b_c with steps at the sorted ``t_i``; all steps are scored at once from
    cumulative sums, and b_c moves to the middle of the best step (of the best steps, the one
    nearest its current value). Passes repeat until none improves (ending as soon as every class
    has been scanned once since the last move: a further pass would move none). Offsets have mean zero.

    Parameters
    ----------
    proba : array (n, C)
    y : array of int (n,)
    metric : {"accuracy", "macro_f1"}, default "accuracy"
    sample_weight : array (n,), optional
        Row weights (e.g. pi_t(y) / pi_v(y) for a target prior).
    start : array (C,), optional
        Initial offsets (default zeros).
    """
    if metric not in _METRICS:
        raise EnsembleError(f"the offsets are fitted for accuracy or macro_f1; got {metric!r}")
    s = _log(np.asarray(proba, dtype=np.float64))
    y = np.asarray(y)
    n, C = s.shape
    rows = np.arange(n)
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    b = np.zeros(C) if start is None else np.asarray(start, dtype=np.float64).copy()
    support = np.bincount(y, weights=w, minlength=C)
    top1, top2 = _top2(s + b)  # each row's best and second-best class, kept up to date as b moves
    best_score = weighted_scores(top1, y, C, w)[metric]
    unchanged = 0  # classes scanned in a row without a move: after C of them, a pass would move none
    for _ in range(rounds):
        improved = False
        for c in range(C):
            if unchanged >= C:
                break
            unchanged += 1
            alt = np.where(top1 != c, top1, top2)        # the prediction when c is not chosen
            t = s[rows, alt] + b[alt] - s[:, c]           # c is predicted when b_c > t
            order = np.argsort(t)  # 3x faster than a stable sort; the same order when no two t are equal
            ts = t[order]
            if n > 1 and np.any(ts[1:] == ts[:-1]):
                order = np.argsort(t, kind="stable")
                ts = t[order]
            alt_s, y_s, w_s = alt[order], y[order], w[order]
            # cut k: the k rows with the smallest t predict c, the rest predict alt
            if metric == "accuracy":
                score = _cut_accuracy(alt_s, y_s, w_s, c) / w.sum()
            else:
                score = _cut_macro_f1(alt_s, y_s, w_s, c, support)
            top = score.max()
            if top <= best_score + 1e-12:
                continue
            ties = np.flatnonzero(score >= top - 1e-12)
            # candidate offsets of the best cuts: below every t, between consecutive t's, above every t
            mids = np.concatenate([[ts[0] - 1.0], (ts[:-1] + ts[1:]) / 2, [ts[-1] + 1.0]]) if n else np.zeros(1)
            value = mids[ties[np.argmin(np.abs(mids[ties] - b[c]))]]
            new1, new2 = _moved(s, b, top1, top2, c, value)
            # scored as predicted, so that rows with equal t (no cut between them) cannot mislead
            actual = weighted_scores(new1, y, C, w)[metric]
            if actual <= best_score + 1e-12:
                continue
            b[c], top1, top2 = value, new1, new2
            best_score, improved, unchanged = actual, True, 0
        if not improved or unchanged >= C:
            break
    return b - b.mean()


def _top2(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's argmax and its argmax among the other classes (ties: the lower index)."""
    top1 = z.argmax(axis=1)
    z = z.copy()
    z[np.arange(len(z)), top1] = -np.inf
    return top1, z.argmax(axis=1)


def _moved(s, b, top1, top2, c, value):
    """``top1``, ``top2`` after b_c becomes ``value``: rows where c was among the two, or ties
    with it, are recomputed; elsewhere c either climbs above one of them or changes nothing.
    O(n) plus O(C) per recomputed row (about 2n/C of them), where recomputing all is O(n C)."""
    rows = np.arange(len(s))
    v1, v2 = s[rows, top1] + b[top1], s[rows, top2] + b[top2]
    zc = s[:, c] + value
    was = (top1 == c) | (top2 == c)
    redo = was | (zc == v1) | (zc == v2)
    up1 = ~redo & (zc > v1)
    up2 = ~redo & ~up1 & (zc > v2)
    new1, new2 = top1.copy(), top2.copy()
    new2[up1], new1[up1] = top1[up1], c
    new2[up2] = c
    if redo.any():
        nb = b.copy()
        nb[c] = value
        new1[redo], new2[redo] = _top2(s[redo] + nb)
    return new1, new2


def _cut_accuracy(alt_s, y_s, w_s, c) -> np.ndarray:
    """Weighted hits at every cut k = 0..n: the first k rows predict c, the others their alt."""
    prefix = np.concatenate([[0.0], np.cumsum((y_s == c) * w_s)])
    hit_alt = (alt_s == y_s) * w_s
    return prefix + np.concatenate([np.cumsum(hit_alt[::-1])[::-1], [0.0]])


def _cut_macro_f1(alt_s, y_s, w_s, c, support) -> np.ndarray:
    """Macro-F1 (over the classes present in y) at every cut k = 0..n, in O(n log n + C).

    At cut 0 every row predicts its alt. Moving the cut past row p sends it from alt_p to c: only
    the F1 of c and of alt_p change, so the sum over classes moves by the change in F1(alt_p),
    found from group-wise running sums of the rows of each alt class, and by F1(c)'s prefix."""
    C = len(support)
    present = support > 0
    hit = (alt_s == y_s) * w_s
    pred0 = np.bincount(alt_s, weights=w_s, minlength=C)
    tp0 = np.bincount(alt_s, weights=hit, minlength=C)
    group = np.argsort(alt_s, kind="stable")  # rows of each alt class, in cut order
    g_alt = alt_s[group]
    starts = np.searchsorted(g_alt, g_alt)     # where each row's group begins
    cw, ch = np.cumsum(w_s[group]), np.cumsum(hit[group])
    cw = cw - np.concatenate([[0.0], cw])[starts]
    ch = ch - np.concatenate([[0.0], ch])[starts]
    after = f1_from_counts(tp0[g_alt] - ch, pred0[g_alt] - cw, support[g_alt])
    before = f1_from_counts(tp0[g_alt] - ch + hit[group], pred0[g_alt] - cw + w_s[group], support[g_alt])
    delta = np.empty(len(alt_s))
    delta[group] = (after - before) * present[g_alt]
    base = f1_from_counts(tp0, pred0, support)
    base[c] = 0.0
    others = base[present].sum() + np.concatenate([[0.0], np.cumsum(delta)])
    pre_w = np.concatenate([[0.0], np.cumsum(w_s)])
    pre_tp = np.concatenate([[0.0], np.cumsum((y_s == c) * w_s)])
    own = f1_from_counts(pre_tp, pre_w, support[c]) * present[c]
    return (others + own) / present.sum()


def check_adjust(kind: str, *, metric: str = "accuracy", auto: bool = False) -> None:
    """An adjustment kind (and "auto" when allowed) and a metric it can be fitted for, or a
    one-line error."""
    check_option("adjust", kind, exclude=() if auto else ("auto",))
    check_option("adjust_metric", metric)


def adjust_metric_for(given: str | None, metric: str) -> str:
    """What a class-prior adjustment maximises: ``given``, else the primary ``metric`` when an
    adjustment can be fitted for it, else accuracy."""
    return given or (metric if metric in ALLOWED["adjust_metric"] else "accuracy")


def importance(y: np.ndarray, target: np.ndarray | None, source: np.ndarray) -> np.ndarray | None:
    return None if target is None else (target / source)[y]


def fit_adjustment(proba: np.ndarray, y: np.ndarray, kind: str = "prior", *, target: np.ndarray | None = None,
                   metric: str = "accuracy", labels: Sequence[str] = ()) -> Adjustment:
    """Fit a class-prior adjustment of the ensemble probabilities ``proba`` on validation.

    Parameters
    ----------
    proba : array (n, C)
        The ensemble's validation probabilities.
    y : array of int (n,)
    kind : {"none", "prior", "fit"}, default "prior"
        "prior" needs ``target``; "fit" uses it, when given, to weight rows and to start from.
    target : array (C,), optional
        The target class prior (see :func:`class_prior`).
    metric : {"accuracy", "macro_f1"}, default "accuracy"
        What "fit" maximises.
    """
    check_adjust(kind)
    y = np.asarray(y)
    C = proba.shape[1]
    source = empirical_prior(y, C)
    if kind == "none":
        return Adjustment("none", np.zeros(C), tuple(labels))
    need_classes(y, flag("adjust", kind), labels)
    # a class with no validation row has no prior to divide by and no row to fit on: it is left
    # alone (offset 0), where log(target / half a row) would send every row to it
    absent = np.bincount(y, minlength=C) == 0
    if kind == "prior":
        if target is None:
            raise EnsembleError(needs_prior())
        off = np.where(absent, 0.0, np.log(target) - np.log(source))
        off[~absent] -= off[~absent].mean()
        return Adjustment("prior", off, tuple(labels), target, source)
    start = None if target is None else np.where(absent, 0.0, np.log(target) - np.log(source))
    off = fit_offsets(proba, y, metric, sample_weight=importance(y, target, source), start=start)
    off[absent] = 0.0
    return Adjustment("fit", off, tuple(labels), target, source if target is not None else None, metric)
