"""``cv`` is resolved in one place, and ``auto`` keeps a fitted method by one rule."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.estimates.resampling import FoldPlan, check_cv, cv_of, fold_plan, sure_gain


def _same(a: FoldPlan, b: FoldPlan) -> bool:
    return len(a.rounds) == len(b.rounds) and all(
        np.array_equal(ta, tb) and np.array_equal(sa, sb)
        for ra, rb in zip(a.rounds, b.rounds) for (ta, sa), (tb, sb) in zip(ra, rb))


def test_check_cv_gives_the_plans_fold_plan_gives():
    y = np.array([0, 1, 2] * 20)
    assert _same(check_cv(5, y, seed=3), fold_plan(None, y, 5, None, 3))
    assert _same(check_cv(4, y, repeats=3), fold_plan(None, y, 4, 3, 0))
    folds = [i % 3 for i in range(len(y))]
    assert _same(check_cv(folds, y), FoldPlan.from_assignment(folds))
    plan = FoldPlan.from_assignment(folds)
    assert check_cv(plan, y) is plan
    assert check_cv(5) == 5 and check_cv(folds) is folds  # without labels: checked only


@pytest.mark.parametrize("bad", [1, 0, True, "5", 2.5, None])
def test_check_cv_refuses_what_is_not_a_resampling(bad):
    with pytest.raises(EnsembleError, match=r"^cv must be K >= 2 \(K-fold cross-validation\), a fold number per row"):
        check_cv(bad)


def test_fold_numbers_must_cover_every_row():
    with pytest.raises(EnsembleError, match=r"got 3 fold numbers for 6 rows"):
        check_cv([0, 1, 0], np.array([0, 1] * 3))


def test_cv_and_its_older_spellings():
    assert cv_of(3, 7, [0, 1]) == 3 and cv_of(None, 7, [0, 1]) == [0, 1] and cv_of(None, 7) == 7 and cv_of() == 5


def test_the_sure_gain_rule():
    assert sure_gain((0.001, 0.02)) and not sure_gain((0.0, 0.02)) and not sure_gain((-0.01, 0.05))


def test_cross_validate_takes_cv_as_it_took_splits():
    from ensemble.tasks.classification.estimate import cross_validate

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    arrays = [rng.normal(size=(90, 3)) + np.eye(3)[y] * s for s in (1.0, 2.0)]
    folds = [i % 3 for i in range(90)]
    a = cross_validate(arrays, y, "optimize", cv=folds)
    b = cross_validate(arrays, y, "optimize", splits=folds)
    assert a.cross_validated == b.cross_validated and a.gain_interval == b.gain_interval
    c = cross_validate(arrays, y, "acc", cv=4, repeats=1)
    d = cross_validate(arrays, y, "acc", folds=4, repeats=1)
    assert c.cross_validated == d.cross_validated
