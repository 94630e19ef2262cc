"""Read a labelled or unlabelled split (CSV, TSV, JSONL, Parquet) into ids, texts and labels.

Every cell is read as text (``keep_default_na=False``): an id ``007`` stays ``007``, a comment
that says ``NA`` stays ``NA``. Ids are strings; they are what voting aligns rows by and what the
submission writes back.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ensemble.core.errors import EnsembleError, option
from ensemble.core.options import ALLOWED

log = logging.getLogger(__name__)

__all__ = ['Split', 'load_split', 'open_split', 'load_columns', 'row_of', 'FORMATS', 'encoding_hint']

FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".json": "jsonl",
           ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSION = (".gz", ".bz2", ".zip", ".xz", ".zst")
# The default column names looked for when none is given.
DEFAULT_ID, DEFAULT_TEXT, DEFAULT_LABEL = "id", "text", "label"


@dataclass(frozen=True, eq=False)
class Split:
    """One data file, read.

    Attributes
    ----------
    path : Path
        The file.
    ids : ndarray of str, shape (n,)
        Sample ids (row numbers as strings, ``"0"``..., when the file has no id column).
    texts : tuple of list of str
        One list of n texts, or two for text pairs.
    labels : ndarray of str, shape (n,) or (n, T), or None
        The label column as written (class names, or integers as strings), or T label columns
        (several regression targets, one 0/1 column per label); None when unlabelled.
    id_column, text_columns, label_column
        The columns read; ``id_column`` is None when ids are row numbers; ``label_column`` is the
        first label column (:attr:`label_columns` names them all).
    name : str
        The split's name; default the file name without suffixes (``valid`` for ``valid.csv.gz``).
    """

    path: Path
    ids: np.ndarray
    texts: tuple[list[str], ...]
    labels: np.ndarray | None = None
    id_column: str | None = None
    text_columns: tuple[str, ...] = ("text",)
    label_column: str | None = None
    name: str = ""
    _digest: list = field(default_factory=list, repr=False)
    columns: tuple[str, ...] = ()  # every column of the file, for messages
    missing_label: str | None = None  # the label column asked for, when the file lacks it
    label_columns: tuple[str, ...] = ()  # every label column read (several: targets, 0/1 labels)
    label_sep: str | None = None  # multi-label: the separator of labels joined in one column
    words: str | None = None  # the text column holds pre-split words: a word's "first" sub-token, or their "mean"
    _words: list = field(default_factory=list, repr=False)  # word_lists(), read once
    # summarization: the tokens ROUGE counts and how a row's references are aggregated (read by the
    # task, which alone takes them: Task.split_settings)
    rouge_tokenizer: str | None = None
    rouge_aggregate: str | None = None
    # generation members: the generate settings their forward runs with over this split ([generate],
    # --generate), as sorted (name, value) pairs; not in the digest (the cache key holds them)
    generate: tuple = ()

    def __post_init__(self):
        if not self.name:  # the file name without its suffixes: "valid" for data/valid.csv.gz
            object.__setattr__(self, "name", self.path.name.split(".")[0])
        if not self.label_columns and self.label_column is not None:
            object.__setattr__(self, "label_columns", (self.label_column,))

    def __repr__(self) -> str:
        text = "+".join(self.text_columns)
        label = f"label={self.label_column!r}" if self.labels is not None else "unlabelled"
        return (f"Split({self.name!r}, {str(self.path)!r}, {len(self)} rows, id={self.id_column or 'row number'!r}, "
                f"text={text!r}, {label})")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def digest(self) -> str:
        """BLAKE3 of what the model sees and the rows are named by: the ids and the text
        column(s), in order, and for pre-split words how a word is read (:attr:`words`: its units
        are words, not characters, so outputs and fits over them are of other units). Labels are
        left out: they do not change logits."""
        if not self._digest:
            from blake3 import blake3

            h = blake3(b"ensemble.split/1\0")
            seen = {"ids": self.ids.tolist(), "texts": list(self.texts), **({"words": self.words} if self.words else {})}
            h.update(json.dumps(seen, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
            self._digest.append(h.hexdigest())
        return self._digest[0]

    @property
    def labels_digest(self) -> str | None:
        """BLAKE3 of the label column's name and values, in row order (None when unlabelled): what
        a fit or a score on this split depends on beyond :attr:`digest`."""
        if self.labels is None:
            return None
        from blake3 import blake3

        column = self.label_column if len(self.label_columns) <= 1 else list(self.label_columns)
        return blake3(json.dumps({"column": column, "labels": self.labels.tolist()}, ensure_ascii=False,
                                 separators=(",", ":")).encode("utf-8")).hexdigest()

    def word_lists(self) -> list[list[str]]:
        """The text column read as pre-split words, once: a list of strings per row (a JSON list
        in a CSV; a Python list as pandas writes one is read too); anything else is an error
        naming the file, the row and the column."""
        if not self._words:
            import ast

            out = []
            for row, cell in enumerate(self.texts[0]):
                try:
                    value = json.loads(cell)
                except ValueError:
                    try:
                        value = ast.literal_eval(cell)
                    except (ValueError, SyntaxError, MemoryError, RecursionError):
                        value = None
                if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
                    raise EnsembleError(f"{self.path}: row {row + 1}: column {self.text_columns[0]!r} holds "
                                        f"{cell[:40]!r}, not a list of words; give each row its words as a list of "
                                        "strings (a JSON list in a CSV), or drop words= to read texts")
                out.append(value)
            self._words.append(out)
        return self._words[0]

    def subset(self, rows, name: str | None = None) -> "Split":
        """The rows ``rows`` (indices, in that order) as a split of their own: its digest is that
        of those ids and texts, so logits cached for it are keyed by exactly the rows they cover
        (a fold model's held-out rows)."""
        from dataclasses import replace

        rows = np.asarray(rows, dtype=np.int64)
        return replace(self, ids=self.ids[rows], texts=tuple([t[i] for i in rows] for t in self.texts),
                       labels=None if self.labels is None else self.labels[rows], name=name or self.name, _digest=[],
                       _words=[])

    def require_labels(self, why: str) -> None:
        """Raise a one-line error when the split is unlabelled, naming the label column looked
        for, the file's columns and ``why`` the labels are needed."""
        if self.labels is None:
            wanted = self.missing_label or DEFAULT_LABEL
            cols = f" (columns: {', '.join(self.columns)})" if self.columns else ""
            raise EnsembleError(f"{self.path}: no label column {wanted!r}{cols}; {why}: "
                                f"{option('label', 'COLUMN')} with the column of true labels")

    def label_indices(self, classes: Sequence[str], model: str = "the model",
                      index_order: Sequence[str] | None = None) -> np.ndarray:
        """The labels as indices into ``classes`` (a model's class names in column order).

        A label matches a class name first; failing that, an integer label is taken as a class
        index: into ``index_order`` (the class of each index, when the columns are in another
        order) when given, else into ``classes``. Raises :class:`EnsembleError` naming the first
        label the model does not know.
        """
        from ensemble.core.combination import class_lookup

        self.require_labels("labels are needed here")
        if np.ndim(self.labels) > 1 or len(self.label_columns) > 1:  # one class per row is one column
            cols = ", ".join(map(str, self.label_columns))
            raise EnsembleError(f"{self.path}: {len(self.label_columns)} label columns ({cols}) for a classifier, which "
                                "reads one class per row from one column; with one 0/1 column per label, "
                                "task = \"multi_label\"; with numeric targets, task = \"regression\"")
        order = list(classes) if index_order is None else [str(c) for c in index_order]
        out, row = class_lookup(self.labels, order, digits=True)
        if row is not None and str(self.labels[row]).strip() in PLACEHOLDERS:
            rows = [i + 1 for i, v in enumerate(self.labels) if str(v).strip() in PLACEHOLDERS]
            shown = ", ".join(map(str, rows[:5])) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
            raise EnsembleError(f"{self.path}: {len(rows)} row(s) have no label ({self.labels[row]!r}, a placeholder: "
                                f"row {shown}); this split is scored: fill in their labels or drop those rows")
        if row is not None:
            if _is_fraction(self.labels[row]):
                raise EnsembleError(f"{self.path}: label {self.labels[row]!r} (row {row + 1}) is a number, as a "
                                    f"regression target is, not a class of {model} ({', '.join(classes)}); with "
                                    "regression members, task = \"regression\" (their config.json's problem_type)")
            raise EnsembleError(
                f"{self.path}: label {self.labels[row]!r} (row {row + 1}) is not a class of {model} "
                f"(classes: {', '.join(classes)}); fix the label column or the model's id2label"
            )
        if index_order is not None and list(order) != list(classes):
            position = {c: i for i, c in enumerate(classes)}
            out = np.array([position[order[i]] for i in out], dtype=np.int64)
        return out

    def has_index_labels(self, classes: Sequence[str]) -> bool:
        """Whether some label is read as a class index: an integer that is not a class name."""
        if self.labels is None or all(str(c).lstrip("-").isdigit() for c in classes):
            return False
        names = set(classes)
        return any(v not in names and str(v).lstrip("-").isdigit() for v in self.labels)


def _is_fraction(value) -> bool:
    """A number that is not an integer (``0.73``): a regression target, never a class index."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return False
    return x == x and not float(x).is_integer()


def data_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in _COMPRESSION:
        suffixes.pop()
    fmt = FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise EnsembleError(f"{path}: unknown data format; use .csv, .tsv, .jsonl or .parquet")
    return fmt


def encoding_hint(path: Path) -> str:
    """Why a file is not UTF-8, in words, from its first bytes."""
    head = path.open("rb").read(1 << 16)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return f"it is UTF-16; {option('encoding', 'utf-16')} or re-save it as UTF-8"
    try:
        head.decode("cp949", errors="strict")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 2:  # not just a character cut at the end of the sample
            return f"{option('encoding', 'ENCODING')} with the file's encoding, or re-save it as UTF-8"
    return f"it looks like cp949 (Korean Windows); {option('encoding', 'cp949')}"


QUOTING = ALLOWED["quoting"]
# The split that is only predicted: its label column, if any, is a placeholder and never read.
UNSCORED_SPLIT = "test"
# Label values that mean "no label" in a split that is scored: named as such in the error.
PLACEHOLDERS = ("", "-1", "?", "nan", "NaN", "NA", "N/A", "null", "NULL")


def _read_frame(path: Path, fmt: str, encoding: str | None, quoting: str = "auto"):
    import csv

    import pandas as pd

    enc = encoding or "utf-8-sig"
    try:
        if fmt in ("csv", "tsv"):
            return pd.read_csv(path, sep="," if fmt == "csv" else "\t", dtype=str, keep_default_na=False,
                               encoding=enc, quoting=csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL)
        if fmt == "jsonl":
            return pd.read_json(path, lines=True, dtype=False, encoding=enc)
        try:
            return pd.read_parquet(path)
        except ImportError:
            raise EnsembleError(f"{path}: reading Parquet needs pyarrow; pip install pyarrow") from None
    except FileNotFoundError:
        raise EnsembleError(f"{path}: not found; check the path") from None
    except IsADirectoryError:
        raise EnsembleError(f"{path}: is a folder; pass a data file") from None
    except UnicodeDecodeError:
        if encoding:
            raise EnsembleError(f"{path}: cannot be read as {encoding}; {option('encoding', 'ENCODING')} with the file's "
                                "encoding") from None
        raise EnsembleError(f"{path}: is not UTF-8; {encoding_hint(path)}") from None
    except LookupError:
        raise EnsembleError(f"{path}: unknown encoding {encoding!r}; pass a Python codec name such as cp949") from None
    except pd.errors.EmptyDataError:
        raise EnsembleError(f"{path}: is empty; it needs a header row and data rows") from None
    except (pd.errors.ParserError, ValueError) as e:
        first = str(e).strip().splitlines()[0][:150] if str(e).strip() else type(e).__name__
        fix = "check the file"
        if "EOF inside string" in str(e) and quoting != "none":  # a double quote that never closes
            fix = f"its double quotes are text, not quoting: {option('quoting', 'none')}"
        raise EnsembleError(f"{path}: cannot be parsed as {fmt.upper()} ({first}); {fix}") from None


def _check_rows(frame, path: Path, fmt: str, encoding: str | None, quoting: str) -> None:
    """What pandas reads without a word, said. A row with fewer fields than the header (pandas
    fills them with empty strings) is an error naming it. A quote opened inside a text field makes
    the parser swallow the lines up to the next quote into one text (common in raw TSVs such as
    NSMC): when the parsed rows disagree with the file's lines, a TSV is an error naming the first
    merged row, a CSV (where quoted texts may span lines) a warning; ``quoting="csv"`` accepts
    multi-line fields, ``"none"`` reads quotes as text."""
    import csv

    if fmt not in ("csv", "tsv") or path.suffix.lower() in _COMPRESSION:
        return
    columns = len(frame.columns)
    with open(path, encoding=encoding or "utf-8-sig", errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter="," if fmt == "csv" else "\t",
                            quoting=csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL)
        next(reader, None)
        row = 0
        for record in reader:
            if not record or record == [""]:
                continue  # blank lines, as pandas skips them
            row += 1
            if len(record) < columns:
                raise EnsembleError(f"{path}: row {row} (line {reader.line_num}) has {len(record)} fields, expected "
                                    f"{columns} ({', '.join(map(str, frame.columns))}); fix or drop that row")
        f.seek(0)
        lines = sum(1 for line in f if line.strip("\r\n"))
    if quoting != "auto" or lines - 1 == len(frame):
        return
    values = frame.to_numpy(dtype=object)
    first = next((i for i, row in enumerate(values) if any("\n" in v or "\r" in v for v in row if isinstance(v, str))),
                 None)
    where = "" if first is None else (f"; row {first + 1} (line {first + 2}) spans "
                                      f"{1 + max(str(v).count(chr(10)) for v in values[first])} lines")
    msg = (f"{path}: {lines - 1} lines of data but {len(frame)} rows{where}: a double quote inside a text opens a "
           "quoted field that swallows the lines after it; "
           + option("quoting", "none") + " if quotes are part of the texts, or "
           + option("quoting", "csv") + " if the file has quoted texts that span lines")
    if fmt == "tsv":
        raise EnsembleError(msg)
    log.warning("%s", msg)


def _column(frame, path: Path, name: str, what: str) -> list:
    if name not in frame.columns:
        cols = ", ".join(map(str, frame.columns))
        raise EnsembleError(f"{path}: no {what} column {name!r} (columns: {cols}); {option(what, 'COLUMN')} with one "
                            "of them")
    return frame[name].tolist()


def _plain(v):
    """A cell's nested lists, Parquet arrays and numpy numbers as plain Python, for JSON."""
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v]
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v.item() if isinstance(v, np.generic) else v


