"""Weight rules and O thresholds fitted on labelled rows: each rule against the members' own
entity F-beta, the search rules never below where they start, thresholds found where argmax
misses a type, and nothing read from rows outside the fitting rows."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.core.outputs import Ragged
from ensemble.tasks.entities.combination import align_units
from ensemble.tasks.entities.fitting import GRID, METHODS, LabelledUnits, check_method, fit_rule
from ensemble.tasks.entities.spans import entity_scores, spans_from_tags, tags_from_spans
from ensemble.tasks.entities.vote import entity_spans

TAGS = ("O", "B-A", "I-A", "B-B", "I-B")
N, LENGTH = 40, 12


def _spans(rng, n=N):
    return [spans_from_tags([TAGS[j] for j in rng.integers(0, 5, LENGTH)]) for _ in range(n)]


def _member(name, spans, confidence=0.7, o_share=None):
    """Per-character probabilities: ``confidence`` on the tag of ``spans``, the rest spread; with
    ``o_share`` a type's entity characters give O that share and the tag the rest."""
    index = {t: j for j, t in enumerate(TAGS)}
    rows = []
    for s in spans:
        p = np.full((LENGTH, len(TAGS)), (1 - confidence) / (len(TAGS) - 1))
        for i, t in enumerate(tags_from_spans(s, LENGTH)):
            p[i] = (1 - confidence) / (len(TAGS) - 1)
            p[i, index[t]] = confidence
            if o_share and t != "O" and t[2:] in o_share:
                p[i] = 0
                p[i, 0], p[i, index[t]] = o_share[t[2:]], 1 - o_share[t[2:]]
        rows.append(p)
    return Ragged.from_rows(np.array([f"r{i}" for i in range(len(spans))]), rows, TAGS, name)


def _units(members, gold, beta=1.0):
    return LabelledUnits(align_units(members), ["x" * LENGTH] * len(gold), gold, beta)


def _mixed(rng, gold, right):
    """Spans right on the rows where ``right`` is true, random elsewhere."""
    wrong = _spans(rng, len(gold))
    return [g if r else w for g, w, r in zip(gold, wrong, right)]


@pytest.fixture(scope="module")
def three():
    """Three members, each wrong on a different third of the rows (their majority is right)."""
    rng = np.random.default_rng(0)
    gold = _spans(rng)
    third = np.arange(N) % 3
    members = [_member(f"m{k}", _mixed(rng, gold, third != k), c) for k, c in enumerate((0.7, 0.6, 0.5))]
    return members, gold


def test_member_rules_read_each_members_own_f(three):
    members, gold = three
    units = _units(members, gold)
    texts = ["x" * LENGTH] * N
    singles = [entity_scores(gold, entity_spans([m], texts))["f"] for m in members]
    assert fit_rule(units, "uniform").weights.tolist() == [1, 1, 1]
    np.testing.assert_allclose(fit_rule(units, "f1").weights, singles)
    assert fit_rule(units, "best").weights.tolist() == [float(k == np.argmax(singles)) for k in range(3)]


@pytest.mark.parametrize("beta", [1.0, 5.0])
def test_search_rules_never_score_below_where_they_start(three, beta):
    members, gold = three
    units = _units(members, gold, beta)
    every = np.arange(N)
    best_member = max(units.score(np.eye(3)[m], every) for m in range(3))
    select = fit_rule(units, "select")
    assert (select.weights == np.round(select.weights)).all() and select.weights.max() >= 1
    assert units.score(select.weights, every) >= best_member
    optimize = fit_rule(units, "optimize")
    assert units.score(optimize.weights, every) >= units.score(np.ones(3), every)
    assert units.score(np.ones(3), every) == 1.0  # the majority of three is right on every row


def test_select_keeps_a_member_that_only_adds_noise_out():
    rng = np.random.default_rng(1)
    gold = _spans(rng)
    good = _member("good", _mixed(rng, gold, np.arange(N) % 5 != 0), 0.9)
    noise = _member("noise", _spans(rng), 0.9)
    fit = fit_rule(_units([good, noise], gold), "select")
    assert fit.weights.tolist() == [1.0, 0.0]
    assert fit.to_dict() == {"method": "select", "weights": {"good": 1.0, "noise": 0.0}, "thresholds": None}


def test_o_threshold_found_for_the_type_argmax_misses():
    """Type A's characters give O 0.6: argmax finds no A; the first grid threshold above 0.6
    finds every A. Type B is confident and gets none."""
    rng = np.random.default_rng(2)
    gold = _spans(rng)
    units = _units([_member("m", gold, 0.9, o_share={"A": 0.6})], gold)
    plain = fit_rule(units, "uniform")
    assert plain.thresholds is None and units.score(plain.weights, np.arange(N)) < 1
    fit = fit_rule(units, "uniform", thresholds=True)
    assert fit.thresholds == {"A": min(t for t in GRID if t > 0.6)}
    assert units.score(fit.weights, np.arange(N), fit.thresholds) == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_a_fit_reads_the_fitting_rows_only(three, method):
    """The gold of the other rows replaced: the same fit."""
    members, gold = three
    rows = np.arange(0, N, 2)
    rng = np.random.default_rng(3)
    other = [g if i in set(rows) else s for i, (g, s) in enumerate(zip(gold, _spans(rng)))]
    a = fit_rule(_units(members, gold), method, rows, thresholds=True)
    b = fit_rule(_units(members, other), method, rows, thresholds=True)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.thresholds == b.thresholds


def test_bad_arguments_are_refused(three):
    members, gold = three
    with pytest.raises(EnsembleError, match=r"method must be one of uniform, f1, best, select, optimize; got 'stack'"):
        check_method("stack")
    for bad in (0, "2", True, float("nan")):
        with pytest.raises(EnsembleError, match=r"beta must be a number > 0; got"):
            _units(members, gold, beta=bad)
    with pytest.raises(EnsembleError, match=r"got 39 rows of gold spans and 39 texts for 40 rows of outputs"):
        _units(members, gold[1:])
