"""KLUE-NER's TSV read as texts and spans: the spans from its character tags equal the ones its
own comment lines mark, sentence by sentence."""

from __future__ import annotations

import re

import pytest

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.klue import _MARK, marked_spans, read_klue_ner

from .conftest import SLICE


def test_the_tags_say_the_entities_the_comment_lines_mark():
    frame = read_klue_ner(SLICE)
    assert len(frame) == 300 and frame["id"].is_unique
    marked = dict(re.findall(r"^## (\S+)\t(.*)$", SLICE.read_text(encoding="utf-8"), flags=re.M))
    agree = malformed = 0
    for row in frame.itertuples():
        assert len(row.tags) == len(row.text)
        text, spans = marked_spans(marked[row.id])
        if "<" in _MARK.sub("", marked[row.id]):  # a mark without its type (<뚝방전설>) in the source
            malformed += 1
            continue
        assert (text, spans) == (row.text, row.entities), row.id
        agree += 1
    assert agree >= 295 and malformed <= 5
    types = {e[2] for row in frame.itertuples() for e in row.entities}
    assert types == {"PS", "LC", "OG", "DT", "TI", "QT"}


def test_a_line_that_is_not_a_character_and_its_tag_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("## klue-ner-x\t<경찰:OG>은\n경\tB-OG\n찰은\tI-OG\n", encoding="utf-8")
    with pytest.raises(EnsembleError) as e:
        read_klue_ner(bad)
    assert str(e.value).startswith(f"{bad}:3: expected one character, a tab and its tag") and "\n" not in str(e.value)
    bad.write_text("## klue-ner-x\t경\n경\tB-PER-X\n", encoding="utf-8")
    assert read_klue_ner(bad)["entities"][0] == [[0, 1, "PER-X"]]  # a type may hold a dash
    bad.write_text("## klue-ner-x\t경\n경\tPER\n", encoding="utf-8")
    with pytest.raises(EnsembleError, match=rf"{re.escape(str(bad))}:1: tag 'PER' is not in a known scheme"):
        read_klue_ner(bad)
