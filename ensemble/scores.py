"""Scores of probabilities against true classes, and the checks on what can be scored: numpy
only, the core below every method (:mod:`ensemble.weighting`, :mod:`ensemble.adjustment`) and
every estimate.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import EnsembleError

__all__ = ["log_loss", "accuracy", "macro_f1", "scores", "weighted_scores", "recall_per_class", "need_classes",
           "at_chance"]

_EPS = 1e-15


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (probabilities clipped at 1e-15)."""
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], _EPS, None))))


def accuracy(proba: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(proba.argmax(axis=1) == y))


def macro_f1(proba: np.ndarray, y: np.ndarray) -> float:
    """Macro-averaged F1 over the classes present in ``y`` or predicted."""
    pred = proba.argmax(axis=1)
    scores = []
    for c in np.union1d(np.unique(y), np.unique(pred)):
        tp = np.sum((pred == c) & (y == c))
        denom = np.sum(pred == c) + np.sum(y == c)
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def need_classes(y: np.ndarray, what: str, labels: Sequence[str] = ()) -> None:
    """A one-line error when the labels hold fewer than two classes: nothing can be fitted to
    tell classes apart (every fit would send every row to the one class)."""
    present = np.unique(np.asarray(y))
    if len(present) < 2:
        one = "-" if not len(present) else labels[present[0]] if len(labels) > present[0] else f"index {present[0]}"
        raise EnsembleError(f"{what}: fitted on validation rows, but all {len(y)} of them are of one class "
                            f"({one}); use validation rows of at least two classes, or --weights uniform and "
                            "--adjust none")


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
    conf = np.bincount(y * C + pred, weights=w, minlength=C * C).reshape(C, C).astype(np.float64)
    tp = np.diag(conf)
    support, predicted = conf.sum(axis=1), conf.sum(axis=0)
    denom = support + predicted
    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    present = support > 0
    return {"accuracy": float(tp.sum() / conf.sum()), "macro_f1": float(f1[present].mean())}


def recall_per_class(pred: np.ndarray, y: np.ndarray, C: int) -> np.ndarray:
    """Recall of each class (NaN for a class with no rows): unaffected by the class prior."""
    out = np.full(C, np.nan)
    for c in range(C):
        mask = y == c
        if mask.any():
            out[c] = float(np.mean(pred[mask] == c))
    return out


