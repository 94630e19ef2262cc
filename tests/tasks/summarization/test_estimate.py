"""MBR under member weights, the rules fitted on rows and their out-of-fold estimate, against
brute-force loops over the same utilities and qualities."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.core.outputs import Texts
from ensemble.tasks.summarization.estimate import (RULES, LabelledCandidates, candidates_of, estimate_rules, fit_rule,
                                                   oracle, row_folds)
from ensemble.tasks.summarization.rouge import Rouge
from ensemble.tasks.summarization.task import align_texts

from tests.synthetic_members import draw_summaries, noisy_summary


def _members(n=60, keeps=(0.85, 0.6, 0.4), k=2, seed=0):
    rng = np.random.default_rng(seed)
    refs = draw_summaries(n, rng)
    ids = np.array([f"r{i}" for i in range(n)], dtype=object)
    outs = [Texts(ids, [[noisy_summary(r, keep, rng) for _ in range(k)] for r in refs], np.zeros(n * k), None, f"m{m}")
            for m, keep in enumerate(keeps)]
    return outs, refs


@pytest.fixture(scope="module")
def labelled():
    outs, refs = _members()
    return candidates_of(align_texts(outs), refs, tokenizer="whitespace")


def _brute_values(u, mass):
    """Each candidate's weighted mean utility against every candidate, itself included, by loops."""
    return np.array([sum(mass[b] * u[a, b] for b in range(len(mass))) / sum(mass) for a in range(len(mass))])


def test_utilities_and_quality_are_rouge_of_the_pooled_candidates(labelled):
    rouge = Rouge("whitespace")
    i = 7
    texts = labelled.texts[i]
    assert len(texts) == 6 and list(labelled.member_of[i]) == [0, 0, 1, 1, 2, 2]
    for a in range(6):
        for b in range(6):  # the diagonal too: a candidate against itself (3, unless it is empty)
            assert labelled.utility[i][a, b] == pytest.approx(sum(v[2] for v in rouge.pair(texts[a], texts[b]).values()))
    assert labelled.quality[i][0] == pytest.approx(
        sum(v[2] for v in rouge.row(texts[0], [_members()[1][i]]).values()))


@pytest.mark.parametrize("weights", [[1, 1, 1], [5, 1, 0], [0.2, 0.3, 4.0], [0, 0, 1]])
def test_picks_equal_a_brute_force_loop_under_every_weighting(labelled, weights):
    """A member's weight is shared among its candidates on the row, its own weight left out."""
    picks = labelled.picks(np.asarray(weights, dtype=float))
    for i, got in enumerate(picks):
        mem = labelled.member_of[i]
        mass = np.array([weights[m] / np.sum(mem == m) for m in mem], dtype=float)
        v = _brute_values(labelled.utility[i], mass / mass.sum())
        assert v[got] == pytest.approx(v.max(), abs=1e-12), i  # the highest
        tied = np.flatnonzero(v >= v.max() - 1e-9)
        assert mass[got] == mass[tied].max(), i  # of those tied, one with the most weight


def test_rules_fit_what_they_say(labelled):
    q = labelled.member_quality()
    assert q[0] > q[1] > q[2]  # the synthetic members keep fewer words in turn
    assert np.allclose(fit_rule(labelled, "uniform").weights, 1 / 3)
    assert np.allclose(fit_rule(labelled, "score").weights, q / q.sum())
    best = fit_rule(labelled, "best")
    assert list(best.weights) == [1, 0, 0]
    first = [labelled.first(i, 0) for i in range(len(labelled))]
    assert list(best.choose(labelled)) == first  # the best member's own first candidate, no MBR
    for rule in ("select", "optimize"):
        w = fit_rule(labelled, rule).weights
        assert w.sum() == pytest.approx(1) and (w >= 0).all()
        fitted = labelled.scored(fit_rule(labelled, rule).choose(labelled), np.arange(len(labelled))).mean()
        uniform = labelled.scored(labelled.picks(np.ones(3)), np.arange(len(labelled))).mean()
        if rule == "optimize":  # uniform is the first weighting it tries
            assert fitted >= uniform - 1e-12


def test_estimates_are_out_of_fold_against_the_best_member_chosen_out_of_fold(labelled):
    est = estimate_rules(labelled, RULES, folds=5, seed=3)
    fold = row_folds(len(labelled), 5, 3)
    rows = np.arange(len(labelled))
    for rule in RULES:
        by_hand = np.empty(len(labelled))
        for k in range(5):
            held, train = rows[fold == k], rows[fold != k]
            by_hand[held] = labelled.scored(fit_rule(labelled, rule, train, seed=3).choose(labelled, held), held)
        e = est[rule]
        assert e.score == pytest.approx(by_hand.mean())
        best = est["best"].rows
        assert e.vs_best == pytest.approx((by_hand - best).mean())
        assert e.vs_uniform == pytest.approx((by_hand - est["uniform"].rows).mean())
        assert e.interval[0] < e.score < e.interval[1]
        assert e.apparent == pytest.approx(labelled.scored(fit_rule(labelled, rule, seed=3).choose(labelled), rows).mean())
    assert est["uniform"].vs_uniform == 0 and not est["uniform"].sure_gain_vs_uniform
    assert oracle(labelled).mean() >= max(e.score for e in est.values())  # it reads the references


