"""Scores of probabilities against true classes, and the checks on what can be scored: numpy
only, the core below every method (:mod:`ensemble.tasks.classification.weighting`, :mod:`ensemble.tasks.classification.offsets`) and
every estimate.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError, flag

__all__ = ['log_loss', 'accuracy', 'macro_f1', 'roc_auc', 'qwk', 'CLASS_METRICS', 'resampled_metric', 'scores', 'weighted_scores', 'resampled_scores', 'f1_from_counts', 'recall_per_class', 'need_classes', 'at_chance']

_EPS = 1e-15

# The metrics a classifier ensemble is decided by, and whether higher is better: scored on the
# predicted classes (accuracy, macro-F1, quadratic weighted kappa) or on the probabilities (log
# loss, ROC AUC).
CLASS_METRICS = {"accuracy": True, "macro_f1": True, "log_loss": False, "roc_auc": True, "qwk": True}


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (probabilities clipped at 1e-15)."""
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], _EPS, None))))


def accuracy(proba: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(proba.argmax(axis=1) == y))


def macro_f1(proba: np.ndarray, y: np.ndarray) -> float:
    """Macro-averaged F1 over the classes present in ``y`` or predicted."""
    pred = np.asarray(proba).argmax(axis=1)
    y = np.asarray(y)
    C = max(proba.shape[1], int(y.max()) + 1 if len(y) else 0)
    return float(resampled_scores(pred, y, C, np.arange(len(y))[None], classes="union")["macro_f1"][0])


def need_classes(y: np.ndarray, what: str, labels: Sequence[str] = ()) -> None:
    """A one-line error when the labels hold fewer than two classes: nothing can be fitted to
    tell classes apart (every fit would send every row to the one class)."""
    present = np.unique(np.asarray(y))
    if len(present) < 2:
        one = "-" if not len(present) else labels[present[0]] if len(labels) > present[0] else f"index {present[0]}"
        raise EnsembleError(f"{what}: fitted on validation rows, but all {len(y)} of them are of one class "
                            f"({one}); use validation rows of at least two classes, or {flag('weights', 'uniform')} and "
                            f"{flag('adjust', 'none')}")


def at_chance(logits: np.ndarray, y: np.ndarray) -> str | None:
    """Why a member looks untrained on these rows, or None: its accuracy is no better than
    always answering the most frequent class (a fresh head, a base model listed by mistake)."""
    y = np.asarray(y)
    if len(y) == 0:
        return None
    acc = float(np.mean(np.asarray(logits).argmax(axis=1) == y))
    majority = float(np.bincount(y).max() / len(y))
    if acc > majority or majority == 1.0:  # one class only: nothing to be at chance against
        return None
    return (f"scores at chance level on validation (accuracy {acc:.4f}; always answering the most frequent class "
            f"scores {majority:.4f}): is it a fine-tuned classifier?")


