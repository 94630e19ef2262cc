"""MBR over pooled candidates: the choice equals a brute-force loop over a precomputed utility
matrix; a member's weight is shared by its candidates; ROUGE's utility picks the candidate the
others agree with; members over other rows are refused."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.core.outputs import Texts
from ensemble.tasks.summarization.mbr import (expected_utility, mbr_choice, mbr_select, pool_candidates,
                                              rouge_utility)
from ensemble.tasks.summarization.rouge import Rouge


def _brute(u, w):
    best, arg = -np.inf, None
    for i in range(len(w)):
        num = den = 0.0
        for j in range(len(w)):
            if j != i:
                num += w[j] * u[i, j]
                den += w[j]
        e = num / den if den > 0 else 0.0
        if e > best:
            best, arg = e, i
    return arg, best


def test_the_choice_equals_a_brute_force_loop():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 9))
        u, w = rng.random((n, n)), rng.dirichlet(np.ones(n))
        arg, best = _brute(u, w)
        assert mbr_choice(u, w) == arg
        assert expected_utility(u, w)[arg] == pytest.approx(best)


def _texts(model, rows):
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    return Texts(np.array([f"r{i}" for i in range(len(rows))]), [list(r) for r in rows],
                 np.zeros(offsets[-1], dtype=np.float32), offsets, model, "test")


def test_a_members_weight_is_shared_by_its_candidates():
    a = _texts("a", [["x", "y"]])
    b = _texts("b", [["z"]])
    pool = pool_candidates([a, b], [1.0, 2.0])[0]
    assert pool.texts == ("x", "y", "z") and pool.members == ("a", "a", "b")
    np.testing.assert_allclose(pool.weights, [1 / 6, 1 / 6, 2 / 3])
    with pytest.raises(EnsembleError, match="other rows"):
        pool_candidates([a, _texts("c", [["q"], ["w"]])])


def test_rouge_utility_picks_what_the_others_agree_with():
    """Three members: two say much the same, one is off; MBR takes one of the two, and with its
    weight the odd member alone cannot carry its candidate."""
    agree = "the cat sat on the mat today"
    near = "the cat sat on a mat"
    odd = "stock prices rose sharply in seoul"
    outs = [_texts("m0", [[agree]]), _texts("m1", [[near]]), _texts("m2", [[odd]])]
    utility = rouge_utility(Rouge("whitespace"))
    assert mbr_select(pool_candidates(outs), utility) in ([agree], [near])
    assert mbr_select(pool_candidates(outs, [1, 1, 10]), utility) != [odd]  # its own weight never votes for it


def test_an_asymmetric_utility_is_computed_both_ways():
    calls = []

    def recall_like(c, r):
        calls.append((c, r))
        return float(len(set(c) & set(r))) / max(len(set(r)), 1)

    outs = [_texts("m0", [["ab"]]), _texts("m1", [["abc"]]), _texts("m2", [["b"]])]
    mbr_select(pool_candidates(outs), recall_like)
    assert len(calls) == 6  # 3 x 2 ordered pairs
