"""Scores of probabilities against true classes, and the checks on what can be scored: numpy
only, the core below every method (:mod:`ensemble.tasks.classification.weighting`, :mod:`ensemble.tasks.classification.offsets`) and
every estimate.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError, flag

__all__ = ['log_loss', 'accuracy', 'macro_f1', 'scores', 'weighted_scores', 'resampled_scores', 'f1_from_counts', 'recall_per_class', 'need_classes', 'at_chance']

_EPS = 1e-15


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
