"""Regression: each model outputs its raw head values (n, T), one column per target (an STS score,
six essay traits); members are aligned by target name and row id, combined by a weighted mean
(also a rank mean and a mean of standardised outputs, for members on different scales), scored
by Pearson (one target) or MCRMSE (several) and also RMSE, MAE and Spearman, and submitted as one
float column per target."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.columns.base import Metric, ValueTask, finite_floats, label_matrix, match_names

log = logging.getLogger(__name__)

__all__ = ["Regression", "REGRESSION", "METRICS", "rank_columns"]


def _squared(pred, y):
    return (pred - y) ** 2


def _pearson_stats(pred, y):
    # per target: x, y, xx, yy, xy, so that r = cov / (sd_x sd_y) comes from the sums; centred first
    # (r does not change), so that outputs far from zero with a small spread keep their precision
    pred, y = pred - pred.mean(axis=0), y - y.mean(axis=0)
    return np.concatenate([pred, y, pred * pred, y * y, pred * y], axis=1)


def _pearson_finish(S, N):
    T = S.shape[-1] // 5
    sx, sy, sxx, syy, sxy = (S[..., i * T:(i + 1) * T] for i in range(5))
    N = np.asarray(N, dtype=np.float64)[..., None]
    cov = sxy / N - sx * sy / N ** 2
    vx = np.maximum(sxx / N - (sx / N) ** 2, 0.0)
    vy = np.maximum(syy / N - (sy / N) ** 2, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where((vx > 0) & (vy > 0), cov / np.sqrt(vx * vy), 0.0)
    return np.clip(r, -1.0, 1.0).mean(axis=-1)


def rank_columns(a: np.ndarray) -> np.ndarray:
    """Each column's average ranks (ties share their mean rank), as floats."""
    from scipy.stats import rankdata

    return rankdata(np.asarray(a, dtype=np.float64), axis=0)


def _rmse_finish(S, N):
    return np.sqrt(S[..., 0] / np.asarray(N, dtype=np.float64))


METRICS = {
    # several targets: RMSE and MAE over every cell, the mean of the per-target Pearson / Spearman
    "pearson": Metric("pearson", True, _pearson_stats, _pearson_finish),
    "spearman": Metric("spearman", True, lambda p, y: _pearson_stats(rank_columns(p), rank_columns(y)),
                       _pearson_finish),
    "rmse": Metric("rmse", False, lambda p, y: _squared(p, y).mean(axis=1, keepdims=True), _rmse_finish),
    "mcrmse": Metric("mcrmse", False, _squared, lambda S, N: np.sqrt(S / np.asarray(N)[..., None]).mean(axis=-1)),
    "mae": Metric("mae", False, lambda p, y: np.abs(p - y).mean(axis=1, keepdims=True),
                  lambda S, N: S[..., 0] / np.asarray(N, dtype=np.float64)),
}


class Regression(ValueTask):
    """Regression heads: ``problem_type="regression"``, or one output and no problem type (as
    transformers treats it)."""

    name = "regression"
    said = "regression"
    clips = True
    decomposes = True
    heads = ("regression",)
    combine_rules = ("mean", "rank", "standardized")
    methods = ("uniform", "score", "optimize", "select", "stack")
    metrics = ("pearson", "mcrmse", "rmse", "mae", "spearman")
    metric_table = METRICS
    what = "target"

    def default_metric(self, targets: int) -> str:
        return "pearson" if targets == 1 else "mcrmse"

    def metric_value(self, metric: str, proba: np.ndarray, y: np.ndarray) -> float:
        return self.metric(metric)(proba, y)

    def targets(self, split, names: Sequence[str], model: str) -> np.ndarray:
        """The true values (n, T), columns in the order of the outputs ``names``."""
        split.require_labels("regression targets are needed here")
        cols = split.label_columns or (split.label_column,)
        order = match_names(cols, names, path=split.path, model=model, what="target")
        values = finite_floats(label_matrix(split), cols, split.path)
        return values[:, order]

    def combine(self, arrays, weights=None, rule=None):
        return combine_outputs(arrays, weights, rule or self.combine_rules[0])

    def mean_space(self, outputs):
        return np.asarray(outputs, dtype=np.float64)

    def predict(self, proba, labels):
        return np.asarray(proba, dtype=np.float64)

    def submission(self, ids, proba, labels, **options):
        return value_submission(ids, np.asarray(proba, dtype=np.float64), labels, **options)


