"""Estimates of regression and multi-label ensembles: thresholds fitted inside the folds give
a more honest (lower) estimate than thresholds fitted on every row; auto's rule; the metrics
and their bootstrap against scipy and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.tasks.columns.fitting import fit_threshold, fit_value_weights
from ensemble.tasks.columns.estimate import bootstrap_counts, cross_validate_values, select_value_method


def _noise_tags(n=150, L=12, seed=0):
    """Members with no information about rare labels: any threshold that scores well on these
    rows does so by chance (the case thresholds fitted on every row overfit)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, L)) < 0.15).astype(float)
    arrays = [rng.normal(size=(n, L)) for _ in range(3)]
    return arrays, y


def test_thresholds_fitted_inside_the_folds_are_more_honest():
    from ensemble.tasks.columns.multilabel import METRICS, decide

    arrays, y = _noise_tags()
    e = cross_validate_values("multi_label", arrays, y, (), cv=5, threshold="per_label")["uniform"]
    # thresholds fitted on every row, scored on the same rows: what a user tuning on validation sees
    everywhere = fit_value_weights("multi_label", arrays, y, "uniform", threshold="per_label")
    assert e.apparent["f1_micro"] == pytest.approx(everywhere.apparent["f1_micro"])
    # the truth for members with no information: a fresh draw of the same kind, never fitted on
    fresh, y2 = _noise_tags(seed=1)
    unseen = METRICS["f1_micro"](decide(everywhere.combined(fresh), everywhere.threshold), y2)
    assert e.cross_validated["f1_micro"] < e.apparent["f1_micro"] - 0.02
    assert abs(e.cross_validated["f1_micro"] - unseen) < abs(e.apparent["f1_micro"] - unseen)


def test_the_multilabel_metrics_are_scikit_learns():
    from sklearn.metrics import f1_score

    from ensemble.tasks.columns.multilabel import METRICS

    rng = np.random.default_rng(3)
    y = (rng.random((200, 5)) < 0.3).astype(float)
    y[:, 4] = 0  # a label that never occurs
    pred = (rng.random((200, 5)) < 0.3).astype(float)
    pred[:7] = 0  # rows with no label decided
    for name, avg in (("f1_micro", "micro"), ("f1_macro", "macro"), ("f1_samples", "samples")):
        assert METRICS[name](pred, y) == pytest.approx(f1_score(y, pred, average=avg, zero_division=0))


def test_the_regression_metrics_and_their_bootstrap():
    from scipy.stats import pearsonr, spearmanr

    from ensemble.tasks.columns.regression import METRICS

    rng = np.random.default_rng(4)
    y = rng.normal(size=(300, 2)) + 100
    p = y + rng.normal(scale=0.7, size=y.shape)
    assert METRICS["pearson"](p, y) == pytest.approx(np.mean([pearsonr(p[:, j], y[:, j])[0] for j in range(2)]))
    assert METRICS["spearman"](p, y) == pytest.approx(np.mean([spearmanr(p[:, j], y[:, j])[0] for j in range(2)]))
    assert METRICS["mcrmse"](p, y) == pytest.approx(np.mean(np.sqrt(((p - y) ** 2).mean(axis=0))))
    assert METRICS["rmse"](p, y) == pytest.approx(np.sqrt(((p - y) ** 2).mean()))
    assert METRICS["mae"](p, y) == pytest.approx(np.abs(p - y).mean())
    counts = bootstrap_counts(300, 5, seed=0).astype(np.float64)
    m = METRICS["pearson"]
    stats = m.stats(p, y)
    for b in range(5):  # a resample's metric is the metric of the resampled rows
        rows = np.repeat(np.arange(300), counts[b].astype(int))
        assert m.resampled(stats, counts[b:b + 1])[0] == pytest.approx(
            np.mean([pearsonr(p[rows, j], y[rows, j])[0] for j in range(2)]), abs=1e-3)


def test_auto_keeps_a_fitted_method_only_on_a_sure_gain():
    rng = np.random.default_rng(5)
    y = rng.normal(size=(400, 1))
    good = [y + rng.normal(scale=s, size=y.shape) for s in (0.3, 2.0, 2.0)]
    e = cross_validate_values("regression", good, y, ("optimize", "score"), cv=5)
    choice, reason = select_value_method(e)
    assert choice in ("optimize", "score") and "excludes zero" in reason
    alike = [y + rng.normal(scale=1.0, size=y.shape) for _ in range(3)]
    e = cross_validate_values("regression", alike, y, ("optimize", "select", "stack"), cv=5)
    assert select_value_method(e)[0] == "uniform"


def test_optimize_minimises_squared_error_per_target_on_the_simplex():
    from scipy.optimize import nnls

    rng = np.random.default_rng(6)
    y = rng.normal(size=(500, 2))
    arrays = [y * [1, 0] + rng.normal(scale=0.5, size=y.shape), y * [0, 1] + rng.normal(scale=0.5, size=y.shape),
              y + rng.normal(scale=0.8, size=y.shape)]
    w = fit_value_weights("regression", arrays, y, "optimize", metric="mcrmse").weights
    assert w.shape == (3, 2) and np.allclose(w.sum(axis=0), 1) and (w >= 0).all()
    assert w[0, 0] > w[1, 0] and w[1, 1] > w[0, 1]  # each target leans on the member that knows it
    for j in range(2):  # against a constrained least squares: NNLS with the sum-to-one row weighted heavily
        A = np.vstack([np.stack([a[:, j] for a in arrays], axis=1), 1e3 * np.ones((1, 3))])
        ref, _ = nnls(A, np.append(y[:, j], 1e3))
        np.testing.assert_allclose(w[:, j], ref / ref.sum(), atol=2e-3)


def test_a_global_threshold_maximises_micro_f1():
    from ensemble.tasks.columns.multilabel import METRICS, decide

    rng = np.random.default_rng(7)
    y = (rng.random((300, 4)) < 0.3).astype(float)
    p = np.clip(0.35 * y + 0.5 * rng.random(y.shape), 0, 1)
    t = fit_threshold(p, y, "f1_micro", "global")
    best = max(np.round(np.arange(0.02, 0.99, 0.01), 2), key=lambda c: METRICS["f1_micro"](decide(p, c), y))
    assert METRICS["f1_micro"](decide(p, t), y) == pytest.approx(METRICS["f1_micro"](decide(p, best), y))
