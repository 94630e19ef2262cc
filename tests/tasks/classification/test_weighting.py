"""Combination rules and weight fitting against scikit-learn, scipy and hand-computed references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax as sp_log_softmax
from scipy.special import softmax as sp_softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.metrics import log_loss as sk_log_loss

from ensemble.tasks.classification.weighting import STACK_TOL, ensemble_selection, fit_temperature, fit_weights
from ensemble.tasks.classification.weights import Weights
from ensemble.core.combination import align, combine
from ensemble.core.errors import EnsembleError
from ensemble.core.outputs import Logits
from ensemble.core.scores import scores

CLASSES = ("hate", "none", "offensive")


def synthetic(n=300, models=3, classes=3, seed=0):
    """Logits of models of different quality over the same rows, and the true classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    out = []
    for m in range(models):
        z = rng.normal(0, 1.0, (n, classes))
        z[np.arange(n), y] += 0.8 + 0.6 * m
        out.append(z.astype(np.float32))
    return out, y


class CachedProba(ClassifierMixin, BaseEstimator):
    """A stand-in classifier that returns cached probabilities for row indices."""

    def __init__(self, proba=None, classes=None):
        self.proba, self.classes = proba, classes

    def fit(self, X=None, y=None):
        self.classes_ = np.array(self.classes)
        return self

    def predict_proba(self, X):
        return self.proba[np.asarray(X).ravel().astype(int)]


def _sklearn_soft_vote(logits_by_model, weights=None):
    """VotingClassifier over frozen stand-ins; each stand-in's columns put in sklearn's sorted
    class order by name, independently of ensemble's alignment."""
    ests = []
    for i, lg in enumerate(logits_by_model):
        p = sp_softmax(lg.values.astype(np.float64), axis=1)
        cols = [list(lg.labels).index(c) for c in sorted(CLASSES)]
        ests.append((f"m{i}", FrozenEstimator(CachedProba(p[:, cols], sorted(CLASSES)).fit())))
    n = len(logits_by_model[0])
    X = np.arange(n)[:, None]
    vc = VotingClassifier(ests, voting="soft", weights=weights).fit(X, [sorted(CLASSES)[i % 3] for i in range(n)])
    return vc.predict_proba(X), list(vc.classes_)


def _clr(arrays):
    """Centred log-ratio of each model's probabilities, computed with scipy, side by side."""
    lps = [sp_log_softmax(a.astype(np.float64), axis=1) for a in arrays]
    return np.hstack([lp - lp.mean(axis=1, keepdims=True) for lp in lps])


def _permuted_logits(arrays, orders):
    """Logits objects whose class columns are in different orders (as from different id2label)."""
    ids = np.array([f"r{i}" for i in range(len(arrays[0]))], dtype=object)
    out = []
    for i, (a, order) in enumerate(zip(arrays, orders)):
        labels = tuple(CLASSES[j] for j in order)
        out.append(Logits(ids, a[:, list(order)], labels, model=f"m{i}", split="valid"))
    return out


