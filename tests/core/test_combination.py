"""The library functions that take several members' logits align them by class name and row id,
as ``vote`` does, and accept labels as class indices, class names or the labelled Split.

The reference is the same call on logits put in one class order by hand (numpy indexing,
independent of ``ensemble.core.combination.align``); before the fix, a member whose ``id2label`` order
differs was combined column by column and the results differed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ensemble.tasks.classification.weighting import fit_weights
from ensemble.core.combination import combine
from ensemble.core.errors import EnsembleError
from ensemble.core.outputs import Logits
from ensemble.data.splits import Split
from ensemble.tasks.classification.offset_choice import estimate_adjustment
from ensemble.tasks.classification.estimate import cross_validate

CLASSES = ("hate", "none", "offensive")


def _members(n=240, seed=0):
    """Three members in one class order (the reference), the third also in another order and
    another row order (what a user gets from a model trained with another label2id)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    ids = np.array([f"r{i}" for i in range(n)], dtype=object)
    canon = []
    for m, strength in enumerate((0.6, 1.2, 2.0)):
        z = rng.normal(0, 1, (n, 3))
        z[np.arange(n), y] += strength
        canon.append(Logits(ids, z.astype(np.float32), CLASSES, f"m{m}", "valid"))
    order = [2, 0, 1]  # columns: offensive, hate, none
    rows = rng.permutation(n)
    c = canon[2]
    permuted = Logits(ids[rows], c.values[rows][:, order], tuple(CLASSES[i] for i in order), "m2", "valid")
    return canon, [canon[0], canon[1], permuted], y, ids


def test_fit_weights_aligns_members_by_class_name_and_id():
    canon, mixed, y, _ = _members()
    for method in ("acc", "optimize", "select", "stack", "best"):
        want = fit_weights(canon, y, method)
        got = fit_weights(mixed, y, method)
        np.testing.assert_allclose(got.weights, want.weights, atol=1e-9, err_msg=method)
        assert got.apparent == pytest.approx(want.apparent, abs=1e-12), method
        assert got.labels == CLASSES
    # what the misaligned columns gave before the fix: the best member looked worst
    raw = fit_weights([lg.values for lg in mixed], y, "acc")
    assert raw.weights[2] < fit_weights(canon, y, "acc").weights[2] - 0.1


def test_cross_validate_and_estimate_adjustment_align_too():
    canon, mixed, y, _ = _members()
    want = cross_validate(canon, y, "optimize", n_resamples=200)
    got = cross_validate(mixed, y, "optimize", n_resamples=200)
    assert got.cross_validated == pytest.approx(want.cross_validated, abs=1e-12)
    assert got.gain_vs_uniform == pytest.approx(want.gain_vs_uniform, abs=1e-12)
    want_a = estimate_adjustment(canon, y, "acc", kinds=("fit",), n_resamples=200)["fit"]
    got_a = estimate_adjustment(mixed, y, "acc", kinds=("fit",), n_resamples=200)["fit"]
    assert got_a.scores == pytest.approx(want_a.scores, abs=1e-12)
    np.testing.assert_allclose(got_a.adjustment.offsets, want_a.adjustment.offsets, atol=1e-12)


def test_combine_and_predict_proba_align_logits():
    canon, mixed, y, _ = _members()
    np.testing.assert_allclose(combine(mixed), combine([lg.values for lg in canon]), atol=1e-12)
    w = fit_weights(canon, y, "optimize")
    np.testing.assert_allclose(w.predict_proba(mixed), w.predict_proba([lg.values for lg in canon]), atol=1e-12)


def test_labels_as_class_names_or_the_split():
    canon, mixed, y, ids = _members()
    names = np.array([CLASSES[i] for i in y], dtype=object)
    want = fit_weights(canon, y, "optimize")
    np.testing.assert_allclose(fit_weights(mixed, names, "optimize").weights, want.weights, atol=1e-9)
    # a Split: its ids give the row order, its label names the classes
    rows = np.random.default_rng(1).permutation(len(y))
    split = Split(Path("valid.csv"), ids[rows], (["t"] * len(y),), names[rows])
    np.testing.assert_allclose(fit_weights(mixed, split, "optimize").weights, want.weights, atol=1e-9)
    est = cross_validate(mixed, split, "acc", n_resamples=100)
    ref = cross_validate([lg.values[rows] for lg in canon], y[rows], "acc", n_resamples=100)  # the split's row order
    assert est.cross_validated == pytest.approx(ref.cross_validated, abs=1e-12)


@pytest.mark.parametrize("make, message", [
    (lambda c, y: (c[:2] + [c[2].values], y), "item 2 is an array but item 0 is Logits"),
    (lambda c, y: ([a.values for a in c], np.array([CLASSES[i] for i in y])), "plain arrays without class names"),
    (lambda c, y: (c, np.array(["nope"] * len(y))), "label 'nope' (row 1) is not a class name"),
    (lambda c, y: (c, y.astype(float)), "labels must be class indices in 0..2 or class names"),
    (lambda c, y: (c, y + 1), "labels must be class indices in 0..2, got 1..3"),
    (lambda c, y: (c, y[:-1]), "got 239 labels for 240 validation rows"),
])
def test_bad_labels_and_mixed_inputs_are_one_line_errors(make, message):
    canon, _, y, _ = _members()
    logits, labels = make(canon, y)
    for call in (lambda: fit_weights(logits, labels, "acc"), lambda: cross_validate(logits, labels, "acc")):
        with pytest.raises(EnsembleError) as err:
            call()
        assert message in str(err.value) and "\n" not in str(err.value)


def test_members_with_other_label_sets_are_refused():
    canon, _, y, _ = _members()
    other = Logits(canon[0].ids, canon[0].values, ("a", "b", "c"), "x", "valid")
    with pytest.raises(EnsembleError, match="has labels that differ from m0"):
        fit_weights([canon[0], other], y, "acc")
