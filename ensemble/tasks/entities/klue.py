"""KLUE-NER's character-tagged TSV (``klue-ner-v1.1_*.tsv``) read as rows of text and entity spans.

The file: a few ``## `` header comments, then one block per sentence, blocks apart by a blank
line; a block starts ``## <guid>\\t<the sentence, entities marked <text:TYPE>>`` and has one
``CHAR\\tTAG`` line per character (a space is a character too), tags in BIO.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.spans import normalise_tags, spans_from_tags

__all__ = ["read_klue_ner", "marked_spans"]

_HEAD = re.compile(r"## (\S+)\t(.*)$")
_MARK = re.compile(r"<(.+?):([A-Z]{2})>")


def read_klue_ner(path: str | os.PathLike):
    """The sentences of a KLUE-NER TSV as a DataFrame: ``id``, ``text`` (the characters joined),
    ``entities`` (``[[start, end, "TYPE"], ...]``, end exclusive, from the tags) and ``tags`` (one
    BIO tag per character). A line that is not ``CHAR\\tTAG`` inside a sentence, or a tag outside
    BIO, is a one-line error naming the file and line."""
    import pandas as pd

    path = Path(path)
    rows, current = [], None
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.rstrip("\n").rstrip("\r")
            head = _HEAD.match(line)
            if head:
                current = {"id": head.group(1), "chars": [], "tags": [], "line": number}
                rows.append(current)
            elif line.startswith("##") or not line:
                current = None if not line else current
            elif current is None:
                raise EnsembleError(f"{path}:{number}: a character line outside a sentence (a sentence starts with "
                                    "'## <id>\\t<text>'); is this a KLUE-NER TSV?")
            else:
                char, tab, tag = line.rpartition("\t")
                if not tab or len(char) != 1:
                    raise EnsembleError(f"{path}:{number}: expected one character, a tab and its tag; got {line!r}")
                current["chars"].append(char)
                current["tags"].append(tag)
    out = []
    for r in rows:
        tags = normalise_tags(r["tags"], where=f"{path}:{r['line']}")
        out.append({"id": r["id"], "text": "".join(r["chars"]),
                    "entities": [list(s) for s in spans_from_tags(tags)], "tags": tags})
    return pd.DataFrame(out, columns=["id", "text", "entities", "tags"])


def marked_spans(marked: str) -> tuple[str, list[list]]:
    """A sentence with its entities marked ``<text:TYPE>`` (KLUE's comment line) as (text,
    ``[[start, end, "TYPE"], ...]``)."""
    text, spans, at = [], [], 0
    for m in _MARK.finditer(marked):
        text.append(marked[at:m.start()])
        start = sum(map(len, text))
        text.append(m.group(1))
        spans.append([start, start + len(m.group(1)), m.group(2)])
        at = m.end()
    text.append(marked[at:])
    return "".join(text), spans
