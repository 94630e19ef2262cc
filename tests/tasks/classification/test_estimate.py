"""cross_validate, select_method and the metrics, against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax as sp_softmax
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import RepeatedStratifiedKFold

from ensemble.core.errors import EnsembleError
from ensemble.tasks.classification.estimate import _mcnemar, cross_validate, ece, metric_value, select_method
from ensemble.estimates.resampling import discordance_interval as _discordance_interval


def members(n, strengths, seed, classes=3, rho=0.5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    shared = rng.normal(size=(n, classes))
    out = []
    for s in strengths:
        z = np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.normal(size=(n, classes))
        z[np.arange(n), y] += s
        out.append(z)
    return out, y


def test_cross_validated_acc_weights_match_a_hand_written_loop():
    arrays, y = members(300, [1.5, 1.0, 0.3], seed=0)
    est = cross_validate(arrays, y, "acc", folds=4, repeats=2, seed=7)
    # independent: per fold, weights = training accuracies / their sum; mix probabilities
    probs = [sp_softmax(a, axis=1) for a in arrays]
    accs = []
    for r, (train, test) in enumerate(RepeatedStratifiedKFold(n_splits=4, n_repeats=2, random_state=7).split(arrays[0], y)):
        if r % 4 == 0:
            oof = np.empty((len(y), 3))
        w = np.array([np.mean(p[train].argmax(1) == y[train]) for p in probs])
        w = w / w.sum()
        oof[test] = sum(wi * p[test] for wi, p in zip(w, probs))
        if r % 4 == 3:
            accs.append(np.mean(oof.argmax(1) == y))
    assert est.cross_validated["accuracy"] == pytest.approx(np.mean(accs))
    assert est.folds == 4 and est.repeats == 2
    full_w = np.array([np.mean(p.argmax(1) == y) for p in probs])
    np.testing.assert_allclose(est.weights.weights, full_w / full_w.sum())
    assert est.optimism["accuracy"] == pytest.approx(est.apparent["accuracy"] - est.cross_validated["accuracy"])
    uniform = np.mean(sum(probs).argmax(1) == y)
    assert est.gain_vs_uniform["accuracy"] == pytest.approx(est.cross_validated["accuracy"] - uniform)
    lo, hi = est.gain_interval["accuracy"]
    assert lo <= est.gain_vs_uniform["accuracy"] <= hi


def test_fitted_weights_look_better_in_sample_than_out_of_fold():
    # many equal members, few rows: optimize fits noise, and says so
    optimism = []
    for seed in range(4):
        arrays, y = members(120, [1.0] * 8, seed=seed)
        est = cross_validate(arrays, y, "optimize", folds=5, repeats=1, seed=seed)
        optimism.append(est.optimism["log_loss"])
        assert est.optimism["log_loss"] == pytest.approx(est.cross_validated["log_loss"] - est.apparent["log_loss"])
    assert np.mean(optimism) > 0


def test_select_method_falls_back_to_uniform_for_equal_members_and_not_otherwise():
    arrays, y = members(1500, [1.0, 1.0, 1.0], seed=3)
    choice, reason, estimates = select_method(arrays, y, ["acc", "optimize"], repeats=1)
    assert choice == "uniform" and "does not exclude zero" in reason and set(estimates) == {"acc", "optimize"}
    arrays, y = members(1500, [1.5, 1.5, 0.0], seed=4)
    choice, reason, _ = select_method(arrays, y, ["acc", "optimize"], repeats=1)
    assert choice in ("acc", "optimize") and "excludes zero" in reason
    with pytest.raises(EnsembleError, match=r"unknown method 'bestest'"):
        select_method(arrays, y, ["bestest"])


def test_mcnemar_and_discordance_bounds():
    a = np.array([True] * 10 + [False] * 5)
    b = np.array([False] * 10 + [False] * 5)
    assert _mcnemar(a, b) == pytest.approx(2 * 0.5 ** 10)  # 10 rows won, none lost
    assert _mcnemar(a, a) == 1.0
    lo, hi = _discordance_interval(np.zeros(500), 0.95)
    assert lo < 0 < hi and hi == pytest.approx(-lo)  # no row differs: neither sign is ruled out
    lo, hi = _discordance_interval(np.array([1.0] * 3 + [0.0] * 497), 0.95)
    assert lo < 0 < 3 / 500 < hi  # three rows won are no proof of a gain
    lo, hi = _discordance_interval(np.array([1.0] * 60 + [-1.0] * 5 + [0.0] * 435), 0.95)
    assert 0 < lo < 55 / 500 < hi


def test_metrics_against_references():
    arrays, y = members(200, [1.0], seed=5)
    p = sp_softmax(arrays[0], axis=1)
    assert metric_value("balanced_accuracy", p, y) == pytest.approx(balanced_accuracy_score(y, p.argmax(1)))
    # ECE by hand: one bin per row when bins are fine enough is |conf - correct| averaged
    q = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    yy = np.array([0, 1, 1])
    assert ece(q, yy, bins=10) == pytest.approx((abs(0.9 - 1) + abs(0.6 - 0) + abs(0.7 - 1)) / 3)
    with pytest.raises(EnsembleError, match=r"unknown metric 'acuracy'"):
        metric_value("acuracy", p, y)


def test_too_few_rows_of_a_class():
    arrays, y = members(30, [1.0, 1.0], seed=6)
    y[:] = 0
    y[0] = 1
    with pytest.raises(EnsembleError, match=r"at least 2 validation rows of every class; the rarest has 1"):
        cross_validate(arrays, y, "acc")
