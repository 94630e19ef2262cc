"""Entity F-beta from rows' counts against seqeval; resamples of rows against entity_scores on the
rows drawn; rules and O thresholds fitted out of fold, against the best member chosen out of fold."""

from __future__ import annotations

import numpy as np
import pytest
from seqeval.metrics import f1_score

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.estimate import estimate_methods, resampled_f
from ensemble.tasks.entities.spans import entity_scores, micro_f, row_counts, spans_from_tags, tags_from_spans

from .test_fitting import LENGTH, N, _member, _units

TAGS = ["O", "B-A", "I-A", "B-B", "I-B"]


def _rows(rng, n, length=LENGTH):
    return [spans_from_tags([TAGS[j] for j in rng.integers(0, 5, length)]) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_micro_f_of_row_counts_is_seqeval(seed):
    rng = np.random.default_rng(seed)
    true, pred = _rows(rng, 30), _rows(rng, 30)
    counts = row_counts(true, pred)
    f = float(micro_f(counts.sum(axis=0)))
    as_tags = [[tags_from_spans(r, 12) for r in rows] for rows in (true, pred)]
    assert f == pytest.approx(f1_score(*as_tags))
    assert f == pytest.approx(entity_scores(true, pred)["f"])
    for beta in (0.5, 5.0):
        assert float(micro_f(counts.sum(axis=0), beta)) == pytest.approx(entity_scores(true, pred, beta=beta)["f"])
    assert micro_f(np.zeros(3)) == 0.0  # nothing predicted, nothing true


def test_resamples_are_entity_scores_of_the_rows_drawn():
    rng = np.random.default_rng(7)
    true, pred = _rows(rng, 25), _rows(rng, 25)
    counts = row_counts(true, pred)
    got = resampled_f({"m": counts}, n_resamples=300, seed=3)["m"]
    # the same draws, as rows: resampled_f draws row multiplicities 256 resamples at a time
    draw_rng = np.random.default_rng(3)
    draws = np.vstack([draw_rng.multinomial(25, np.full(25, 1 / 25), size=k) for k in (256, 44)])
    for d, g in zip(draws, got):
        rows = np.repeat(np.arange(25), d)
        assert g == pytest.approx(entity_scores([true[i] for i in rows], [pred[i] for i in rows])["f"])


def test_rules_are_fitted_on_the_other_folds_only():
    """Two members: one right on fold 0's rows only, one right everywhere else. Fold 0 is scored
    with the member the other folds find best, which is wrong there: the estimate pays for the
    choice, as an unseen test set would; the reference (best member out of fold) pays the same."""
    rng = np.random.default_rng(0)
    true = _rows(rng, N)
    wrong = _rows(rng, N)
    fold = np.random.default_rng(5).permutation(N) % 4  # the estimate's folds for seed 5
    good_on_0 = [true[i] if fold[i] == 0 else wrong[i] for i in range(N)]
    good_elsewhere = [wrong[i] if fold[i] == 0 else true[i] for i in range(N)]
    units = _units([_member("on0", good_on_0, 0.9), _member("elsewhere", good_elsewhere, 0.9)], true)
    est = estimate_methods(units, ("best", "uniform", "select"), folds=4, seed=5, n_resamples=200)
    counts = row_counts(true, good_elsewhere)
    assert est["best"].f == pytest.approx(float(micro_f(counts.sum(axis=0))))
    assert est["best"].gain == 0.0 and est["best"].gain_interval == (0.0, 0.0)
    lo, hi = est["best"].interval
    assert lo <= est["best"].f <= hi
    # uniform fits nothing: its estimate is its plain score on every row
    assert est["uniform"].f == pytest.approx(units.score(np.ones(2), np.arange(N)))
    with pytest.raises(EnsembleError, match=r"3 labelled rows cannot be split in 4 folds"):
        estimate_methods(_units([_member("a", true[:3])], true[:3]), folds=4)
    with pytest.raises(EnsembleError, match=r"method must be one of"):
        estimate_methods(units, ("stack",))
    for bad, match in (({"confidence": 1.0}, r"confidence must be a number strictly between 0 and 1; got 1.0"),
                       ({"n_resamples": 0}, r"n_resamples must be an integer >= 1; got 0"),
                       ({"folds": 2.5}, r"folds must be an integer >= 2; got 2.5"),
                       ({"folds": 1}, r"folds must be an integer >= 2; got 1")):
        with pytest.raises(EnsembleError, match=match):
            estimate_methods(units, ("uniform",), **bad)


def test_o_thresholds_are_fitted_inside_the_folds():
    """A type argmax misses (O at 0.6 on its characters): with thresholds the estimate finds it
    on every held-out fold; without, it does not."""
    rng = np.random.default_rng(2)
    true = _rows(rng, N)
    units = _units([_member("m", true, 0.9, o_share={"A": 0.6})], true)
    plain = estimate_methods(units, ("uniform",), folds=4, n_resamples=100)["uniform"]
    tuned = estimate_methods(units, ("uniform",), thresholds=True, folds=4, n_resamples=100)["uniform"]
    assert plain.f < 1 and tuned.f == 1.0 and tuned.gain == pytest.approx(1.0 - plain.f)
