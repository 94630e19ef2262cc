"""The procedure layer: a weighting method then an adjustment, fitted as one, and the estimates
cross-validating it on the folds they are given, against hand-written loops."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.tasks.classification.offsets import fit_adjustment
from ensemble.tasks.classification.weighting import fit_weights
from ensemble.core.errors import EnsembleError
from ensemble.tasks.classification.offset_choice import estimate_adjustment
from ensemble.tasks.classification.estimate import cross_validate, select_method
from ensemble.tasks.classification.procedure import AdjustMethod, Procedure, WeightMethod
from ensemble.estimates.resampling import FoldPlan, fold_plan

from tests.tasks.classification.test_estimate import members


def training_folds(n, k, seed):
    """A fold number per row, as K-fold training assigns them (not stratified)."""
    return np.random.default_rng(seed).permutation(np.arange(n) % k)


def test_the_default_plan_is_the_repeated_stratified_one():
    arrays, y = members(240, [1.4, 1.0, 0.5], seed=1)
    plan = FoldPlan.repeated_stratified(y, 4, 2, 3)
    given = cross_validate(arrays, y, "optimize", folds=4, repeats=2, seed=3, splits=plan, n_resamples=200)
    default = cross_validate(arrays, y, "optimize", folds=4, repeats=2, seed=3, n_resamples=200)
    assert given.cross_validated == default.cross_validated
    assert given.gain_interval == default.gain_interval
    assert (given.folds, given.repeats) == (default.folds, default.repeats) == (4, 2)


@pytest.mark.parametrize("method", ["acc", "optimize", "stack"])
def test_cross_validate_on_given_folds_fits_on_the_other_folds(method):
    arrays, y = members(300, [1.5, 1.0, 0.3], seed=0)
    fold = training_folds(len(y), 5, seed=2)
    est = cross_validate(arrays, y, method, splits=fold, n_resamples=200)
    oof = np.empty((len(y), 3))
    for f in range(5):
        train, test = fold != f, fold == f
        w = fit_weights([a[train] for a in arrays], y[train], method, stack_oof=False)
        oof[test] = w.predict_proba([a[test] for a in arrays])
    assert est.cross_validated["accuracy"] == pytest.approx(np.mean(oof.argmax(axis=1) == y), abs=1e-12)
    np.testing.assert_allclose(est.oof_proba, oof, atol=1e-10)
    assert (est.folds, est.repeats) == (5, 1)
    if method == "acc":  # the repeated stratified folds are other folds (optimize: model0 alone in every fold)
        assert not np.allclose(cross_validate(arrays, y, method, n_resamples=200).oof_proba, oof)


def test_estimate_adjustment_on_given_folds_fits_weights_then_offsets_in_each_fold():
    arrays, y = members(400, [1.2, 0.9], seed=4)
    fold = training_folds(len(y), 4, seed=5)
    got = estimate_adjustment(arrays, y, "acc", kinds=("fit",), splits=fold, n_resamples=200)["fit"]
    pred, base = np.empty(len(y), dtype=int), np.empty(len(y), dtype=int)
    for f in range(4):
        train, test = fold != f, fold == f
        w = fit_weights([a[train] for a in arrays], y[train], "acc")
        adj = fit_adjustment(w.predict_proba([a[train] for a in arrays]), y[train], "fit")
        p = w.predict_proba([a[test] for a in arrays])
        pred[test], base[test] = adj.apply(p).argmax(axis=1), p.argmax(axis=1)
    assert got.scores["accuracy"] == pytest.approx(np.mean(pred == y), abs=1e-12)
    assert got.baseline["accuracy"] == pytest.approx(np.mean(base == y), abs=1e-12)


def test_select_method_passes_the_folds_on():
    arrays, y = members(300, [1.5, 1.0, 0.3], seed=0)
    fold = training_folds(len(y), 3, seed=1)
    _, _, estimates = select_method(arrays, y, ["acc"], splits=fold)
    assert estimates["acc"].cross_validated == cross_validate(arrays, y, "acc", splits=fold, metrics=(
        "accuracy", "macro_f1", "log_loss")).cross_validated
    assert estimates["acc"].folds == 3 and estimates["acc"].repeats == 1


def test_a_procedure_fits_the_weights_then_the_adjustment_on_their_probabilities():
    arrays, y = members(300, [1.5, 1.0, 0.3], seed=6)
    proc = Procedure(WeightMethod("optimize", {"temperature": True}), AdjustMethod("fit", metric="macro_f1"))
    fitted = proc.fit(arrays, y, names=["a", "b", "c"])
    w = fit_weights(arrays, y, "optimize", temperature=True)
    adj = fit_adjustment(w.predict_proba(arrays), y, "fit", metric="macro_f1")
    np.testing.assert_allclose(fitted.weights, w.weights)
    np.testing.assert_allclose(fitted.apply(arrays), adj.apply(w.predict_proba(arrays)), atol=1e-12)
    assert fitted.models == ("a", "b", "c") and fitted.adjustment["kind"] == "fit"
    assert Procedure.of("optimize", temperature=True, adjust="fit", adjust_metric="macro_f1") == proc


def test_bad_folds_are_one_line_errors():
    arrays, y = members(60, [1.0, 0.5], seed=0)
    with pytest.raises(EnsembleError, match="got 59 fold numbers for 60 rows"):
        cross_validate(arrays, y, "acc", splits=np.zeros(59, dtype=int))
    with pytest.raises(EnsembleError, match="at least 2 folds, but every row is in fold 0"):
        cross_validate(arrays, y, "acc", splits=np.zeros(60, dtype=int))
    with pytest.raises(EnsembleError, match="one integer fold number per row"):
        cross_validate(arrays, y, "acc", splits=np.linspace(0, 1, 60))
    rows = np.arange(60)
    twice = FoldPlan((((rows[30:], rows[:30]), (rows[:20], rows[20:])),))  # rows 20..29 held out twice
    with pytest.raises(EnsembleError, match="holds row 20 out 2 times"):
        fold_plan(twice, y)
    leaky = FoldPlan((((rows, rows[:30]), (rows[:30], rows[30:])),))  # trains on the rows it holds out
    with pytest.raises(EnsembleError, match="held out from its own training rows"):
        fold_plan(leaky, y)


def test_folds_in_threads_give_the_result_of_a_loop(monkeypatch):
    arrays, y = members(400, [1.5, 1.0, 0.3], seed=4)
    threaded = cross_validate(arrays, y, "stack", n_resamples=200)
    monkeypatch.setenv("ENSEMBLE_FOLD_WORKERS", "1")
    looped = cross_validate(arrays, y, "stack", n_resamples=200)
    np.testing.assert_array_equal(threaded.oof_proba, looped.oof_proba)
    assert threaded.cross_validated == looped.cross_validated
    monkeypatch.setenv("ENSEMBLE_FOLD_WORKERS", "two")
    with pytest.raises(EnsembleError, match="ENSEMBLE_FOLD_WORKERS must be a whole number"):
        cross_validate(arrays, y, "acc", n_resamples=200)


def test_the_adjustments_estimate_reads_the_weights_fitted_in_each_fold(tmp_path, monkeypatch):
    """With a store, the adjustments' estimate on top of a method reuses the weights the method's
    own estimate fitted in each fold (same rows, folds, options): nothing is fitted again in the
    folds, and the figures are those computed without a store."""
    from ensemble.estimates.store import EstimateStore

    arrays, y = members(300, [1.5, 1.0, 0.3], seed=5)
    plain = estimate_adjustment(arrays, y, "stack", kinds=("fit",), n_resamples=200)
    store = EstimateStore(tmp_path / "estimates")
    cross_validate(arrays, y, "stack", n_resamples=200, store=store)
    fits = []
    real = WeightMethod.fit
    monkeypatch.setattr(WeightMethod, "fit", lambda self, *a, **k: fits.append(len(a[1])) or real(self, *a, **k))
    shared = estimate_adjustment(arrays, y, "stack", kinds=("fit",), n_resamples=200, store=store)
    assert fits == [len(y)]  # only the full fit; none in the 10 folds
    assert shared["fit"].scores == plain["fit"].scores and shared["fit"].interval == plain["fit"].interval
    # another option is another fit in every fold
    del fits[:]
    estimate_adjustment(arrays, y, "stack", kinds=("fit",), n_resamples=200, store=store, stack_c=0.5)
    assert len(fits) == 11
