"""Entity spans, their tags and their scores, against seqeval and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.metrics import f1_score as sk_f1

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.spans import (beta_of, char_macro_f1, entity_scores, entity_types, f_beta,
                                           normalise_tags, spans_from_tags, tags_from_spans, trim_spans)

TYPES = ("PS", "LC", "OG")
TAGS = ["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"]


def _random_tags(rng, n: int) -> list[str]:
    """Tags with every irregularity decoding meets: I- after O, I- of another type, B- after B-."""
    return [TAGS[i] for i in rng.integers(0, len(TAGS), n)]


def _seqeval_spans(tags):
    return [(s, e + 1, k) for k, s, e in get_entities(tags)]


@pytest.mark.parametrize("seed", range(20))
def test_decoding_and_scores_equal_seqeval(seed):
    rng = np.random.default_rng(seed)
    true = [_random_tags(rng, int(rng.integers(1, 30))) for _ in range(25)]
    pred = [[t if rng.random() < 0.7 else TAGS[rng.integers(0, len(TAGS))] for t in row] for row in true]
    for row in true + pred:
        assert spans_from_tags(row) == _seqeval_spans(row)
    s = entity_scores([spans_from_tags(r) for r in true], [spans_from_tags(r) for r in pred])
    assert s["f"] == pytest.approx(f1_score(true, pred))
    assert s["precision"] == pytest.approx(precision_score(true, pred))
    assert s["recall"] == pytest.approx(recall_score(true, pred))
    report = classification_report(true, pred, output_dict=True)
    for kind, row in s["per_type"].items():
        if row["support"]:
            assert row["f"] == pytest.approx(report[kind]["f1-score"]) and row["support"] == report[kind]["support"]
    macro = np.mean([row["f"] for row in s["per_type"].values() if row["support"]])
    assert macro == pytest.approx(f1_score(true, pred, average="macro"))


def test_f_beta_weighs_recall_beta_times_as_much():
    """PII Data Detection scored F5: recall 25 times as heavy as precision in the harmonic mean."""
    assert f_beta(0.5, 0.5, 5) == pytest.approx(0.5)
    assert f_beta(1.0, 0.5, 5) == pytest.approx(26 * 0.5 / (25 + 0.5))
    assert f_beta(0.0, 0.0) == 0.0
    s = entity_scores([[(0, 2, "PS"), (3, 5, "LC")]], [[(0, 2, "PS")]], beta=5)
    assert s["precision"] == 1.0 and s["recall"] == 0.5 and s["f"] == pytest.approx(f_beta(1.0, 0.5, 5))


@pytest.mark.parametrize("name,beta", [("f1", 1.0), ("f5", 5.0), ("F0.5", 0.5), (" f2 ", 2.0)])
def test_metric_names_give_their_beta(name, beta):
    assert beta_of(name) == beta


@pytest.mark.parametrize("name", ["f0", "f", "micro_f1", "f-1", "accuracy", 5])
def test_other_metric_names_are_refused(name):
    with pytest.raises(EnsembleError, match=r"metric must be f<beta>, entity-level micro F-beta: f1 .* got"):
        beta_of(name)


def test_other_schemes_are_read_as_bio_and_unknown_tags_are_refused():
    assert normalise_tags(["S-PS", "B-LC", "E-LC", "O", "U-OG", "B-DT", "I-DT", "L-DT"]) == [
        "B-PS", "B-LC", "I-LC", "O", "B-OG", "B-DT", "I-DT", "I-DT"]
    assert spans_from_tags(normalise_tags(["S-PS", "S-PS", "B-LC", "E-LC"])) == [(0, 1, "PS"), (1, 2, "PS"),
                                                                                (2, 4, "LC")]
    assert entity_types(["O", "B-PS", "I-OG", "S-DT"]) == ["DT", "OG", "PS"]
    for bad in ("PER", "X-PS", "B-", "B_PS"):
        with pytest.raises(EnsembleError, match=rf"train.csv:4: tag '{bad}' is not in a known scheme"):
            normalise_tags(["O", bad], where="train.csv:4")


def test_spans_and_tags_round_trip_and_bad_spans_are_one_line_errors():
    spans = [(0, 2, "PS"), (2, 3, "PS"), (5, 9, "LC")]
    tags = tags_from_spans(spans, 10)
    assert tags == ["B-PS", "I-PS", "B-PS", "O", "O", "B-LC", "I-LC", "I-LC", "I-LC", "O"]
    assert spans_from_tags(tags) == spans  # two entities of one type side by side stay apart
    for bad, said in (([(8, 12, "LC")], "is outside the text (length 10)"), ([(3, 3, "LC")], "is outside"),
                      ([(0, 4, "PS"), (2, 6, "LC")], "overlaps another")):
        with pytest.raises(EnsembleError) as e:
            tags_from_spans(bad, 10, where="valid.jsonl:7")
        assert str(e.value).startswith("valid.jsonl:7: span [") and said in str(e.value)
        assert "\n" not in str(e.value)


def test_whitespace_is_trimmed_from_span_edges():
    text = " 서울 시청 에서"
    assert trim_spans([(0, 3, "LC"), (3, 6, "OG"), (6, 7, "LC")], text) == [(1, 3, "LC"), (4, 6, "OG")]


@pytest.mark.parametrize("seed", range(5))
def test_character_macro_f1_equals_the_klue_baselines_scikit_learn_call(seed):
    """KLUE's baseline: ``f1_score(trues, preds, labels=every tag, average="macro",
    zero_division=True)`` over the pooled characters; a tag no row has counts 1."""
    rng = np.random.default_rng(seed)
    labels = TAGS + ["B-QT", "I-QT"]  # QT: in the label list, in no row
    true = [_random_tags(rng, int(rng.integers(1, 20))) for _ in range(30)]
    pred = [[t if rng.random() < 0.6 else TAGS[rng.integers(0, len(TAGS))] for t in row] for row in true]
    flat_t, flat_p = [x for r in true for x in r], [x for r in pred for x in r]
    expect = sk_f1(flat_t, flat_p, labels=labels, average="macro", zero_division=1)
    assert char_macro_f1(true, pred, labels) == pytest.approx(expect)
