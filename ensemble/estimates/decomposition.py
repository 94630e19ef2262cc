"""What a fold mean will score, estimated without a holdout where the mathematics allows.

A fold group submits the mean of its K fold models; an out-of-fold row is scored by one of them.
For the Brier score (and squared error) the two are related exactly (Krogh and Vedelsby, 1995):

    Brier(mean of the q_k) = mean_k Brier(q_k) - mean_k mean_rows |q_k - mean of the q_k|^2

where q_k is the fold-k ensemble (every group's fold-k model, combined with the ensemble's
weights by the linear pool; the submission is the mean of the q_k). Each fold-k ensemble's own
Brier on unseen rows is what the out-of-fold rows measure; the second term, the *ambiguity*,
needs no labels and is measured on the test rows themselves. Together they estimate the fold
mean's Brier score on the test distribution.

Accuracy does not decompose. :func:`brier_calibrated_accuracy` carries the Brier gain over to
accuracy with the slope of accuracy against Brier that the members and the ensemble show on the
out-of-fold rows. :func:`atc_accuracy` is the average-thresholded-confidence
estimator (Garg et al., 2022): the confidence threshold at which the share of out-of-fold rows
above it equals their accuracy, applied to the fold mean's confidences on the test rows.
``benchmarks/bench_folds.py --decomposed`` measures both against unseen test rows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["brier_rows", "ambiguity", "decomposed_brier", "atc_accuracy", "brier_calibrated_accuracy",
           "decomposed_squared_error"]


def brier_rows(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's multi-class Brier score, sum over classes of (p_c - [y = c])^2, shape (n,)."""
    p = np.asarray(proba, dtype=np.float64)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), np.asarray(y)] = 1.0
    return ((p - onehot) ** 2).sum(axis=1)


def ambiguity(fold_probas: Sequence[np.ndarray]) -> float:
    """The spread of the K fold ensembles around their mean: mean over rows and folds of
    |q_k - mean q|^2 (no labels needed)."""
    q = np.asarray(fold_probas, dtype=np.float64)  # (K, n, C)
    return float(((q - q.mean(axis=0)) ** 2).sum(axis=2).mean())


def decomposed_brier(oof_proba: np.ndarray, y: np.ndarray, test_fold_probas: Sequence[np.ndarray], *,
                     confidence: float = 0.95) -> dict:
    """The fold mean's Brier score on the test distribution: the out-of-fold Brier (each row by
    the fold ensemble that never saw it) minus the ambiguity of the fold ensembles on the test
    rows.

    Parameters
    ----------
    oof_proba : array (n, C)
        The ensemble's out-of-fold probabilities on the training rows (row r by fold k(r)).
    y : array (n,)
    test_fold_probas : sequence of K arrays (m, C)
        Each fold-k ensemble's probabilities on the m test rows.

    Returns
    -------
    dict
        ``estimate``, ``low``, ``high`` (a normal interval from the out-of-fold rows' spread; the
        ambiguity is measured, not sampled), ``oof_brier``, ``ambiguity``, ``rows``, ``test_rows``.
    """
    from scipy.stats import norm

    rows = brier_rows(oof_proba, y)
    oof = float(rows.mean())
    amb = ambiguity(test_fold_probas)
    half = float(norm.ppf(0.5 + confidence / 2) * rows.std(ddof=1) / np.sqrt(len(rows))) if len(rows) > 1 else 0.0
    return {"estimate": oof - amb, "low": oof - amb - half, "high": oof - amb + half, "oof_brier": oof,
            "ambiguity": amb, "rows": int(len(rows)), "test_rows": int(np.asarray(test_fold_probas[0]).shape[0])}


def atc_accuracy(oof_proba: np.ndarray, y: np.ndarray, test_proba: np.ndarray) -> float:
    """Average thresholded confidence: the threshold t on the out-of-fold rows' top probability
    such that the share of rows above t equals their accuracy; the estimate is the share of the
    test rows whose top probability (of the fold mean, ``test_proba``) is above t."""
    conf = np.asarray(oof_proba).max(axis=1)
    acc = float(np.mean(np.asarray(oof_proba).argmax(axis=1) == np.asarray(y)))
    t = float(np.quantile(conf, 1.0 - acc)) if 0.0 < acc < 1.0 else (conf.min() if acc == 1.0 else np.inf)
    return float(np.mean(np.asarray(test_proba).max(axis=1) > t))


def brier_calibrated_accuracy(points: Sequence[tuple[float, float]], oof_accuracy: float, oof_brier: float,
                              decomposed: float) -> float:
    """The fold mean's accuracy: the out-of-fold accuracy moved along the line of accuracy
    against Brier score that ``points`` (each member's and the ensemble's out-of-fold (Brier,
    accuracy)) fit, from the out-of-fold Brier to the decomposed one. With fewer than two points
    of different Brier scores, the out-of-fold accuracy."""
    b, a = np.asarray([p[0] for p in points], dtype=np.float64), np.asarray([p[1] for p in points], dtype=np.float64)
    if len(b) < 2 or np.ptp(b) <= 1e-12:
        return float(oof_accuracy)
    slope = float(np.polyfit(b, a, 1)[0])
    return float(oof_accuracy + slope * (decomposed - oof_brier))


def decomposed_squared_error(oof_pred: np.ndarray, y: np.ndarray, test_fold_preds: Sequence[np.ndarray]) -> dict:
    """Regression's form of :func:`decomposed_brier`: each target's mean squared error of the fold
    mean, the out-of-fold squared error minus the fold ensembles' ambiguity on the test rows
    (exact for any ensemble linear in its members: weighted means, per-target weights, a ridge
    stack).

    Parameters
    ----------
    oof_pred : array (n, T)
        The ensemble's out-of-fold outputs on the training rows.
    y : array (n, T)
    test_fold_preds : sequence of K arrays (m, T)
        Each fold-k ensemble's outputs on the m test rows.

    Returns
    -------
    dict
        ``mse`` (T,), ``rmse`` (T,), ``mcrmse``, ``rmse_all`` (over every cell), ``oof_mse`` (T,),
        ``ambiguity`` (T,), ``rows``, ``test_rows``.
    """
    e = (np.asarray(oof_pred, dtype=np.float64) - np.asarray(y, dtype=np.float64)) ** 2
    q = np.asarray(test_fold_preds, dtype=np.float64)  # (K, m, T)
    amb = ((q - q.mean(axis=0)) ** 2).mean(axis=(0, 1))
    mse = np.maximum(e.mean(axis=0) - amb, 0.0)
    return {"mse": mse.tolist(), "rmse": np.sqrt(mse).tolist(), "mcrmse": float(np.sqrt(mse).mean()),
            "rmse_all": float(np.sqrt(mse.mean())), "oof_mse": e.mean(axis=0).tolist(), "ambiguity": amb.tolist(),
            "rows": int(len(e)), "test_rows": int(q.shape[1])}

