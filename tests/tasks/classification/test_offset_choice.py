"""Class-prior adjustment: a simulated label shift whose correct offsets are known, the offset
fitter against brute force, prior parsing, and the honest estimate."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from ensemble.tasks.classification.offsets import fit_adjustment, fit_offsets
from ensemble.core.errors import EnsembleError
from ensemble.data.priors import class_prior
from ensemble.tasks.classification.offset_choice import estimate_adjustment, select_adjustment

MEANS = np.array([[0.0, 0.0], [1.2, 0.0], [0.0, 1.2]])
PI_V = np.array([0.6, 0.3, 0.1])     # the validation's (and the model's) class prior
PI_T = np.array([0.2, 0.3, 0.5])     # the target's


def _draw(n, prior, rng):
    y = rng.choice(3, size=n, p=prior)
    x = MEANS[y] + rng.normal(size=(n, 2))
    return x, y


def _log_lik(x):
    return -0.5 * ((x[:, None, :] - MEANS[None]) ** 2).sum(axis=2)


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def shift():
    """A model that is the exact posterior under the validation prior, 3,000 validation rows
    from PI_V and 40,000 test rows from PI_T: the correct offsets are log PI_T - log PI_V."""
    rng = np.random.default_rng(0)
    xv, yv = _draw(3000, PI_V, rng)
    xt, yt = _draw(40000, PI_T, rng)
    return _log_lik(xv) + np.log(PI_V), yv, _log_lik(xt) + np.log(PI_V), yt, _log_lik(xt) + np.log(PI_T)


def _centre(v):
    return v - v.mean()


def test_prior_offsets_are_the_known_log_ratio_and_give_the_bayes_classifier(shift):
    zv, yv, zt, yt, bayes = shift
    adj = fit_adjustment(_softmax(zv), yv, "prior", target=PI_T)
    emp = np.bincount(yv, minlength=3) / len(yv)
    np.testing.assert_allclose(adj.offsets, _centre(np.log(PI_T) - np.log(emp)), atol=1e-12)
    np.testing.assert_allclose(adj.offsets, _centre(np.log(PI_T) - np.log(PI_V)), atol=0.08)  # sampling noise
    pred = adj.apply(_softmax(zt)).argmax(axis=1)
    assert np.mean(pred == bayes.argmax(axis=1)) > 0.98
    acc_none, acc_adj = np.mean(zt.argmax(axis=1) == yt), np.mean(pred == yt)
    acc_bayes = np.mean(bayes.argmax(axis=1) == yt)
    assert acc_adj > acc_none + 0.05 and acc_adj == pytest.approx(acc_bayes, abs=0.003)


def test_fit_with_the_target_prior_recovers_the_offsets(shift):
    zv, yv, zt, yt, bayes = shift
    adj = fit_adjustment(_softmax(zv), yv, "fit", target=PI_T)
    np.testing.assert_allclose(adj.offsets, _centre(np.log(PI_T) - np.log(PI_V)), atol=0.35)
    acc_fit = np.mean(adj.apply(_softmax(zt)).argmax(axis=1) == yt)
    assert acc_fit == pytest.approx(np.mean(bayes.argmax(axis=1) == yt), abs=0.01)


def test_the_estimate_under_the_target_prior_matches_the_shifted_test(shift):
    zv, yv, zt, yt, _ = shift
    est = estimate_adjustment([zv], yv, "uniform", kinds=("prior", "fit"), target=PI_T, folds=5, repeats=2)
    truth_none = np.mean(zt.argmax(axis=1) == yt)
    # importance-weighted held-out rows: the 300 rows of class 2 carry weight 5, so one sweep's
    # estimate has a standard error of about 0.013 (benchmarks/bench_priors.py: unbiased over seeds)
    assert est["prior"].baseline["accuracy"] == pytest.approx(truth_none, abs=0.03)
    for kind in ("prior", "fit"):
        adj = fit_adjustment(_softmax(zv), yv, kind, target=PI_T)
        truth = np.mean(adj.apply(_softmax(zt)).argmax(axis=1) == yt)
        assert est[kind].scores["accuracy"] == pytest.approx(truth, abs=0.03), kind
    # recall of the class the target favours goes up, of the one it disfavours down
    assert est["prior"].recall[2] > est["prior"].recall_before[2] + 0.2
    assert est["prior"].recall[0] < est["prior"].recall_before[0]
    choice, reason, _ = select_adjustment([zv], yv, "uniform", target=PI_T, folds=5, repeats=1)
    assert choice in ("prior", "fit") and "excludes zero" in reason


def test_without_a_shift_auto_keeps_none(shift):
    zv, yv, *_ = shift
    emp = np.bincount(yv, minlength=3) / len(yv)
    choice, reason, est = select_adjustment([zv], yv, "uniform", target=emp, folds=5, repeats=1)
    assert choice == "none", reason
    assert est["prior"].gain["accuracy"] == 0.0 and est["prior"].interval["accuracy"] == (0.0, 0.0)


def _brute(s, y, metric, grid):
    from ensemble.core.scores import weighted_scores as _weighted_scores

    best = -1.0
    for b in itertools.product(*[grid] * (s.shape[1] - 1)):
        off = np.array([0.0, *b])
        best = max(best, _weighted_scores((s + off).argmax(axis=1), y, s.shape[1], None)[metric])
    return best


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_fit_offsets_is_exact_for_two_classes_and_near_a_grid_for_three(metric):
    from ensemble.core.scores import weighted_scores as _weighted_scores

    rng = np.random.default_rng(5)
    y2 = rng.choice(2, 400, p=[0.8, 0.2])
    s2 = np.log(_softmax(rng.normal(size=(400, 2)) + 1.5 * np.eye(2)[y2]))
    b2 = fit_offsets(np.exp(s2), y2, metric)
    t = np.sort(s2[:, 0] - s2[:, 1])  # every threshold where a prediction changes
    cuts = np.concatenate([[t[0] - 1], (t[:-1] + t[1:]) / 2, [t[-1] + 1]])
    exact = _brute(s2, y2, metric, cuts)
    assert _weighted_scores((s2 + b2).argmax(axis=1), y2, 2, None)[metric] == pytest.approx(exact, abs=1e-12)

    y3 = rng.choice(3, 300, p=[0.6, 0.3, 0.1])
    s3 = np.log(_softmax(rng.normal(size=(300, 3)) + 1.2 * np.eye(3)[y3]))
    b3 = fit_offsets(np.exp(s3), y3, metric)
    got = _weighted_scores((s3 + b3).argmax(axis=1), y3, 3, None)[metric]
    assert abs(b3.sum()) < 1e-9
    assert got >= _brute(s3, y3, metric, np.linspace(-3, 3, 61)) - 0.01
    assert got >= _weighted_scores(s3.argmax(axis=1), y3, 3, None)[metric]


def test_class_prior_specs(tmp_path):
    labels = ("neg", "neu", "pos")
    np.testing.assert_allclose(class_prior("uniform", labels), [1 / 3] * 3)
    np.testing.assert_allclose(class_prior("pos=2,neg=1,neu=1", labels), [0.25, 0.25, 0.5])
    np.testing.assert_allclose(class_prior([1, 1, 2], labels), [0.25, 0.25, 0.5])
    train = tmp_path / "train.csv"
    pd.DataFrame({"text": list("abcdefgh"), "label": ["neg"] * 4 + ["neu"] * 3 + ["pos"]}).to_csv(train, index=False)
    np.testing.assert_allclose(class_prior(str(train), labels), [0.5, 0.375, 0.125])
    for spec, match in [("neg=1,neu=1", "no share for class 'pos'"), ("neg=1,neu=1,pos=1,bad=1", "class 'bad' is not"),
                        ("neg=1,neu=0,pos=1", "positive"), ([1, 2], "2 shares for 3 classes"),
                        ("neg:1", "prior neg:1: no such file"), ("neg=1,neu=1,pos", "expected 'uniform'")]:
        with pytest.raises(EnsembleError, match=match):
            class_prior(spec, labels)
    pd.DataFrame({"text": list("ab"), "label": ["neg", "pos"]}).to_csv(train, index=False)
    with pytest.raises(EnsembleError, match=r"train.csv: class 'neu' never occurs"):
        class_prior(str(train), labels)
    with pytest.raises(EnsembleError, match="adjust prior needs a target prior; pass prior=FILE"):
        fit_adjustment(np.full((4, 3), 1 / 3), np.array([0, 1, 2, 0]), "prior")


def test_large_splits_use_the_normal_interval_the_bootstrap_converges_to(monkeypatch):
    import ensemble.tasks.classification.offset_choice as priors
    import ensemble.tasks.classification.estimate as estimate

    # compare the two intervals themselves, not their hull with the exact discordance bounds
    monkeypatch.setattr(priors, "discordance_interval", lambda d, c: (np.inf, -np.inf))
    rng = np.random.default_rng(3)
    n = 30000
    y = rng.integers(0, 3, n)
    a = np.where(rng.random(n) < 0.7, y, (y + 1) % 3)
    b = np.where(rng.random(n) < 0.69, y, (y + 2) % 3)
    w = np.array([0.5, 1.0, 2.0])[y]
    normal = priors._gain_interval("accuracy", a, b, y, 3, w, 0.95, 2000, 0)
    rows = (a == y).astype(float), (b == y).astype(float)
    normal_mean = estimate._paired_interval(*rows, True, 0.95, 2000, 0)  # the weights' estimate, unweighted
    monkeypatch.setattr(priors, "BOOTSTRAP_ROWS", 10**9)
    monkeypatch.setattr(estimate, "BOOTSTRAP_ROWS", 10**9)
    boot = priors._gain_interval("accuracy", a, b, y, 3, w, 0.95, 2000, 0)
    assert normal[0] < normal[1] and np.isfinite(boot).all()
    np.testing.assert_allclose(normal, boot, atol=0.001)  # each is about 0.016 wide
    np.testing.assert_allclose(normal_mean, estimate._paired_interval(*rows, True, 0.95, 2000, 0), atol=0.001)


def test_an_ensemble_that_sends_nearly_every_row_to_one_class_is_flagged(caplog):
    from ensemble.tasks.classification.weights import Weights
    from ensemble.tasks.classification.vote import _flag_one_class

    fitted = Weights("acc", ("a",), np.ones(1), labels=("x", "y", "z"), adjustment={"kind": "prior", "offsets": [9, 0, 0]})
    y = np.array([0, 1, 2] * 10)  # x is a third of validation
    lopsided = np.tile([0.9, 0.05, 0.05], (40, 1))
    with caplog.at_level("WARNING", logger="ensemble"):
        _flag_one_class(lopsided, y, fitted.labels, fitted)
    assert "predicts x for 100% of the test rows, a class of 33% of the validation rows" in caplog.text
    assert "acc + prior" in caplog.text
    caplog.clear()
    balanced = np.eye(3)[np.arange(40) % 3]
    with caplog.at_level("WARNING", logger="ensemble"):
        _flag_one_class(balanced, y, fitted.labels, fitted)
    assert caplog.text == ""