def _as_text(values: list, path: Path, column: str) -> list[str]:
    out = []
    for row, v in enumerate(values):
        if v is None or (isinstance(v, float) and v != v):
            raise EnsembleError(f"{path}: column {column!r} is empty in row {row + 1}; fill or drop such rows")
        if isinstance(v, float) and v.is_integer():
            v = int(v)  # a JSON or Parquet label 1.0 is the class 1
        if isinstance(v, (list, tuple, dict, np.ndarray)):  # JSONL or Parquet lists (words, entities): as JSON
            v = json.dumps(_plain(v), ensure_ascii=False)
        out.append(v if isinstance(v, str) else str(v))
    return out


def row_of(ids: Sequence[str], path: str | os.PathLike, fix: str = "ids must be unique") -> dict[str, int]:
    """Each id's row, or a one-line error naming the file and the first id given twice."""
    seen: dict[str, int] = {}
    for row, v in enumerate(ids):
        if v in seen:
            raise EnsembleError(f"{path}: id {v!r} appears in rows {seen[v] + 1} and {row + 1}; {fix}")
        seen[v] = row
    return seen


def load_columns(path: str | os.PathLike, columns: Sequence[str], *, encoding: str | None = None,
                 quoting: str = "auto", what: str = "column") -> tuple[dict[str, list[str]], tuple[str, ...]]:
    """The named columns of a data file as text, and every column the file has: for files that
    are not a split (a folds file) or columns a split does not keep (a group column). A missing
    column, an empty cell or a file without rows is a one-line error naming the file."""
    path = Path(path)
    fmt = data_format(path)
    frame = _read_frame(path, fmt, encoding, quoting)
    frame.columns = [str(c) for c in frame.columns]
    if len(frame.columns) == 0 or len(frame) == 0:
        raise EnsembleError(f"{path}: has no rows; it needs a header row and data rows")
    _check_rows(frame, path, fmt, encoding, quoting)
    return {c: _as_text(_column(frame, path, c, what), path, c) for c in columns}, tuple(frame.columns)


