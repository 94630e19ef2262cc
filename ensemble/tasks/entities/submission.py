"""The entities submission: each row's spans in the sample submission's format, and the per-unit
probabilities behind them for ``--proba``.

Formats (:data:`FORMATS`):

``spans``
    One JSON list per row, ``[[start, end, "TYPE"], ...]``, end exclusive (what
    :mod:`~ensemble.tasks.entities.gold` reads back).
``tags``
    One tag per character, space separated (KLUE-NER's character tags: a space is ``O``).
``rows``
    A row per unit that is in an entity: ``row_id, document, token, label`` (PII Data
    Detection's format, over pre-split words: ``token`` is the word's index in its document,
    ``label`` its BIO tag), documents in the ids' order, units in order.

With a sample submission of two columns the rows follow its order, its first column is the id
and its second the label column; its format is read off its first non-empty cell unless given.
A sample of four columns is of the ``rows`` format: its column names are used, its rows (a
few documents, for show) are not.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.data.sample_submission import read_sample, sample_order
from ensemble.io.atomic import atomic_write
from ensemble.tasks.entities.spans import Span, tags_from_spans

__all__ = ["FORMATS", "ROW_COLUMNS", "entity_submission", "unit_probabilities", "write_unit_probabilities"]

FORMATS = ("spans", "tags", "rows")
ROW_COLUMNS = ("row_id", "document", "token", "label")


def _cell(spans: Sequence[Span], text: str, fmt: str, where: str) -> str:
    tags = tags_from_spans(spans, len(text), where=where)  # within the text, none overlapping
    if fmt == "tags":
        return " ".join(tags)
    return json.dumps([[int(a), int(b), str(k)] for a, b, k in sorted(spans)], ensure_ascii=False)


def _sample_format(sample, label: str, texts_by_id: dict) -> str:
    """The format of the sample's label column, from its first non-empty cell."""
    for sid, value in zip(sample.iloc[:, 0], sample[label]):
        value = str(value).strip()
        if not value:
            continue
        if value.startswith("["):
            return "spans"
        if len(value.split(" ")) == len(texts_by_id[sid]):
            return "tags"
        break
    raise EnsembleError(f"the sample submission's column {label!r} holds neither JSON span lists nor one tag per "
                        "character; pass the format (spans or tags)")


def entity_submission(ids: Sequence[str], spans: Sequence[Sequence[Span]], texts: Sequence[str], *,
                      sample_submission: str | os.PathLike | None = None, format: str | None = None,
                      id_column: str = "id", label_column: str = "entities"):
    """The submission as a DataFrame (nothing written): a row per id, its spans in ``format``.

    Parameters
    ----------
    ids : sequence of str, shape (n,)
    spans : sequence of list of (start, end, type), length n
        Each row's spans (:func:`~ensemble.tasks.entities.vote.entity_spans`), in ``ids``' order.
    texts : sequence of str (or of lists of words), length n
        The rows' texts: spans are checked to lie inside them, and ``tags`` has one per character
        (per word, for rows given as lists of words).
    sample_submission : path-like, optional
        The competition's sample: its ids must be ``ids`` (as a set); its order, column names and
        (unless ``format`` is given) format are followed.
    format : {"spans", "tags", "rows"}, optional
        Default: the sample's, else ``spans``.
    id_column, label_column : str
        Column names when there is no sample.
    """
    import pandas as pd

    ids, spans, texts = [str(i) for i in ids], list(spans), list(texts)
    if not len(ids) == len(spans) == len(texts):
        raise EnsembleError(f"got {len(ids)} ids, {len(spans)} rows of spans and {len(texts)} texts; give one of each per row")
    if format is not None and format not in FORMATS:
        raise EnsembleError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    order = np.arange(len(ids))
    if sample_submission is not None and format is None and len(read_sample(sample_submission).columns) == 4:
        format = "rows"
    if sample_submission is not None and format != "rows":
        sample, order = sample_order(sample_submission, ids)
        id_column, label_column = sample.columns[0], sample.columns[1]
        if format is None:
            format = _sample_format(sample, label_column, dict(zip(ids, texts)))
    fmt = format or "spans"
    if fmt == "rows":
        if any(isinstance(t, str) for t in texts):
            raise EnsembleError("the rows format (PII Data Detection: a row per word in an entity, its index in its "
                                "document) is over pre-split words, and these rows are texts: give the data as words "
                                "(words = \"first\"), or a sample submission of two columns (id, entities)")
        return _rows_frame(ids, spans, texts, sample_submission)
    cells = [_cell(spans[r], texts[r], fmt, f"row {ids[r]!r}") for r in order]
    frame = pd.DataFrame({id_column: [ids[r] for r in order], label_column: cells})
    frame.attrs["sample_submission"] = None if sample_submission is None else str(sample_submission)
    frame.attrs["format"] = fmt
    return frame


def _rows_frame(ids: list[str], spans: list, texts: list, sample_submission):
    """The ``rows`` format: a row per unit in an entity, its BIO tag; the sample's four column
    names when one is given."""
    import pandas as pd

    columns = ROW_COLUMNS
    if sample_submission is not None:
        columns = tuple(read_sample(sample_submission).columns)
        if len(columns) != 4:
            raise EnsembleError(f"{sample_submission}: the rows format needs a sample of four columns (row id, "
                                f"document, token, label), and it has {len(columns)}; pass another format")
    documents, tokens, labels = [], [], []
    for i, sp, text in zip(ids, spans, texts):
        for k, tag in enumerate(tags_from_spans(sp, len(text), where=f"row {i!r}")):
            if tag != "O":
                documents.append(i)
                tokens.append(k)
                labels.append(tag)
    frame = pd.DataFrame({columns[0]: np.arange(len(labels)), columns[1]: documents, columns[2]: tokens,
                          columns[3]: labels})
    frame.attrs["sample_submission"] = None if sample_submission is None else str(sample_submission)
    frame.attrs["format"] = "rows"
    return frame


def unit_probabilities(ids: Sequence[str], values: np.ndarray, offsets: np.ndarray, tags: Sequence[str]):
    """The ensemble's per-unit probabilities as a long table: a row per (id, unit) with the
    unit's position in its row and a column per tag (NaN where no member covers the unit).

    ``values`` (N, K) and ``offsets`` (n + 1,): row i's units are ``values[offsets[i]:offsets[i + 1]]``
    (:func:`~ensemble.tasks.entities.combination.mean_units` over aligned units)."""
    import pandas as pd

    offsets = np.asarray(offsets, dtype=np.int64)
    values = np.asarray(values)
    if len(offsets) != len(ids) + 1 or offsets[-1] != len(values) or values.shape[1:] != (len(tags),):
        raise EnsembleError(f"got {len(ids)} ids, offsets of {len(offsets)} and values of shape {values.shape} for "
                            f"{len(tags)} tags; offsets must be n + 1 long and end at the values' rows")
    lengths = np.diff(offsets)
    frame = pd.DataFrame({"id": np.repeat(np.asarray(ids, dtype=object), lengths),
                          "position": np.concatenate([np.arange(k) for k in lengths]) if len(lengths) else []})
    for j, t in enumerate(tags):
        frame[t] = values[:, j].astype(np.float32)
    return frame


def write_unit_probabilities(path: str | os.PathLike, frame) -> os.PathLike:
    """``frame`` (:func:`unit_probabilities`) written to Parquet atomically (a temporary file
    beside ``path``, then renamed): a crash leaves the old file or none."""
    return atomic_write(path, lambda p: frame.to_parquet(p, index=False))
