"""MBR over pooled candidates: the choice equals a brute-force loop over a precomputed utility
matrix; a member's weight is shared by its candidates; ROUGE's utility picks the candidate the
others agree with; an asymmetric utility is computed both ways; members over other rows are
refused."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.core.outputs import Texts
from ensemble.tasks.summarization.estimate import candidates_of
from ensemble.tasks.summarization.mbr import expected_utility, mbr_choice, rouge_utility, utility_matrix
from ensemble.tasks.summarization.task import align_texts
from ensemble.tasks.summarization.vote import mbr_summaries
from ensemble.tasks.summarization.rouge import Rouge


def _brute(u, w):
    """The candidate whose weighted mean utility against every candidate, itself included, is
    highest (the first on ties), by loops."""
    best, arg = -np.inf, None
    for i in range(len(w)):
        e = sum(w[j] * u[i, j] for j in range(len(w))) / sum(w)
        if e > best:
            best, arg = e, i
    return arg, best


def test_the_choice_equals_a_brute_force_loop():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 9))
        u, w = rng.random((n, n)), rng.dirichlet(np.ones(n))
        arg, best = _brute(u, w)
        assert mbr_choice(u, w) == arg  # random utilities do not tie
        assert expected_utility(u, w)[arg] == pytest.approx(best)


def test_ties_go_to_the_candidate_with_the_most_weight():
    """Three candidates whose expected utilities tie exactly: the weightiest wins, whatever its place."""
    u = np.array([[3.0, 1.0, 2.0], [1.0, 3.0, 2.0], [2.0, 2.0, 3.0]])
    later = np.array([[3.0, 2.0, 1.0], [2.0, 3.0, 2.0], [1.0, 2.0, 3.0]])  # the same, the last two swapped
    for u, w, want in ((u, [0.5, 0.5, 0.0], 0), (u, [0.25, 0.5, 0.25], 1), (later, [0.25, 0.25, 0.5], 2)):
        eu = expected_utility(u, np.array(w))
        assert len(np.flatnonzero(np.isclose(eu, eu.max()))) > 1  # a tie
        assert mbr_choice(u, np.array(w)) == want, (w, eu)


def _texts(model, rows):
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    return Texts(np.array([f"r{i}" for i in range(len(rows))]), [list(r) for r in rows],
                 np.zeros(offsets[-1], dtype=np.float32), offsets, model, "test")


def test_a_members_weight_is_shared_by_its_candidates():
    """The pool holds every member's candidates in member order; under a utility that only a
    candidate's own weight scores, the choice is the candidate with the most weight: a member's
    weight split among its candidates."""
    a = _texts("a", [["x", "y"]])
    b = _texts("b", [["z"]])
    own = lambda c, r: float(c == r)  # noqa: E731
    own.symmetric = True
    lc = candidates_of(align_texts([a, b]), utility=own)
    assert lc.texts[0] == ("x", "y", "z") and lc.member_of[0].tolist() == [0, 0, 1]
    assert mbr_summaries([a, b], [1.0, 2.0], utility=own) == ["z"]  # 2/3 against 1/6 each
    assert mbr_summaries([a, b], [3.0, 1.0], utility=own) == ["x"]  # 3/8 each against 1/4
    with pytest.raises(EnsembleError, match="lack row 'r1'"):
        align_texts([_texts("c", [["q"], ["w"]]), a])


def test_rouge_utility_picks_what_the_others_agree_with():
    """Three members: two say much the same, one is off; MBR takes one of the two, and with its
    equal weights the odd member cannot carry its candidate; weighted enough, or alone, it does."""
    agree = "the cat sat on the mat today"
    near = "the cat sat on a mat"
    odd = "stock prices rose sharply in seoul"
    outs = [_texts("m0", [[agree]]), _texts("m1", [[near]]), _texts("m2", [[odd]])]
    utility = rouge_utility(Rouge("whitespace"))
    assert mbr_summaries(outs, utility=utility) in ([agree], [near])
    assert mbr_summaries(outs, [1, 1, 10], utility=utility) == [odd]  # its weight carries it
    for w in ([1, 0, 0], [0, 1, 0], [0, 0, 1]):  # one member weighted alone: its own candidate, never another's
        assert mbr_summaries(outs, w, utility=utility) == [(agree, near, odd)[w.index(1)]]


def test_an_asymmetric_utility_is_computed_both_ways():
    calls = []

    def recall_like(c, r):
        calls.append((c, r))
        return float(len(set(c) & set(r))) / max(len(set(r)), 1)

    u = utility_matrix(["ab", "abc", "b"], recall_like)
    assert len(calls) == 9  # 3 x 2 ordered pairs, and each candidate against itself
    assert u[0, 1] == pytest.approx(2 / 3) and u[1, 0] == pytest.approx(1.0)
    calls.clear()
    recall_like.symmetric = True  # said symmetric: each pair once
    utility_matrix(["ab", "abc", "b"], recall_like)
    assert len(calls) == 6
