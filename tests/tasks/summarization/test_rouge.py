"""ROUGE for summaries: equal to ``rouge-score`` on English with its tokenizer (every type, one
reference or several), hand-computed on Korean by whitespace and by morphemes (where
``rouge-score`` gives 0), the competition's formula, and each text counted once."""

from __future__ import annotations

import numpy as np
import pytest
from rouge_score import rouge_scorer

from ensemble.core.errors import EnsembleError
from ensemble.tasks.summarization.rouge import TYPES, Rouge, competition_score, lcs_length

WORDS = "the cat sat on a mat while dog ran to its red ball and we all saw it happen there".split()


def _texts(rng, n, lines=False):
    out = []
    for _ in range(n):
        words = list(rng.choice(WORDS, size=rng.integers(1, 14)))
        if lines and len(words) > 3:
            words.insert(int(rng.integers(1, len(words) - 1)), "\n")
        text = " ".join(words).replace(" \n ", "\n")
        out.append(text.capitalize() + ("." if rng.random() < 0.5 else ""))
    return out


def test_english_equals_rouge_score_for_every_type():
    rng = np.random.default_rng(0)
    preds, refs = _texts(rng, 60, lines=True), _texts(rng, 60, lines=True)
    ours = Rouge("rouge_score", TYPES)
    reference = rouge_scorer.RougeScorer(list(TYPES), use_stemmer=False)
    for p, r in zip(preds, refs):
        got, want = ours.pair(p, r), reference.score(r, p)  # rouge-score: score(target, prediction)
        for t in TYPES:
            assert got[t] == pytest.approx((want[t].precision, want[t].recall, want[t].fmeasure), abs=1e-12), (t, p, r)


def test_several_references_max_equals_score_multi_and_mean_averages():
    rng = np.random.default_rng(1)
    ours = Rouge("rouge_score", ("rouge1", "rouge2", "rougeL"), aggregate="max")
    mean = Rouge("rouge_score", ("rouge1", "rouge2", "rougeL"), aggregate="mean")
    reference = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    for _ in range(30):
        pred, refs = _texts(rng, 1)[0], _texts(rng, 3)
        got, want = ours.row(pred, refs), reference.score_multi(refs, pred)
        for t in ("rouge1", "rouge2", "rougeL"):
            assert got[t][2] == pytest.approx(want[t].fmeasure, abs=1e-12)
        each = [reference.score(r, pred)["rouge2"].fmeasure for r in refs]
        assert mean.row(pred, refs)["rouge2"][2] == pytest.approx(np.mean(each), abs=1e-12)


def test_korean_by_hand_whitespace_and_morphemes():
    pred, ref = "경찰은 범인을 잡았다", "경찰이 범인을 잡았다"
    assert rouge_scorer.RougeScorer(["rouge1"]).score(ref, pred)["rouge1"].fmeasure == 0.0  # the trap
    spaces = Rouge("whitespace", ("rouge1", "rouge2", "rougeL")).pair(pred, ref)
    # [경찰은 범인을 잡았다] vs [경찰이 범인을 잡았다]: 2 of 3 words, 1 of 2 bigrams, an LCS of 2
    assert spaces["rouge1"] == pytest.approx((2 / 3,) * 3) and spaces["rouge2"] == pytest.approx((0.5,) * 3)
    assert spaces["rougeL"] == pytest.approx((2 / 3,) * 3)
    morphemes = Rouge("morphemes", ("rouge1", "rouge2", "rougeL"))
    assert morphemes.counts(pred).tokens == ("경찰", "은", "범인", "을", "잡", "었", "다")
    assert morphemes.counts(ref).tokens == ("경찰", "이", "범인", "을", "잡", "었", "다")
    got = morphemes.pair(pred, ref)
    # 6 of 7 morphemes; bigrams 범인-을, 을-잡, 잡-었, 었-다 of 6; an LCS of 6
    assert got["rouge1"] == pytest.approx((6 / 7,) * 3) and got["rouge2"] == pytest.approx((4 / 6,) * 3)
    assert got["rougeL"] == pytest.approx((6 / 7,) * 3)
    chars = Rouge("characters", ("rouge1",)).pair(pred, ref)["rouge1"]
    assert chars == pytest.approx((8 / 9,) * 3)  # 경찰은범인을잡았다 vs 경찰이범인을잡았다: 8 of 9 characters


def test_the_competition_score_by_hand():
    """Per row R1 + R2 + RL F1, each the mean over the row's references; the mean over rows."""
    preds = ["a b c", "x y"]
    refs = [["a b c", "a b d"], ["z"]]
    # row 1: ref 1 all 1.0; ref 2: R1 2/3, R2 1/2, RL 2/3 -> (1 + 2/3)/2 + (1 + 1/2)/2 + (1 + 2/3)/2; row 2: 0
    row1 = (1 + 2 / 3) / 2 + (1 + 1 / 2) / 2 + (1 + 2 / 3) / 2
    assert competition_score(preds, refs, tokenizer="whitespace") == pytest.approx(row1 / 2)
    with pytest.raises(EnsembleError, match="aggregate mean"):
        competition_score(preds, refs, rouge=Rouge("whitespace", aggregate="max"))


def test_each_text_is_tokenized_once():
    rouge = Rouge("whitespace", ("rouge1", "rougeL"))
    calls = []
    inner = rouge._tokenize
    rouge._tokenize = lambda text: calls.append(text) or inner(text)
    for _ in range(3):
        rouge.row("a b c", ["a b", "b c"])
    assert sorted(calls) == ["a b", "a b c", "b c"]


def test_lcs_and_bad_arguments():
    assert lcs_length("ABCBDAB", "BDCABA") == 4 and lcs_length([], [1]) == 0
    for bad, match in ((dict(tokenizer="jieba"), "rouge_tokenizer must be one of"),
                       (dict(types=("rouge3",)), "ROUGE types must be some of"),
                       (dict(aggregate="median"), "aggregate must be one of")):
        with pytest.raises(EnsembleError, match=match):
            Rouge(**{"tokenizer": "whitespace", **bad})
    with pytest.raises(EnsembleError, match="no reference"):
        Rouge("whitespace").row("a", [])
