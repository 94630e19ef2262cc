"""The gold entities of a data file, read and checked row by row: character spans beside a text
column (``[[start, end, "TYPE"], ...]`` or ``{"start", "end", "label"}`` objects, as JSON in a CSV
cell or as lists in JSONL and Parquet), or pre-split words beside one tag per word (the CoNLL
and PII Data Detection shape). Each error is one line naming the file, the row and the fix.
"""

from __future__ import annotations

import json
from typing import Sequence

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.spans import Span, normalise_tags, tags_from_spans

__all__ = ["parse_entities", "read_entities", "read_word_tags", "read_gold"]


def _items(value, where: str) -> list:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:
            raise EnsembleError(f"{where}: entities {value[:40]!r} are not JSON; write them as "
                                '[[start, end, "TYPE"], ...]') from None
    if value is None:
        return []
    if hasattr(value, "tolist"):  # a numpy array from Parquet
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise EnsembleError(f"{where}: entities must be a list of [start, end, \"TYPE\"]; got {type(value).__name__}")
    return list(value)


def parse_entities(value, text: str, *, where: str) -> list[Span]:
    """One row's gold spans, checked against its text: each within it, none overlapping another,
    none on an empty text."""
    spans = []
    for item in _items(value, where):
        if hasattr(item, "tolist"):
            item = item.tolist()
        if isinstance(item, dict) and {"start", "end", "label"} <= set(item):
            start, end, kind = item["start"], item["end"], item["label"]
        elif isinstance(item, (list, tuple)) and len(item) == 3:
            start, end, kind = item
        else:
            raise EnsembleError(f"{where}: entity {item!r} is neither [start, end, \"TYPE\"] nor "
                                '{"start", "end", "label"}')
        if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool) or not str(kind):
            raise EnsembleError(f"{where}: entity {item!r} needs whole-number start and end and a type")
        spans.append((int(start), int(end), str(kind)))
    if spans and not text:
        raise EnsembleError(f"{where}: entities on an empty text; give the row its text, or drop the row")
    tags_from_spans(spans, len(text), where=where)  # within the text, none overlapping
    return sorted(spans)


def read_entities(texts: Sequence[str], values: Sequence, *, path) -> list[list[Span]]:
    """Every row's gold spans (:func:`parse_entities`), the errors naming ``path`` and the row
    (1-based, as a spreadsheet shows it below the header)."""
    return [parse_entities(v, "" if t is None else str(t), where=f"{path}: row {i + 1}")
            for i, (t, v) in enumerate(zip(texts, values))]


def read_word_tags(words: Sequence, tags: Sequence, *, path) -> tuple[list[list[str]], list[list[str]]]:
    """Pre-split words and one tag per word, row by row: as lists (or JSON lists in a CSV), of one
    length, tags read as BIO (:func:`~ensemble.tasks.entities.spans.normalise_tags`)."""
    out_words, out_tags = [], []
    for i, (w, t) in enumerate(zip(words, tags)):
        where = f"{path}: row {i + 1}"
        w, t = [list(map(str, _items(x, where))) for x in (w, t)]
        if len(w) != len(t):
            raise EnsembleError(f"{where}: {len(w)} words and {len(t)} tags; give one tag per word")
        out_words.append(w)
        out_tags.append(normalise_tags(t, where=where))
    return out_words, out_tags


def read_gold(split) -> tuple[list, list[list[Span]]]:
    """A labelled split's units and gold spans: its texts and the character spans of its label
    column; or, for a split of pre-split words (``split.words``), its lists of words and the
    word spans of one tag per word."""
    from ensemble.tasks.entities.spans import spans_from_tags

    if len(split.texts) != 1:
        raise EnsembleError(f"{split.path}: entities are read from one text column; got "
                            f"{', '.join(split.text_columns)}")
    if getattr(split, "words", None) is None:
        texts = ["" if t is None else str(t) for t in split.texts[0]]
        return texts, read_entities(texts, list(split.labels), path=split.path)
    words, tags = read_word_tags(split.word_lists(), list(split.labels), path=split.path)
    return words, [spans_from_tags(t) for t in tags]