def load_split(
    path: str | os.PathLike,
    id: str | None = None,
    text: str | Sequence[str] | None = None,
    label: str | Sequence[str] | None = None,
    *,
    encoding: str | None = None,
    require_label: bool = False,
    name: str = "",
    label_if_present: bool = False,
    quoting: str = "auto",
    label_sep: str | None = None,
    words: str | None = None,
    rouge_tokenizer: str | None = None,
    rouge_aggregate: str | None = None,
    generate: Mapping | None = None,
) -> Split:
    """Read a data file into a :class:`Split`.

    Parameters
    ----------
    path : path-like
        ``.csv``, ``.tsv``, ``.jsonl`` or ``.parquet`` (optionally compressed, e.g. ``.csv.gz``).
    id : str, optional
        The id column. Default ``"id"`` when the file has one, else row numbers (said in the log).
    text : str or pair of str, optional
        The text column, or two columns for text pairs. Default ``"text"``.
    label : str or sequence of str, optional
        The label column. Default ``"label"`` when the file has one, else unlabelled. Several
        columns (``["cohesion", "syntax"]``: regression targets, or one 0/1 column per label of a
        multi-label task) give ``labels`` of shape (n, T).
    encoding : str, optional
        The text encoding of CSV, TSV and JSONL files. Default UTF-8 (with or without a BOM).
    require_label : bool, default False
        Raise when the split has no label column.
    name : str, optional
        The split's name in outputs. Default: the file name without suffixes.
    quoting : {"auto", "csv", "none"}, default "auto"
        How CSV and TSV fields are quoted. "auto": standard quoting, and an error (a TSV) or a
        warning (a CSV) when the rows parsed disagree with the file's lines, as when a stray
        double quote swallows the lines after it; "csv": standard quoting, texts may span lines;
        "none": double quotes are part of the texts (raw TSVs).
    label_if_present : bool, default False
        Treat a ``label`` column that the file lacks as "unlabelled" instead of an error (a test
        file has no labels): the error comes only where the labels are needed
        (:meth:`Split.label_indices`), naming the column and the file's columns.
    label_sep : str, optional
        Multi-label data: the label column joins each row's labels with this separator
        (``"gender,insult"``); kept with the split for the task to read.
    words : {"first", "mean"}, optional
        The text column holds pre-split words (a list of strings per row: a JSON list in a CSV),
        as CoNLL and PII Data Detection ship them; token classifiers run over them with
        ``is_split_into_words`` and a word takes its first sub-token's outputs, or their mean.
        Kept with the split for the forward and the task to read.
    rouge_tokenizer : {"morphemes", "whitespace", "characters", "rouge_score"}, optional
        Summarization: the tokens ROUGE counts on this split (default morphemes).
    rouge_aggregate : {"mean", "max"}, optional
        Summarization: a row's several references averaged (default) or the best taken.
    generate : mapping, optional
        Generation members: ``generate`` settings (``num_beams``, ``max_new_tokens``, ``prompt``...:
        :class:`~ensemble.inference.forwards.GenerationForward`) their forward runs with over this
        split; checked where a forward takes them.
    """
    path = Path(path)
    if words is not None and words not in ALLOWED["words"]:
        raise EnsembleError(f"{path}: words must be first or mean (a word's first sub-token, or the mean of its "
                            f"sub-tokens), got {words!r}")
    for key, value in (("rouge_tokenizer", rouge_tokenizer), ("rouge_aggregate", rouge_aggregate)):
        if value is not None and value not in ALLOWED[key]:
            raise EnsembleError(f"{key} must be one of {', '.join(ALLOWED[key])}, got {value!r}")
    said = dict(words=words, rouge_tokenizer=rouge_tokenizer, rouge_aggregate=rouge_aggregate,
                generate=tuple(sorted(dict(generate or {}).items())))
    fmt = data_format(path)
    if quoting not in QUOTING:
        raise EnsembleError(f"quoting must be one of {', '.join(QUOTING)}, got {quoting!r}")
    frame = _read_frame(path, fmt, encoding, quoting)
    frame.columns = [str(c) for c in frame.columns]
    if len(frame.columns) == 0:
        raise EnsembleError(f"{path}: is empty; it needs a header row and data rows")
    if len(frame) == 0:
        raise EnsembleError(f"{path}: has a header but no rows")
    _check_rows(frame, path, fmt, encoding, quoting)
    text_columns = (DEFAULT_TEXT,) if text is None else ((text,) if isinstance(text, str) else tuple(text))
    if not 1 <= len(text_columns) <= 2:
        raise EnsembleError(f"{path}: give one text column or two (a text pair), got {len(text_columns)}")
    texts = tuple(_as_text(_column(frame, path, c, "text"), path, c) for c in text_columns)

    if id is None and DEFAULT_ID not in frame.columns:
        ids = np.array([str(i) for i in range(len(frame))], dtype=object)
        id_column = None
        log.info("%s: no %r column; rows are identified by their number (0...%d)", path, DEFAULT_ID, len(frame) - 1)
    else:
        id_column = id or DEFAULT_ID
        ids = np.array(_as_text(_column(frame, path, id_column, "id"), path, id_column), dtype=object)
        row_of(ids, path)

    if label is not None and not isinstance(label, str):
        label = [str(c) for c in label]
        if len(label) == 1:
            label = label[0]
        elif not label or len(set(label)) != len(label):
            raise EnsembleError(f"{path}: label columns must be distinct names, got {label}")
    if isinstance(label, list):
        return replace(_with_label_columns(path, frame, ids, texts, id_column, text_columns, label, name,
                                           require_label, label_if_present), **said)
    missing_label = None
    if (label_if_present or name == UNSCORED_SPLIT) and label is not None and label not in frame.columns:
        missing_label = label  # unlabelled: never a fallback to another column
    if missing_label is not None or (label is None and DEFAULT_LABEL not in frame.columns):
        labels, label_column = None, None
        if require_label:
            cols = ", ".join(frame.columns)
            raise EnsembleError(f"{path}: no label column {missing_label or DEFAULT_LABEL!r} (columns: {cols}); "
                                f"{option('label', 'COLUMN')} with the column of true labels")
    else:
        label_column = label or DEFAULT_LABEL
        labels = np.array(_as_text(_column(frame, path, label_column, "label"), path, label_column), dtype=object)
        if name == UNSCORED_SPLIT and not require_label:  # competitions ship "", -1, ? or 0 there
            log.info("%s: the test split is never fitted or scored, so its label column %r is ignored", path,
                     label_column)
            labels, label_column = None, None
    return Split(path, ids, texts, labels, id_column, text_columns, label_column, name,
                 columns=tuple(frame.columns), missing_label=missing_label, label_sep=label_sep or None, **said)


