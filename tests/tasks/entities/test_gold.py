"""Gold entities read from data files: every shape competitions use, and every bad row a one-line
error naming the file and the row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.gold import parse_entities, read_entities, read_word_tags


def test_spans_as_lists_objects_json_and_parquet_arrays_read_alike(tmp_path):
    text = "경찰은 서울에서"
    want = [(0, 2, "OG"), (4, 6, "LC")]
    assert parse_entities('[[4, 6, "LC"], [0, 2, "OG"]]', text, where="x") == want
    assert parse_entities([{"start": 0, "end": 2, "label": "OG"}, {"start": 4, "end": 6, "label": "LC"}], text,
                          where="x") == want
    assert parse_entities("", text, where="x") == [] and parse_entities(None, text, where="x") == []
    objects = [[{"start": 0, "end": 2, "label": "OG"}, {"start": 4, "end": 6, "label": "LC"}], []]
    pd.DataFrame({"text": [text, "없음"], "entities": objects}).to_parquet(tmp_path / "d.parquet")
    back = pd.read_parquet(tmp_path / "d.parquet")  # Parquet holds them as structs: numpy arrays of dicts
    assert isinstance(back["entities"][0], np.ndarray)
    assert read_entities(back["text"], back["entities"], path="d.parquet") == [want, []]
    frame = pd.DataFrame({"text": [text, "없음"], "entities": [[[0, 2, "OG"], [4, 6, "LC"]], []]})
    frame.assign(entities=frame["entities"].map(json.dumps)).to_csv(tmp_path / "d.csv", index=False)
    csv = pd.read_csv(tmp_path / "d.csv")
    assert read_entities(csv["text"], csv["entities"], path="d.csv") == [want, []]


@pytest.mark.parametrize("value,text,said", [
    ('[[0, 9, "LC"]]', "서울", "is outside the text (length 2)"),
    ('[[0, 2, "LC"], [1, 2, "OG"]]', "서울", "overlaps another"),
    ('[[0, 1, "LC"]]', "", "entities on an empty text"),
    ("[[0, 1]]", "서울", "is neither [start, end, \"TYPE\"]"),
    ('[["0", 1, "LC"]]', "서울", "needs whole-number start and end"),
    ("[[0, 1, LC]]", "서울", "are not JSON"),
])
def test_bad_spans_are_one_line_errors_naming_file_and_row(value, text, said):
    with pytest.raises(EnsembleError) as e:
        read_entities(["좋음", text], ["[]", value], path="valid.csv")
    assert str(e.value).startswith("valid.csv: row 2: ") and said in str(e.value) and "\n" not in str(e.value)


def test_words_and_their_tags_are_read_as_bio_one_tag_per_word():
    words, tags = read_word_tags([["Kim", "lives", "in", "Seoul"], '["Hi"]'], [["S-PER", "O", "O", "S-LOC"], '["O"]'],
                                 path="train.jsonl")
    assert words == [["Kim", "lives", "in", "Seoul"], ["Hi"]] and tags == [["B-PER", "O", "O", "B-LOC"], ["O"]]
    with pytest.raises(EnsembleError, match=r"^train.jsonl: row 1: 2 words and 1 tags; give one tag per word$"):
        read_word_tags([["a", "b"]], [["O"]], path="train.jsonl")
    with pytest.raises(EnsembleError, match=r"^train.jsonl: row 1: tag 'PER' is not in a known scheme"):
        read_word_tags([["a"]], [["PER"]], path="train.jsonl")
