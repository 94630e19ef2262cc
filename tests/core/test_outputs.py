"""The payloads of core.outputs: each says its kind, refuses shapes and offsets that disagree
with a message saying which, and gives each row's units or candidates back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ensemble.core.outputs import PAYLOAD_KINDS, Logits, Ragged, Texts


def _ids(n):
    return np.array([f"r{i}" for i in range(n)], dtype=object)


def test_each_payload_says_its_kind():
    lg = Logits(_ids(2), np.zeros((2, 3), np.float32), ("a", "b", "c"))
    rg = Ragged(_ids(1), np.zeros((2, 3), np.float32), np.array([0, 2]), ("a", "b", "c"))
    tx = Texts(_ids(1), (("x",),), np.zeros(1, np.float32))
    assert (lg.kind, rg.kind, tx.kind) == PAYLOAD_KINDS == ("dense", "ragged", "texts")
    # a class attribute, not a field: the constructors' arguments are as before
    assert [f.name for f in dataclasses.fields(Logits)] == ["ids", "values", "labels", "model", "split", "meta"]


def test_ragged_rows_are_the_slices_its_offsets_give():
    values = np.arange(12, dtype=np.float32).reshape(6, 2)
    rg = Ragged(_ids(4), values, np.array([0, 2, 2, 5, 6], dtype=np.int32), ("B", "I"), "m", "valid")
    assert len(rg) == 4 and rg.offsets.dtype == np.int64 and rg.labels == ("B", "I")
    np.testing.assert_array_equal(rg.row(0), values[0:2])
    assert rg.row(1).shape == (0, 2)  # a row of no units
    np.testing.assert_array_equal(rg.row(-1), values[5:6])
    np.testing.assert_array_equal(rg.lengths(), [2, 0, 3, 1])
    assert [r.shape[0] for r in rg.rows()] == [2, 0, 3, 1]
    with pytest.raises(IndexError, match="row 4 out of range"):
        rg.row(4)


def test_ragged_from_rows_concatenates_and_keeps_empty_rows():
    rows = [np.ones((2, 3)), [], np.zeros((1, 3))]
    rg = Ragged.from_rows(_ids(3), rows, ("a", "b", "c"))
    assert rg.values.dtype == np.float32 and rg.values.shape == (3, 3)
    np.testing.assert_array_equal(rg.offsets, [0, 2, 2, 3])
    empty = Ragged.from_rows(_ids(0), [], ("a", "b"))
    assert len(empty) == 0 and empty.values.shape == (0, 2) and list(empty.offsets) == [0]
    with pytest.raises(ValueError, match=r"row 1 has shape \(2, 2\), expected \(len, 3\)"):
        Ragged.from_rows(_ids(2), [np.ones((1, 3)), np.ones((2, 2))], ("a", "b", "c"))


@pytest.mark.parametrize("offsets, message", [
    ([0, 2, 3], r"offsets of shape \(3,\) do not match 3 ids \(expected \(4,\)\)"),
    ([1, 2, 3, 4], "offsets must start at 0, not 1"),
    ([0, 3, 1, 4], r"offsets decrease at row 1 \(3 then 1\)"),
    ([0, 1, 2, 3], "offsets end at 3, but there are 4 rows of values"),
    ([0.0, 1.0, 2.0, 4.0], "offsets must be integers"),
])
def test_ragged_refuses_offsets_that_do_not_fit(offsets, message):
    with pytest.raises(ValueError, match=message):
        Ragged(_ids(3), np.zeros((4, 2), np.float32), np.array(offsets), ("a", "b"))


def test_ragged_refuses_values_of_another_width_or_rank():
    with pytest.raises(ValueError, match=r"values of shape \(4, 3\) do not match 2 labels"):
        Ragged(_ids(1), np.zeros((4, 3), np.float32), np.array([0, 4]), ("a", "b"))
    with pytest.raises(ValueError, match=r"values of shape \(4,\)"):
        Ragged(_ids(1), np.zeros(4, np.float32), np.array([0, 4]), ("a", "b"))
    with pytest.raises(ValueError, match="ids must be a 1-D array"):
        Ragged(np.array([["a"]]), np.zeros((0, 2), np.float32), np.array([0, 0]), ("a", "b"))


def test_texts_give_each_rows_candidates_with_their_scores():
    tx = Texts(_ids(3), [["좋은 하루", "안녕"], [], ["하나"]], np.array([-0.5, -1.25, 0.0], np.float32),
               np.array([0, 2, 2, 3]), "gen", "test")
    assert len(tx) == 3 and tx.texts == (("좋은 하루", "안녕"), (), ("하나",))  # lists kept as tuples
    assert tx.candidates(0) == [("좋은 하루", -0.5), ("안녕", -1.25)]
    assert tx.candidates(1) == [] and tx.candidates(-1) == [("하나", 0.0)]
    with pytest.raises(IndexError):
        tx.candidates(3)


def test_texts_derive_offsets_and_build_from_candidates():
    tx = Texts.from_candidates(_ids(3), [[("a", 1.0)], [], [("b", 2.0), ("", -np.inf)]], "gen", "test", {"k": 1})
    np.testing.assert_array_equal(tx.offsets, [0, 1, 1, 3])
    assert tx.scores.dtype == np.float32 and tx.candidates(2) == [("b", 2.0), ("", -np.inf)]
    assert tx.meta == {"k": 1} and tx.model == "gen"
    assert list(Texts(_ids(0), (), np.zeros(0, np.float32)).offsets) == [0]


@pytest.mark.parametrize("texts, scores, offsets, message", [
    ((("a",),), [1.0, 2.0], None, "1 candidates but 2 scores"),
    ((("a",), ("b",)), [1.0], None, "2 rows of candidates for 1 ids"),
    (("ab",), [1.0, 2.0], None, "row 0 must be a sequence of str"),
    (((1,),), [1.0], None, "row 0 must be a sequence of str"),
    ((("a", "b"),), [1.0, 2.0], [0, 1], r"offsets end at 1, but there are 2 scores"),
    ((("a", "b"),), [1.0, 2.0], [0, 2, 2], r"offsets of shape \(3,\) do not match 1 ids"),
    ((("a",),), [np.nan], None, "a score is NaN"),
])
def test_texts_refuse_what_does_not_fit(texts, scores, offsets, message):
    with pytest.raises(ValueError, match=message):
        Texts(_ids(1), texts, np.array(scores, np.float32), None if offsets is None else np.array(offsets))


def test_texts_refuse_offsets_that_disagree_with_the_rows():
    with pytest.raises(ValueError, match="offsets give row 0 2 candidates, it has 1 texts"):
        Texts(_ids(2), (("a",), ("b", "c")), np.zeros(3, np.float32), np.array([0, 2, 3]))
    with pytest.raises(ValueError, match="scores must be a 1-D array"):
        Texts(_ids(1), (("a",),), np.zeros((1, 1), np.float32))


def test_logits_are_unchanged():
    lg = Logits(_ids(2), np.array([[0.0, 1.0], [2.0, 0.0]], np.float32), ("a", "b"))
    assert len(lg) == 2 and list(lg.predictions()) == [1, 0]
    np.testing.assert_allclose(lg.probabilities().sum(axis=1), 1.0)
    with pytest.raises(ValueError, match=r"logits of shape \(2, 2\) do not match 3 ids and 2 labels"):
        Logits(_ids(3), lg.values, ("a", "b"))
