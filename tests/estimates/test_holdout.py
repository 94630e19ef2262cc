"""The holdout's scores, intervals and choice, against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import f1_score

from ensemble.core.errors import EnsembleError
from ensemble.estimates.holdout import choose_on_holdout, holdout_scores


def _onehot(pred, C=3):
    return np.eye(C)[pred] * 0.8 + 0.2 / C


def test_scores_and_intervals_equal_a_direct_computation():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    good = np.where(rng.random(400) < 0.85, y, (y + 1) % 3)
    base = np.where(rng.random(400) < 0.70, y, (y + 2) % 3)
    s = holdout_scores({"uniform": _onehot(base), "stack": _onehot(good)}, y)
    assert s["stack"].score == pytest.approx(np.mean(good == y))
    ci = binomtest(int((good == y).sum()), 400).proportion_ci(method="wilson")
    assert (s["stack"].low, s["stack"].high) == pytest.approx((ci.low, ci.high))
    assert s["stack"].gain == pytest.approx(np.mean(good == y) - np.mean(base == y))
    assert s["stack"].gain_low < s["stack"].gain < s["stack"].gain_high and s["uniform"].gain == 0
    f = holdout_scores({"uniform": _onehot(base), "stack": _onehot(good)}, y, metric="macro_f1")
    assert f["stack"].score == pytest.approx(f1_score(y, good, average="macro"))
    assert f["stack"].low < f["stack"].score < f["stack"].high
    # a class predicted that no holdout row has: macro-F1 over the classes present or predicted, as
    # scikit-learn's f1_score, for the score and its gain alike
    never = np.where(np.arange(400) < 30, 2, good)
    yy = np.where(y == 2, 0, y)
    g = holdout_scores({"uniform": _onehot(base), "stack": _onehot(never)}, yy, metric="macro_f1")
    assert g["stack"].score == pytest.approx(f1_score(yy, never, average="macro"))
    assert g["stack"].gain == pytest.approx(f1_score(yy, never, average="macro") - f1_score(yy, base, average="macro"))
    with pytest.raises(EnsembleError, match=r"the holdout decides by one of accuracy, .*qwk; got 'f1'"):
        holdout_scores({"uniform": _onehot(base)}, y, metric="f1")


@pytest.mark.parametrize("metric", ["log_loss", "roc_auc", "qwk"])
def test_metrics_of_probabilities_and_of_order_against_scikit_learn(metric):
    """The competition's metric decides on the holdout too: each score equals scikit-learn's, its
    interval holds it, and the gain is positive for the better candidate whichever way the
    metric runs (a loss: the baseline's minus the candidate's)."""
    from sklearn.metrics import cohen_kappa_score, log_loss, roc_auc_score

    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 400)
    good = np.where(rng.random(400) < 0.85, y, (y + 1) % 3)
    base = np.where(rng.random(400) < 0.60, y, (y + 2) % 3)
    probas = {"uniform": _onehot(base) * 0.9 + rng.dirichlet(np.ones(3), 400) * 0.1,
              "stack": _onehot(good) * 0.9 + rng.dirichlet(np.ones(3), 400) * 0.1}
    reference = {"log_loss": lambda p: log_loss(y, p, labels=[0, 1, 2]),
                 "roc_auc": lambda p: roc_auc_score(y, p, multi_class="ovr"),
                 "qwk": lambda p: cohen_kappa_score(y, p.argmax(1), weights="quadratic", labels=[0, 1, 2])}[metric]
    s = holdout_scores(probas, y, metric=metric)
    for name, p in probas.items():
        assert s[name].score == pytest.approx(reference(p))
        assert s[name].low <= s[name].score <= s[name].high
    sign = -1 if metric == "log_loss" else 1
    assert s["stack"].gain == pytest.approx(sign * (reference(probas["stack"]) - reference(probas["uniform"])))
    assert 0 < s["stack"].gain_low < s["stack"].gain < s["stack"].gain_high
    choice, reason = choose_on_holdout(s, ["uniform", "stack"], metric=metric, rows=400)
    assert choice == "stack" and reason.startswith(f"stack: {metric}")


def test_the_choice_keeps_a_fitted_method_only_on_a_sure_gain():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 400)
    base = np.where(rng.random(400) < 0.70, y, (y + 2) % 3)
    much = np.where(rng.random(400) < 0.90, y, (y + 1) % 3)
    same = base.copy()
    same[:4] = y[:4]  # four rows better: a gain whose interval includes zero
    s = holdout_scores({"uniform": _onehot(base), "stack": _onehot(much), "acc": _onehot(same)}, y)
    choice, reason = choose_on_holdout(s, ["uniform", "stack", "acc"], rows=400)
    assert choice == "stack" and reason.startswith("stack: accuracy") and "on the holdout (400 rows)" in reason
    choice, reason = choose_on_holdout(s, ["uniform", "acc"])
    assert choice == "uniform" and "the best fitted method, acc" in reason and "does not exclude zero" in reason