def combine_outputs(arrays: Sequence[np.ndarray], weights=None, rule: str = "mean") -> np.ndarray:
    """The weighted combination of M aligned (n, T) outputs.

    - "mean": the weighted mean (weights (M,), or (M, T): one weight vector per target).
    - "rank": the weighted mean of each member's ranks, put back on the scale of the weighted mean
      (its sorted values in the order of the mean rank): the order of the rank mean, the values of
      the mean.
    - "standardized": the weighted mean of each member's z-scores (over the rows combined), scaled
      back by the members' weighted mean centre and spread.
    """
    X = np.stack([np.asarray(a, dtype=np.float64) for a in arrays])  # (M, n, T)
    M, n, T = X.shape
    w = np.full((M, T), 1.0 / M) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        w = np.repeat(w[:, None], T, axis=1)
    if w.shape != (M, T):
        raise EnsembleError(f"got weights of shape {w.shape} for {M} members and {T} targets")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or np.any(w.sum(axis=0) <= 0):
        raise EnsembleError(f"weights must be finite, non-negative and not all zero; got {w.tolist()}")
    w = w / w.sum(axis=0, keepdims=True)
    mean = np.einsum("mt,mnt->nt", w, X)
    if rule == "mean":
        return mean
    if rule == "rank":
        ranks = np.stack([rank_columns(x) for x in X])
        r = np.einsum("mt,mnt->nt", w, ranks)
        out = np.empty_like(mean)
        for t in range(T):
            out[np.argsort(r[:, t], kind="stable"), t] = np.sort(mean[:, t])
        return out
    if rule == "standardized":
        mu, sd = X.mean(axis=1, keepdims=True), X.std(axis=1, keepdims=True)
        z = (X - mu) / np.where(sd > 0, sd, 1.0)
        centre, spread = np.einsum("mt,mt->t", w, mu[:, 0]), np.einsum("mt,mt->t", w, sd[:, 0])
        return np.einsum("mt,mnt->nt", w, z) * spread + centre
    raise EnsembleError(f"combine rule must be one of mean, rank, standardized; got {rule!r}")


def value_submission(ids, values: np.ndarray, names: Sequence[str], *, sample_submission=None, id_column: str = "id",
                     columns: Sequence[str] | None = None, **_):
    """One float column per target (``columns``, default ``names``), in the sample submission's
    row order and columns when one is given; a sample that lacks a target column is an error."""
    import pandas as pd

    from ensemble.data.sample_submission import sample_order

    names = [str(c) for c in (columns or names)]
    if sample_submission is None:
        frame = pd.DataFrame({id_column: np.asarray(ids, dtype=object)})
        for j, c in enumerate(names):
            frame[c] = values[:, j]
        frame.attrs["sample_submission"] = None
        return frame
    path = Path(sample_submission)
    sample, order = sample_order(path, ids)
    rest = list(sample.columns[1:])
    frame = sample.copy()
    if len(names) == 1 and len(rest) == 1:  # one target, one column: whatever the sample calls it
        frame[rest[0]] = values[order, 0]
    else:
        from ensemble.tasks.columns.base import sample_columns

        where = sample_columns(path, rest, names, what="target", fix="with one column per target")
        for j, c in enumerate(names):
            frame[where[c]] = values[order, j]
    frame.attrs["sample_submission"] = str(path.resolve())
    return frame


REGRESSION = Regression()