def test_uniform_acc_and_fixed_weights_equal_voting_classifier():
    arrays, y = synthetic()
    logits = _permuted_logits(arrays, [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
    al = align(logits)
    assert al.labels == CLASSES  # the first model's order
    for a, original in zip(al.arrays, arrays):
        np.testing.assert_array_equal(a, original)  # columns put back by name

    sorted_cols = [CLASSES.index(c) for c in sorted(CLASSES)]
    ref, classes = _sklearn_soft_vote(logits)
    assert classes == sorted(CLASSES)
    np.testing.assert_allclose(combine(al.arrays)[:, sorted_cols], ref, atol=1e-12)

    acc = fit_weights(al.arrays, y, "acc")
    expected = np.array([accuracy_score(y, a.argmax(1)) for a in arrays])
    np.testing.assert_allclose(acc.weights, expected / expected.sum())
    ref, _ = _sklearn_soft_vote(logits, weights=list(expected))
    np.testing.assert_allclose(acc.predict_proba(al.arrays)[:, sorted_cols], ref, atol=1e-12)

    fixed = [0.2, 0.0, 3.0]
    ref, _ = _sklearn_soft_vote(logits, weights=fixed)
    np.testing.assert_allclose(combine(al.arrays, fixed)[:, sorted_cols], ref, atol=1e-12)

    sharp = fit_weights(al.arrays, y, "acc", acc_power=4)
    np.testing.assert_allclose(sharp.weights, expected ** 4 / (expected ** 4).sum())


def test_logit_geometric_and_hard_vote_rules():
    arrays, _ = synthetic(n=50)
    w = np.array([0.5, 0.3, 0.2])
    z = [a.astype(np.float64) for a in arrays]
    np.testing.assert_allclose(combine(z, w, "logit"), sp_softmax(sum(wi * a for wi, a in zip(w, z)), axis=1))
    geo = sp_softmax(sum(wi * sp_log_softmax(a, axis=1) for wi, a in zip(w, z)), axis=1)
    np.testing.assert_allclose(combine(z, w, "geometric"), geo)
    # hard vote: two models say class 0, one says 1, with weights 0.25, 0.25, 0.5: a tie at 0.5,
    # broken by the weighted mean probability, which favours class 1 here
    z = [np.array([[2.0, 0.0, 0.0]]), np.array([[0.1, 0.0, 0.0]]), np.array([[0.0, 5.0, 0.0]])]
    shares = combine(z, [0.25, 0.25, 0.5], "vote")
    assert shares.argmax() == 1 and shares[0, 0] == pytest.approx(0.5, abs=1e-6)
    assert combine(z, [0.3, 0.3, 0.4], "vote").argmax() == 0  # 0.6 of the votes


def test_alignment_errors():
    arrays, _ = synthetic(n=5)
    a, b = _permuted_logits(arrays[:2], [(0, 1, 2), (0, 1, 2)])
    other = Logits(b.ids, b.values, ("hate", "none", "spam"), model="m1")
    with pytest.raises(EnsembleError, match=r"model m1 has labels that differ from m0: only in m1: spam; only in m0: offensive"):
        align([a, other])
    generic = Logits(b.ids, b.values, ("LABEL_0", "LABEL_1", "LABEL_2"), model="g")
    with pytest.raises(EnsembleError, match=r"model g has generic class names .*set id2label .* in g's config.json"):
        align([a, generic])
    short = Logits(b.ids[:4], b.values[:4], b.labels, model="m1", split="test")
    with pytest.raises(EnsembleError, match=r"model m1 has no row for id 'r4' of split test; re-run ensemble predict"):
        align([a, short])
    shuffled = Logits(b.ids[::-1], b.values[::-1], b.labels, model="m1")
    np.testing.assert_array_equal(align([a, shuffled]).arrays[1], b.values)  # rows put back by id


def _plain_slsqp(probas, y, starts=5, seed=1):
    """The usual recipe: SLSQP on the simplex with numerical gradients, from random starts."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(seed)

    def loss(w):
        return sk_log_loss(y, sum(wi * p for wi, p in zip(w, probas)), labels=range(probas[0].shape[1]))

    best = np.inf
    for _ in range(starts):
        w0 = rng.dirichlet(np.ones(len(probas)))
        res = minimize(loss, w0, method="SLSQP", bounds=[(0, 1)] * len(probas),
                       constraints={"type": "eq", "fun": lambda w: w.sum() - 1}, options={"ftol": 1e-12, "maxiter": 500})
        best = min(best, loss(res.x / res.x.sum()))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimize_reaches_the_simplex_optimum(seed):
    arrays, y = synthetic(n=400, models=4, seed=seed)
    fitted = fit_weights(arrays, y, "optimize")
    probas = [sp_softmax(a.astype(np.float64), axis=1) for a in arrays]
    ours = sk_log_loss(y, fitted.predict_proba(arrays))
    assert ours <= _plain_slsqp(probas, y) + 1e-6
    assert fitted.apparent["log_loss"] == pytest.approx(ours, abs=1e-9)
    assert fitted.weights.min() >= 0 and fitted.weights.sum() == pytest.approx(1)
    for rule in ("logit", "geometric"):  # the analytic gradients of the other rules work too
        w = fit_weights(arrays, y, "optimize", combine=rule)
        assert w.apparent["log_loss"] <= fit_weights(arrays, y, "uniform", combine=rule).apparent["log_loss"] + 1e-9


def test_select_reproduces_a_hand_computed_trace():
    # true-class probabilities of 3 models on 2 rows (2 classes, both rows of class 0)
    a = np.array([[0.9, 0.55, 0.2], [0.3, 0.6, 0.8]])
    probas = [np.stack([a[:, i], 1 - a[:, i]], axis=1) for i in range(3)]
    y = np.array([0, 0])
    w, trace = ensemble_selection(probas, y, iterations=3, return_trace=True)
    # by hand: single log losses 0.6547, 0.5543, 0.9163 -> sorted m1, m0, m2; the uniform mix of
    # the best 1, 2, 3 scores 0.5543, 0.5600, 0.5829 -> start with {m1}. Then:
    #   +m1 -> 0.5543 (m0: 0.5600, m2: 0.6687); +m0 -> 0.5493; +m1 -> 0.5473
    assert [m for m, _ in trace] == [1, 1, 0, 1]
    np.testing.assert_allclose([loss for _, loss in trace], [0.554331, 0.554331, 0.549306, 0.547279], atol=1e-6)
    np.testing.assert_allclose(w, [0.25, 0.75, 0.0])
    # the weights are the counts at the best iteration, not the last
    w, trace = ensemble_selection(probas, y, iterations=12, return_trace=True)
    best = int(np.argmin([loss for _, loss in trace]))
    counts = np.bincount([m for m, _ in trace[: best + 1]], minlength=3)
    np.testing.assert_allclose(w, counts / counts.sum())


def test_bagged_select_and_stack_against_logistic_regression():
    arrays, y = synthetic(n=300, models=5)
    bagged = fit_weights(arrays, y, "select", bags=10, seed=3)
    assert bagged.weights.sum() == pytest.approx(1) and (bagged.weights > 0).sum() >= 2
    assert fit_weights(arrays, y, "select").meta["options"]["bags"] is None  # default: 20 bags for M >= 4

    stacked = fit_weights(arrays, y, "stack")
    X = _clr(arrays)
    lr = LogisticRegression(C=1.0, max_iter=1000, tol=STACK_TOL).fit(X, y)
    np.testing.assert_allclose(stacked.predict_proba(arrays), lr.predict_proba(X), atol=1e-8)
    assert set(stacked.meta["oof"]) == {"accuracy", "macro_f1", "log_loss"}
    assert stacked.meta["oof"]["log_loss"] > stacked.apparent["log_loss"]  # out-of-fold is worse

    binary, yb = synthetic(n=200, models=2, classes=2)
    s2 = fit_weights(binary, yb, "stack")
    lr2 = LogisticRegression(max_iter=1000, tol=STACK_TOL).fit(_clr(binary), yb)
    np.testing.assert_allclose(s2.predict_proba(binary), lr2.predict_proba(_clr(binary)), atol=1e-8)


def test_temperature_and_calibration():
    arrays, y = synthetic(n=500, models=2)
    sharp = arrays[0] * 4.0  # over-confident
    t = fit_temperature(sharp, y)
    grid = np.exp(np.linspace(-3, 3, 6001))
    rows = np.arange(len(y))
    losses = [-sp_log_softmax(sharp / g, axis=1)[rows, y].mean() for g in grid]
    assert t == pytest.approx(grid[int(np.argmin(losses))], rel=2e-3)
    w = fit_weights([sharp, arrays[1]], y, "uniform", temperature=True, calibrate=True)
    assert w.temperatures[0] == pytest.approx(t) and w.calibration is not None
    assert w.apparent["log_loss"] < fit_weights([sharp, arrays[1]], y, "uniform").apparent["log_loss"]


def test_scores_match_sklearn_and_weights_round_trip(tmp_path):
    arrays, y = synthetic()
    w = fit_weights(arrays, y, "optimize", temperature=True, names=["a", "b", "c"])
    p = w.predict_proba(arrays)
    s = scores(p, y)
    assert s["accuracy"] == pytest.approx(accuracy_score(y, p.argmax(1)))
    assert s["macro_f1"] == pytest.approx(f1_score(y, p.argmax(1), average="macro"))
    assert s["log_loss"] == pytest.approx(sk_log_loss(y, p))
    back = Weights.load(w.save(tmp_path / "w.json"))
    np.testing.assert_allclose(back.predict_proba(arrays), p, atol=1e-12)
    assert back.models == ("a", "b", "c") and "method='optimize'" in repr(back) and "a=" in repr(back)


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "best0"}, r"method must be one of uniform, acc, optimize, select, stack, best or best<K>; got 'best0'"),
    ({"combine": "max"}, r"combine must be one of prob, logit, geometric, vote"),
    ({"y": np.array([0, 1])}, r"got 2 labels for 300 validation rows"),
    ({"y": np.full(300, 7)}, r"labels must be class indices in 0..2"),
    ({"names": ["a"]}, r"got 1 names, 3 models"),
])
def test_fit_weights_argument_errors(kwargs, message):
    arrays, y = synthetic()
    args = {"y": y, **kwargs}
    with pytest.raises(EnsembleError, match=message):
        fit_weights(arrays, **args)


@pytest.mark.parametrize("weights, message", [
    ([1.0, -1.0], r"must be finite, non-negative"),
    ([np.nan, 1.0], r"must be finite, non-negative"),
    ([0.0, 0.0], r"not all zero"),
    ([1.0], r"got 1 weights, 2 models"),
])
def test_bad_fixed_weights(weights, message):
    arrays, _ = synthetic(models=2)
    with pytest.raises(EnsembleError, match=message):
        combine(arrays, weights)