def test_fitting_needs_references_and_names_its_rules():
    outs, _ = _members(n=10)
    unlabelled = candidates_of(align_texts(outs), tokenizer="whitespace")
    assert isinstance(unlabelled, LabelledCandidates) and unlabelled.quality is None
    assert np.allclose(fit_rule(unlabelled, "uniform").weights, 1 / 3)
    with pytest.raises(EnsembleError, match="fitted on labelled rows"):
        fit_rule(unlabelled, "score")
    with pytest.raises(EnsembleError, match="method must be one of uniform, score, best, select, optimize"):
        fit_rule(unlabelled, "stack")
    with pytest.raises(EnsembleError, match="folds must be between 2"):
        row_folds(10, 11)


def test_refusals_where_the_estimate_or_the_pool_would_be_wrong():
    """A member without a candidate on a row, rows all in one fold, a row id twice: one line each,
    never an estimate fitted on the rows it scores or a pool missing a member."""
    outs, refs = _members(n=6)
    holed = Texts(outs[1].ids, [[] if i == 2 else list(outs[1].texts[i]) for i in range(6)],
                  np.zeros(10), None, "m1")
    with pytest.raises(EnsembleError, match=r"row 'r2': member m1 has no candidate"):
        candidates_of(align_texts([outs[0], holed]), refs, tokenizer="whitespace")
    lc = candidates_of(align_texts(outs), refs, tokenizer="whitespace")
    with pytest.raises(EnsembleError, match="the rows are in 1 fold; an estimate out of fold needs two or more"):
        estimate_rules(lc, ["best"], folds=np.zeros(6))
    twice = Texts(np.array(["r0", "r1", "r0", "r3", "r4", "r5"], dtype=object), [list(t) for t in outs[0].texts],
                  np.zeros(12), None, "m0")
    with pytest.raises(EnsembleError, match="row id 'r0' appears twice"):
        align_texts([twice])


def test_a_fit_keeps_its_rouge_settings_and_the_choice_uses_them():
    """fit_summaries with whitespace tokens and max over references: the fit says so, its weights
    file keeps it, and mbr_summaries chooses with the fit's tokens (another tokenizer is refused)."""
    from ensemble.tasks.summarization.estimate import SummaryFit
    from ensemble.tasks.summarization.vote import fit_summaries, mbr_summaries

    outs, refs = _members(n=30)
    fit = fit_summaries(outs, refs, "optimize", metric="rouge1", tokenizer="whitespace", aggregate="max")
    assert (fit.metric, fit.tokenizer, fit.aggregate) == ("rouge1", "whitespace", "max")
    lc = candidates_of(align_texts(outs), metric="rouge1", tokenizer="whitespace")
    assert mbr_summaries(outs, fit) == [lc.texts[i][c] for i, c in enumerate(fit.choose(lc))]
    with pytest.raises(EnsembleError, match="tokenizer 'morphemes': the fit was fitted with tokenizer 'whitespace'"):
        mbr_summaries(outs, fit, tokenizer="morphemes")


def test_one_member_weighted_alone_submits_its_own_choice(labelled):
    """Standard MBR counts a candidate against itself: a member weighted alone submits its own
    candidates' MBR choice, never another member's text."""
    for m in range(3):
        picks = labelled.picks(np.eye(3)[m])
        assert all(labelled.member_of[i][c] == m for i, c in enumerate(picks))  # ties go to the weight


def test_the_pools_of_some_members_are_sliced_as_computed():
    """of_members (the report's members that are not optimistic) equals the candidates computed
    over those members alone: texts, members, utilities and quality."""
    outs, refs = _members(n=12)
    lc = candidates_of(align_texts(outs), refs, tokenizer="whitespace")
    sliced, direct = lc.of_members([0, 2]), candidates_of(align_texts([outs[0], outs[2]]), refs, tokenizer="whitespace")
    assert sliced.al.members == direct.al.members == ("m0", "m2") and sliced.texts == direct.texts
    for a, b in zip(sliced.member_of + sliced.utility + sliced.quality, direct.member_of + direct.utility + direct.quality):
        np.testing.assert_allclose(a, b)
    assert lc.of_members([0, 1, 2]) is lc
