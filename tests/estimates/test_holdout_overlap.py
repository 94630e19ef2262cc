"""A holdout row is a training row when their texts are one input to a tokenizer: equal up to
case, runs of whitespace and Unicode normalisation (every text column), or share an id."""

from __future__ import annotations

import unicodedata
from types import SimpleNamespace

import pytest

from ensemble.estimates.holdout import holdout_overlap

TRAIN = ("경찰은 오늘 발표했다", "The cat sat.")


def _split(texts, ids=None, second=None):
    ids = ids or [f"r{i}" for i in range(len(texts))]
    cols = (list(texts),) if second is None else (list(texts), list(second))
    return SimpleNamespace(texts=cols, ids=ids, id_column="id")


@pytest.mark.parametrize("text,same", [
    ("경찰은 오늘 발표했다", True),
    ("  경찰은   오늘\t발표했다 ", True),  # whitespace
    (unicodedata.normalize("NFD", "경찰은 오늘 발표했다"), True),  # NFD Hangul
    ("THE CAT SAT.", True),  # case
    ("Ｔｈｅ ｃａｔ ｓａｔ．", True),  # full-width forms (NFKC)
    ("The cat sat!", False),
    ("경찰은 내일 발표했다", False),
])
def test_a_holdout_row_is_a_training_row_up_to_case_space_and_unicode_form(text, same):
    train = _split(TRAIN, ids=["t0", "t1"])
    assert holdout_overlap(_split([text], ids=["h0"]), train) == int(same)


def test_every_text_column_and_ids_count():
    train = _split(["a b", "c"], ids=["t0", "t1"], second=["x", "y"])
    holdout = _split(["A  b", "a b", "zzz"], ids=["h0", "h1", "t1"], second=["X", "other", "q"])
    # h0: both columns match row t0; h1: the second column differs; the third shares an id with t1
    assert holdout_overlap(holdout, train) == 2
