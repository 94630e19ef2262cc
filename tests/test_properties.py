"""Property tests (hypothesis) of the pure parts: alignment, voting invariances, weight
normalisation, submission order."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ensemble.core.combination import COMBINE_RULES, align, combine
from ensemble.core.outputs import Logits
from ensemble.tasks.classification.task import make_submission

finite = st.floats(-20, 20, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def logits_sets(draw, max_models=4):
    n = draw(st.integers(1, 12))
    c = draw(st.integers(2, 5))
    m = draw(st.integers(1, max_models))
    return [draw(arrays(np.float64, (n, c), elements=finite)) for _ in range(m)]


@settings(max_examples=60, deadline=None)
@given(logits_sets(), st.data())
def test_alignment_undoes_any_label_and_row_permutation(models, data):
    n, c = models[0].shape
    labels = tuple(f"c{j}" for j in range(c))
    ids = np.array([f"r{i}" for i in range(n)], dtype=object)
    permuted = []
    for k, a in enumerate(models):
        cols = data.draw(st.permutations(range(c)))
        rows = data.draw(st.permutations(range(n)))
        permuted.append(Logits(ids[rows], a[rows][:, cols], tuple(labels[j] for j in cols), model=f"m{k}"))
    al = align(permuted, ids=ids, labels=labels)
    for a, b in zip(al.arrays, models):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=60, deadline=None)
@given(logits_sets(), st.sampled_from(("prob", "logit", "geometric", "rank")), st.data())
def test_duplicating_a_model_with_weight_w_equals_one_with_2w(models, rule, data):
    w = np.array([data.draw(st.floats(0.1, 5)) for _ in models])
    doubled = combine(models + [models[0]], np.r_[w, w[0]], rule)
    single = combine(models, np.r_[2 * w[0], w[1:]], rule)
    np.testing.assert_allclose(doubled, single, rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(logits_sets(), st.sampled_from(COMBINE_RULES), st.data(), st.floats(0.1, 100))
def test_uniform_is_order_invariant_and_weights_are_scale_free(models, rule, data, scale):
    order = data.draw(st.permutations(range(len(models))))
    a = combine(models, None, rule)
    b = combine([models[i] for i in order], None, rule)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    w = np.array([data.draw(st.floats(0.1, 5)) for _ in models])
    np.testing.assert_allclose(combine(models, w, rule), combine(models, scale * w, rule), rtol=1e-9, atol=1e-12)
    if rule == "rank" and a.shape[1] > 2:  # scores per class column, in (0, 1); not a distribution
        assert np.all((a > 0) & (a < 1))
    else:  # a distribution (rank over two classes: the two complementary columns)
        np.testing.assert_allclose(a.sum(axis=1), 1.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(2, 4), st.data())
def test_submission_follows_any_sample_order(tmp_path_factory, n, c, data):
    ids = np.array([f"t{i}" for i in range(n)], dtype=object)
    proba = np.random.default_rng(n).dirichlet(np.ones(c), size=n)
    labels = [f"c{j}" for j in range(c)]
    order = data.draw(st.permutations(range(n)))
    sample = tmp_path_factory.mktemp("s") / "sample.csv"
    sample.write_text("id,label\n" + "".join(f"{ids[i]},x\n" for i in order))
    frame = make_submission(ids, proba, labels, sample_submission=sample)
    assert frame["id"].tolist() == [ids[i] for i in order]
    assert frame["label"].tolist() == [labels[proba[i].argmax()] for i in order]
