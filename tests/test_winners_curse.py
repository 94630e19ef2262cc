"""The winner's curse: picking the best member (a sweep's best trial) on validation, estimated
honestly by selecting on the other folds and scoring the held-out one."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import RepeatedStratifiedKFold

from ensemble.cli.example import synthetic_trials
from ensemble.tasks.classification.weighting import fit_weights
from ensemble.core.errors import EnsembleError
from ensemble.tasks.classification.estimate import cross_validate


def _acc(z, y):
    return float(np.mean(z.argmax(axis=1) == y))


def _ll(z, y):
    lp = z - z.max(axis=1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(axis=1, keepdims=True))
    return float(-lp[np.arange(len(y)), y].mean())


def test_best_and_best_k_pick_by_accuracy_then_log_loss():
    arrays, y = synthetic_trials(300, 6, 0.75, seed=1)
    accs = [_acc(a, y) for a in arrays]
    w = fit_weights(arrays, y, "best").weights
    assert w[int(np.argmax(accs))] == 1.0 and w.sum() == 1.0
    order = sorted(range(6), key=lambda i: (-accs[i], _ll(arrays[i], y)))
    w3 = fit_weights(arrays, y, "best3").weights
    np.testing.assert_allclose(w3[order[:3]], 1 / 3)
    assert np.count_nonzero(w3) == 3
    # an exact accuracy tie goes to the lower log loss
    tied = [arrays[0], arrays[0] * 0.5]
    assert fit_weights(tied, y, "best").weights.tolist() == ([1.0, 0.0] if _ll(arrays[0], y) < _ll(arrays[0] * 0.5, y)
                                                             else [0.0, 1.0])
    with pytest.raises(EnsembleError, match="best7: got 6 models"):
        fit_weights(arrays, y, "best7")


def test_cross_validated_best_equals_selection_on_the_other_folds():
    arrays, y = synthetic_trials(400, 5, 0.7, seed=2)
    est = cross_validate(arrays, y, "best", folds=5, repeats=2, seed=3, metrics=("accuracy",))
    # reference: scikit-learn's folds, the best trial on the training folds, its held-out predictions
    splits = list(RepeatedStratifiedKFold(n_splits=5, n_repeats=2, random_state=3).split(np.zeros(len(y)), y))
    scores = []
    for r in range(2):
        correct = np.zeros(len(y), bool)
        for train, test in splits[r * 5:(r + 1) * 5]:
            pick = min(range(5), key=lambda i: (-_acc(arrays[i][train], y[train]), _ll(arrays[i][train], y[train]), i))
            correct[test] = arrays[pick][test].argmax(axis=1) == y[test]
        scores.append(correct.mean())
    assert est.cross_validated["accuracy"] == pytest.approx(np.mean(scores), abs=1e-12)
    assert est.apparent["accuracy"] == pytest.approx(max(_acc(a, y) for a in arrays))


def test_best_of_equal_trials_is_estimated_near_the_true_mean():
    """12 trials of true accuracy 0.75 on 600 validation rows, 20 sweeps: the apparent best sits
    well above 0.75 (the maximum of 12 noisy scores), the cross-validated estimate near it."""
    apparent, estimated = [], []
    for seed in range(20):
        arrays, y = synthetic_trials(600, 12, 0.75, seed=100 + seed)
        est = cross_validate(arrays, y, "best", folds=5, repeats=1, seed=seed, metrics=("accuracy",))
        apparent.append(est.apparent["accuracy"])
        estimated.append(est.cross_validated["accuracy"])
    sd = np.sqrt(0.75 * 0.25 / 600)  # one trial's validation noise, 0.0177
    assert np.mean(apparent) > 0.75 + 1.2 * sd              # E[max of 12 normals] is 1.63 sd
    assert abs(np.mean(estimated) - 0.75) < 0.5 * sd         # unbiased up to the 20-sweep average's noise
    assert np.mean(apparent) - np.mean(estimated) > 1.0 * sd