def scores(proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {"accuracy": accuracy(proba, y), "macro_f1": macro_f1(proba, y), "log_loss": log_loss(proba, y)}


def weighted_scores(pred: np.ndarray, y: np.ndarray, C: int, w: np.ndarray | None) -> dict[str, float]:
    """Accuracy and macro-F1 (over the classes present in ``y``) of predicted classes, each row
    weighted by ``w`` (None: 1)."""
    out = resampled_scores(pred, y, C, np.arange(len(y))[None], w)
    return {k: float(v[0]) for k, v in out.items()}


def resampled_scores(pred: np.ndarray, y: np.ndarray, C: int, idx: np.ndarray, w: np.ndarray | None = None, *,
                     classes: str = "support") -> dict[str, np.ndarray]:
    """Accuracy and macro-F1 of the predicted classes on each resample of the rows, at once.

    Parameters
    ----------
    pred, y : arrays of int (n,)
    C : int
        The number of classes.
    idx : array of int (B, n)
        Row indices of each resample (a bootstrap's); ``np.arange(n)[None]`` for the rows as they are.
    w : array (n,), optional
        Row weights.
    classes : {"support", "union"}, default "support"
        Which classes macro-F1 averages over: those present in ``y`` (of the resample), or
        those present in ``y`` or predicted.

    Returns
    -------
    dict of "accuracy", "macro_f1" -> array (B,)

    Per-class counts come from one ``bincount`` over (resample, class) pairs, so the cost is
    O(B n + B C): linear in the classes, where a confusion matrix per resample is O(B C^2).
    """
    idx = np.atleast_2d(idx)
    B = idx.shape[0]
    yy, pp = y[idx], pred[idx]
    off = (np.arange(B, dtype=np.int64) * C)[:, None]
    flat_y, flat_p = (yy + off).ravel(), (pp + off).ravel()
    wf = None if w is None else np.asarray(w, dtype=np.float64)[idx].ravel()
    hit = (pp == yy).ravel()
    support = np.bincount(flat_y, weights=wf, minlength=B * C).reshape(B, C)
    predicted = np.bincount(flat_p, weights=wf, minlength=B * C).reshape(B, C)
    tp = np.bincount(flat_y[hit], weights=None if wf is None else wf[hit], minlength=B * C).reshape(B, C)
    f1 = f1_from_counts(tp, predicted, support)
    keep = support > 0 if classes == "support" else support + predicted > 0
    return {"accuracy": tp.sum(axis=1) / support.sum(axis=1), "macro_f1": (f1 * keep).sum(axis=1) / keep.sum(axis=1)}


def f1_from_counts(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> np.ndarray:
    """F1 of each class from its (weighted) true positives, predictions and rows: 2 tp /
    (support + predicted), 0 where a class is neither predicted nor present."""
    denom = support + predicted
    return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)


def recall_per_class(pred: np.ndarray, y: np.ndarray, C: int) -> np.ndarray:
    """Recall of each class (NaN for a class with no rows): unaffected by the class prior."""
    support = np.bincount(y, minlength=C)
    hits = np.bincount(y[pred == y], minlength=C)
    out = np.full(C, np.nan)
    out[support > 0] = hits[support > 0] / support[support > 0]
    return out


def roc_auc(proba: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC: of the second class's column for two classes; for more, the mean over classes of
    each class against the rest (scikit-learn's ``roc_auc_score(multi_class="ovr")``), over the
    classes with both positive and negative rows (NaN when none has)."""
    return float(resampled_metric("roc_auc", proba, y, np.arange(len(y))[None])[0])


def qwk(proba: np.ndarray, y: np.ndarray) -> float:
    """Quadratic weighted kappa of the predicted classes (the argmax), the classes ordinal in
    column order: scikit-learn's ``cohen_kappa_score(weights="quadratic", labels=range(C))``."""
    return float(resampled_metric("qwk", proba, y, np.arange(len(y))[None])[0])


def resampled_metric(name: str, proba: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """A metric of :data:`CLASS_METRICS` on each resample of the rows, at once.

    Parameters
    ----------
    name : str
    proba : array (n, C)
        Probabilities (or, for ROC AUC, any scores that order the rows within each column).
    y : array of int (n,)
    idx : array of int (B, n)
        Row indices of each resample; ``np.arange(n)[None]`` for the rows as they are.

    Returns
    -------
    array (B,)
        NaN where the metric is undefined on a resample (ROC AUC with one class only).
    """
    proba, y, idx = np.asarray(proba), np.asarray(y), np.atleast_2d(idx)
    C = proba.shape[1]
    if name in ("accuracy", "macro_f1"):
        return resampled_scores(proba.argmax(axis=1), y, C, idx, classes="union")[name]
    if name == "log_loss":
        return -np.log(np.clip(proba[np.arange(len(y)), y], _EPS, None))[idx].mean(axis=1)
    if name == "qwk":
        return _qwk(proba.argmax(axis=1)[idx], y[idx], C)
    if name == "roc_auc":
        return _roc_auc(proba, y, idx)
    raise EnsembleError(f"unknown metric {name!r}; use one of {', '.join(CLASS_METRICS)}")


def _qwk(pred: np.ndarray, y: np.ndarray, C: int) -> np.ndarray:
    """Quadratic weighted kappa of each row of ``pred`` (B, n) against ``y`` (B, n)."""
    B, n = y.shape
    cells = (np.arange(B)[:, None] * C * C + y * C + pred).ravel()
    observed = np.bincount(cells, minlength=B * C * C).reshape(B, C, C).astype(np.float64)
    expected = observed.sum(axis=2)[:, :, None] * observed.sum(axis=1)[:, None, :] / n
    i = np.arange(C)
    w = (i[:, None] - i[None, :]) ** 2 / max(1, C - 1) ** 2
    num, den = (w * observed).sum(axis=(1, 2)), (w * expected).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 1 - num / np.where(den > 0, den, 1), np.nan)


def _roc_auc(proba: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """ROC AUC (Mann-Whitney, ties counted half) on each resample, from one sort of each column:
    a resample is a count per row, and the pairs a positive wins are the (counted) negatives
    below its score, plus half those level with it. O(B n) per class, in chunks of about 4M
    cells."""
    B, n = idx.shape
    C = proba.shape[1]
    classes = [1] if C == 2 else range(C)
    out = np.empty(B)
    step = max(1, 4_000_000 // max(1, n))
    groups = []
    for c in classes:  # the sort and the tie groups of each column, once
        order = np.argsort(proba[:, c], kind="stable")
        s = proba[order, c]
        starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
        groups.append((order, starts, (y[order] == c).astype(np.float64)))
    for lo in range(0, B, step):
        part = idx[lo:lo + step]
        b = len(part)
        counts = np.bincount((np.arange(b)[:, None] * n + part).ravel(), minlength=b * n).reshape(b, n)
        total = np.zeros(b)
        scored = np.zeros(b)
        for order, starts, positive in groups:
            k = counts[:, order].astype(np.float64)
            pos = np.add.reduceat(k * positive, starts, axis=1)
            neg = np.add.reduceat(k * (1.0 - positive), starts, axis=1)
            below = np.cumsum(neg, axis=1) - neg
            n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
            ok = (n_pos > 0) & (n_neg > 0)
            auc = (pos * (below + 0.5 * neg)).sum(axis=1) / np.where(ok, n_pos * n_neg, 1.0)
            total += np.where(ok, auc, 0.0)
            scored += ok
        out[lo:lo + step] = np.where(scored > 0, total / np.maximum(scored, 1), np.nan)
    return out
