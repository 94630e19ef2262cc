"""The Krogh-Vedelsby decomposition, exactly; the estimators on a case with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.estimates.decomposition import ambiguity, atc_accuracy, brier_rows, decomposed_brier


def _fold_probas(K=5, n=300, C=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    z = rng.normal(size=(n, C))
    z[np.arange(n), y] += 1.5
    q = [np.exp(z + 0.7 * rng.normal(size=(n, C))) for _ in range(K)]
    return [p / p.sum(axis=1, keepdims=True) for p in q], y


def test_the_decomposition_equals_a_direct_computation():
    """Brier of the mean = mean of the Briers - the ambiguity, on the same rows, to 1e-12."""
    q, y = _fold_probas()
    mean = np.mean(q, axis=0)
    direct = brier_rows(mean, y).mean()
    assert direct == pytest.approx(np.mean([brier_rows(p, y).mean() for p in q]) - ambiguity(q), abs=1e-12)
    onehot = np.eye(4)[y]
    assert brier_rows(mean, y) == pytest.approx(((mean - onehot) ** 2).sum(axis=1), abs=1e-15)


def test_decomposed_brier_subtracts_the_test_ambiguity():
    q, y = _fold_probas(seed=1)
    test_q, _ = _fold_probas(seed=2)
    out = decomposed_brier(q[0], y, test_q)
    assert out["estimate"] == pytest.approx(brier_rows(q[0], y).mean() - ambiguity(test_q))
    assert out["low"] < out["estimate"] < out["high"] and out["rows"] == 300 and out["test_rows"] == 300


def test_atc_matches_accuracy_when_confidence_is_calibrated():
    rng = np.random.default_rng(3)
    n, C = 20_000, 3
    conf = rng.uniform(0.4, 1.0, n)  # calibrated: right with probability conf
    pred = rng.integers(0, C, n)
    right = rng.random(n) < conf
    y = np.where(right, pred, (pred + 1 + rng.integers(0, C - 1, n)) % C)
    proba = np.full((n, C), 0.0)
    proba[np.arange(n), pred] = conf
    for c in range(C):
        proba[:, c] += np.where(np.arange(C)[c] == pred, 0.0, (1 - conf) / (C - 1))
    assert atc_accuracy(proba, y, proba) == pytest.approx(np.mean(pred == y), abs=0.01)


def test_the_squared_error_decomposes_exactly():
    """Regression: for a linear pool the fold mean's squared error is the mean fold model's minus
    their ambiguity, to rounding, per target."""
    from ensemble.estimates.decomposition import decomposed_squared_error

    rng = np.random.default_rng(11)
    y = rng.normal(size=(400, 2))
    preds = [y + rng.normal(scale=0.5 + 0.2 * k, size=y.shape) + 0.1 * k for k in range(5)]
    mean = np.mean(preds, axis=0)
    # every fold model scored on the same rows: the identity holds exactly
    oof_like = np.concatenate(preds)  # each fold model's rows, as the out-of-fold rows are
    d = decomposed_squared_error(oof_like, np.tile(y, (5, 1)), preds)
    np.testing.assert_allclose(d["mse"], ((mean - y) ** 2).mean(axis=0), atol=1e-12)
    assert d["mcrmse"] == pytest.approx(np.sqrt(((mean - y) ** 2).mean(axis=0)).mean())
