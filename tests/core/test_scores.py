"""Scores against scikit-learn, and the resampled scores against a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss

from ensemble.core.errors import EnsembleError
from ensemble.core.scores import accuracy, at_chance, macro_f1, need_classes, resampled_scores, scores, weighted_scores
from ensemble.core.scores import log_loss as our_log_loss


def _proba(n=200, c=4, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(c), size=n)
    return p, rng.integers(0, c, n)


def test_scores_equal_scikit_learn():
    p, y = _proba()
    pred = p.argmax(axis=1)
    assert accuracy(p, y) == pytest.approx(accuracy_score(y, pred))
    assert macro_f1(p, y) == pytest.approx(f1_score(y, pred, average="macro"))
    assert our_log_loss(p, y) == pytest.approx(log_loss(y, p, labels=range(4)))
    assert scores(p, y) == {"accuracy": accuracy(p, y), "macro_f1": macro_f1(p, y), "log_loss": our_log_loss(p, y)}


def test_weighted_and_resampled_scores_equal_a_direct_computation():
    p, y = _proba(seed=1)
    pred = p.argmax(axis=1)
    w = np.random.default_rng(2).uniform(0.5, 2, len(y))
    got = weighted_scores(pred, y, 4, w)
    assert got["accuracy"] == pytest.approx(np.average(pred == y, weights=w))
    assert got["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", sample_weight=w))
    idx = np.random.default_rng(3).integers(0, len(y), size=(5, len(y)))
    res = resampled_scores(pred, y, 4, idx)
    for r in range(5):
        assert res["accuracy"][r] == pytest.approx(accuracy_score(y[idx[r]], pred[idx[r]]))


def test_one_class_and_chance_level():
    with pytest.raises(EnsembleError, match=r"all 3 of them are of one class \(b\)"):
        need_classes(np.array([1, 1, 1]), "weights=acc", ["a", "b"])
    y = np.array([0] * 9 + [1])
    assert "always answering the most frequent class" in at_chance(np.eye(2)[np.zeros(10, int)], y)
    assert at_chance(np.eye(2)[y] * 3.0, y) is None  # a classifier that tells the classes apart
