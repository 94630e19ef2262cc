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


def test_the_documented_one_liner_converts_the_tsv_to_what_the_cli_reads(tmp_path):
    """docs/commands.md's one-liner, run as written on the slice: its JSONL reads back (the
    label column ``entities``) as the same texts and spans read_klue_ner gives."""
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    from ensemble.data.splits import load_split
    from ensemble.tasks.entities.gold import read_gold

    docs = (Path(__file__).resolve().parents[3] / "docs" / "commands.md").read_text(encoding="utf-8")
    line = re.search(r"^python -c .*read_klue_ner.*$", docs, flags=re.M).group(0)
    argv = shlex.split(line)
    argv[0] = sys.executable
    argv[-2:] = [str(SLICE), str(tmp_path / "valid.jsonl")]
    subprocess.run(argv, check=True)
    split = load_split(tmp_path / "valid.jsonl", label="entities")
    texts, spans = read_gold(split)
    expected = read_klue_ner(SLICE)
    assert texts == list(expected["text"]) and list(split.ids) == list(expected["id"])
    assert spans == [[tuple(e) for e in row] for row in expected["entities"]]
