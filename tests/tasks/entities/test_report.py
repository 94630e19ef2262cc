"""The report's pieces: the per-type table against seqeval's per-type scores, confused types and
disagreeing rows on hand-built cases, marked texts."""

from __future__ import annotations

import numpy as np
import pytest
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.report import confused_types, disagreements, mark_spans, type_table
from ensemble.tasks.entities.spans import spans_from_tags, tags_from_spans

TAGS = ["O", "B-A", "I-A", "B-B", "I-B", "B-C", "I-C"]


def test_type_table_is_seqevals_per_type_scores():
    rng = np.random.default_rng(0)
    true = [spans_from_tags([TAGS[j] for j in rng.integers(0, 7, 15)]) for _ in range(40)]
    pred = [spans_from_tags([TAGS[j] for j in rng.integers(0, 7, 15)]) for _ in range(40)]
    table = type_table(true, pred).set_index("type")
    as_tags = [[tags_from_spans(r, 15) for r in rows] for rows in (true, pred)]
    p, r, f, s = precision_recall_fscore_support(*as_tags, average=None)
    np.testing.assert_allclose(table.loc[["A", "B", "C"], ["precision", "recall", "f"]].to_numpy(),
                               np.stack([p, r, f], axis=1))
    assert table.loc[["A", "B", "C"], "support"].tolist() == s.tolist()
    p, r, f, _ = precision_recall_fscore_support(*as_tags, average="micro")
    assert table.loc["all", ["precision", "recall", "f"]].tolist() == pytest.approx([p, r, f])
    assert table.loc["all", "support"] == s.sum()


def test_confused_types_count_overlapping_spans_of_another_type():
    gold = [[(0, 4, "PS"), (6, 9, "LC")], [(0, 3, "PS")], [(2, 5, "OG")]]
    pred = [[(0, 2, "OG"), (2, 4, "PS"), (6, 9, "LC")], [(1, 3, "OG")], [(5, 7, "PS")]]  # (5, 7) touches, no overlap
    assert confused_types(gold, pred) == [("PS", "OG", 2)]
    assert confused_types(gold + [[(0, 1, "LC")]], pred + [[(0, 1, "DT")]], top=1) == [("PS", "OG", 2)]
    with pytest.raises(EnsembleError, match="got 2 rows of predicted spans for 3 rows of gold ones"):
        confused_types(gold, pred[:2])


def test_mark_spans():
    assert mark_spans("경찰은 서울에서", [(4, 6, "LC"), (0, 2, "OG")]) == "[경찰]OG은 [서울]LC에서"
    assert mark_spans("abc", []) == "abc"
    with pytest.raises(EnsembleError, match="lies outside the text of 3 characters"):
        mark_spans("abc", [(2, 5, "A")])


def test_rows_where_members_disagree_most_come_first():
    texts = ["aaaa", "bbbb", "cccc"]
    members = {"x": [[(0, 2, "A")], [(0, 2, "A")], [(0, 1, "A"), (2, 3, "B")]],
               "y": [[(0, 2, "A")], [(0, 2, "B")], [(0, 1, "A")]]}
    got = disagreements(members, texts, ids=["r0", "r1", "r2"])
    assert [(d["id"], d["disagreement"]) for d in got] == [("r1", 1.0), ("r2", 0.5)]  # r0: they agree
    assert got[0]["marked"] == {"x": "[bb]Abb", "y": "[bb]Bbb"}
    assert disagreements(members, texts, top=1)[0]["id"] == "1"
    with pytest.raises(EnsembleError, match="y: 2 rows of spans for 3 texts"):
        disagreements({"x": members["x"], "y": members["y"][:2]}, texts)
    with pytest.raises(EnsembleError, match="2 ids for 3 texts; give one id per text"):
        disagreements(members, texts, ids=["r0", "r1"])