def _with_label_columns(path, frame, ids, texts, id_column, text_columns, label: list, name: str,
                        require_label: bool, label_if_present: bool) -> Split:
    """A split whose labels are several columns, (n, T): all present, or (a test file, with
    ``label_if_present``) none."""
    absent = [c for c in label if c not in frame.columns]
    common = dict(columns=tuple(frame.columns), label_columns=tuple(label))
    # the test split's label columns are never read: some of them (a placeholder target column) is not an error
    unscored = name == UNSCORED_SPLIT and not require_label
    if absent and not unscored and (require_label or not label_if_present or len(absent) < len(label)):
        cols = ", ".join(map(str, frame.columns))
        raise EnsembleError(f"{path}: no label column {absent[0]!r} (columns: {cols}); {option('label', 'COLUMNS')} "
                            "with the columns of true values")
    if absent or (name == UNSCORED_SPLIT and not require_label):
        if not absent:
            log.info("%s: the test split is never fitted or scored, so its label columns are ignored", path)
        return Split(path, ids, texts, None, id_column, text_columns, None, name, missing_label=label[0],
                     **{**common, "label_columns": ()})
    values = np.array([_as_text(_column(frame, path, c, "label"), path, c) for c in label], dtype=object).T
    return Split(path, ids, texts, values, id_column, text_columns, label[0], name, **common)


def open_split(value, name: str, columns: Mapping):
    """``value`` as a :class:`Split`: itself when it is one, else the file read with ``columns``
    (``id``, ``text``, ``label``...) as split ``name``."""
    if isinstance(value, Split):
        return value
    return load_split(value, name=name, **columns)
