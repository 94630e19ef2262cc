"""Cross-validation folds of a training file: assigned with scikit-learn's splitters, written as
``id,fold`` with a sidecar saying how, and read back as a fold number per row of a split, from
this toolkit's files or any other (the Kaggle convention of a ``kfold`` column included).

Fold k of a K-fold training run is the set of rows model k never saw; everything that fits or
estimates on out-of-fold rows needs the same assignment the models were trained with, so a
folds file is an artifact like a checkpoint: written once, atomically, never overwritten by
accident, and traced back to the training file it splits.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError, cli_face, flag, option

log = logging.getLogger(__name__)

__all__ = ['FOLD_COLUMNS', 'Folds', 'assign_folds', 'check_sidecar', 'fold_table', 'make_folds', 'read_folds', 'training_rows']

# the fold column read when none is named: this toolkit's, then the Kaggle convention's
FOLD_COLUMNS = ("fold", "kfold")
SCHEMA = "ensemble.folds/1"


@dataclass(frozen=True)
class Folds:
    """A fold number per row of a split.

    Attributes
    ----------
    fold : ndarray of int (n,)
        Row i's fold, 0..k-1, in the split's row order.
    k : int
    path : Path or None
        The folds file, when read from one.
    """

    fold: np.ndarray
    k: int
    path: Path | None = None

    def sizes(self) -> np.ndarray:
        """Rows per fold, (k,)."""
        return np.bincount(self.fold, minlength=self.k)


def assign_folds(n: int, k: int = 5, *, labels: Sequence | None = None, groups: Sequence | None = None,
                 seed: int = 0) -> tuple[np.ndarray, str]:
    """A fold number per row with scikit-learn's splitters: stratified by ``labels`` when given,
    and with every group in one fold when ``groups`` are given (``StratifiedKFold``,
    ``StratifiedGroupKFold``, ``KFold`` or ``GroupKFold``, shuffled by ``seed`` where the splitter
    shuffles).

    Returns
    -------
    (fold, splitter)
        The folds, (n,) ints 0..k-1, and the splitter's name.
    """
    from sklearn import model_selection as ms

    if not isinstance(k, (int, np.integer)) or k < 2:
        raise EnsembleError(f"k must be a whole number of folds, 2 or more; got {k!r}")
    if n < k:
        raise EnsembleError(f"{k} folds need at least {k} rows; got {n}")
    if groups is not None:
        distinct = len(set(groups))
        if distinct < k:
            raise EnsembleError(f"{k} folds need at least {k} groups; the group column has {distinct}")
    if labels is not None and groups is not None:
        splitter = ms.StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    elif labels is not None:
        splitter = ms.StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    elif groups is not None:
        splitter = ms.GroupKFold(n_splits=k)
    else:
        splitter = ms.KFold(n_splits=k, shuffle=True, random_state=seed)
    fold = np.full(n, -1, dtype=np.int64)
    y = None if labels is None else np.asarray(labels)
    with warnings.catch_warnings():  # a class rarer than k: make_folds says so, naming the classes
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for i, (_, test) in enumerate(splitter.split(np.zeros((n, 1)), y, groups)):
            fold[test] = i
    return fold, type(splitter).__name__


def make_folds(train: str | os.PathLike, out: str | os.PathLike, k: int = 5, *, id: str | None = None,
               label: str | None = None, group: str | None = None, seed: int = 0, stratify: bool = True,
               encoding: str | None = None, quoting: str = "auto", force: bool = False) -> Folds:
    """Assign the rows of a training file to ``k`` folds and write them to ``out`` as ``id,fold``
    (with ``out.json`` beside it: the training file's digest, k, seed, the columns, the splitter).

    Parameters
    ----------
    train : path-like
        The training file (any format :func:`~ensemble.data.splits.load_split` reads).
    out : path-like
        The folds file to write (``.csv``). An existing one is kept unless ``force``: models
        trained on its folds would no longer match.
    k : int, default 5
    id, label : str, optional
        The id and label columns (default ``id`` and ``label`` when the file has them). Without
        an id column the ids are row numbers.
    group : str, optional
        A column whose values must not span two folds (the same author, document, user...).
    seed : int, default 0
    stratify : bool, default True
        Stratify by the label column (when the file has one).

    Returns
    -------
    Folds
    """
    from ensemble.data.splits import load_columns
    from ensemble.io.atomic import atomic_write, output_lock
    from ensemble.io.hashing import file_digest

    out = Path(out)
    sidecar = out.with_name(out.name + ".json")
    if out.suffix.lower() != ".csv":
        raise EnsembleError(f"{out}: a folds file is written as CSV; name it <something>.csv")
    with output_lock(out):
        if out.exists() and not force:
            raise EnsembleError(f"{out}: exists; {option('force')} to replace it (models trained on its folds would "
                                f"no longer match), or choose another {flag('out')}")
        ids, id_column, labels, label_column = _ids_and_labels(train, id, label, group, encoding, quoting)
        groups = None
        if group is not None:
            groups = load_columns(train, [group], encoding=encoding, quoting=quoting, what="group")[0][group]
            empty = [i for i, g in enumerate(groups) if not str(g).strip()]
            if empty:  # one group of empty cells would put all of those rows in one fold
                raise EnsembleError(f"{train}: {len(empty)} row(s) have an empty {flag('group')} cell in column {group!r} (row "
                                    f"{empty[0] + 1} first); fill them (a row of its own can take its id)")
        labels = labels if stratify else None
        if len(ids) < k:
            raise EnsembleError(f"{k} folds need at least {k} rows; {train} has {len(ids)}")
        if labels is not None:
            counts = {c: n for c, n in zip(*np.unique(labels, return_counts=True))}
            rare = [c for c, n in counts.items() if n < k]
            if rare:
                log.warning("%s: class %s has fewer rows than folds (%d): some folds hold none of it", train,
                            ", ".join(map(str, rare[:5])) + (f" and {len(rare) - 5} more" if len(rare) > 5 else ""), k)
        fold, splitter = assign_folds(len(ids), k, labels=labels, groups=groups, seed=seed)
        meta = {"schema": SCHEMA, "train": str(Path(train)), "train_file_blake3": file_digest(train), "rows": len(ids),
                "k": k, "seed": seed, "id_column": id_column, "label_column": label_column if labels is not None else None,
                "group_column": group, "splitter": splitter, "rows_per_fold": np.bincount(fold, minlength=k).tolist()}

        def write_csv(tmp: Path) -> None:
            import pandas as pd

            pd.DataFrame({"id": ids, "fold": fold}).to_csv(tmp, index=False)

        atomic_write(out, write_csv)
        try:
            meta["folds_file_blake3"] = file_digest(out)  # the file as written: an edit after training is seen
            atomic_write(sidecar, lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8"))
        except BaseException:
            out.unlink(missing_ok=True)  # the pair, or neither
            raise
    log.info("%s: %d rows in %d folds (%s, seed %d): %s rows", out, len(ids), k, splitter, seed,
             ", ".join(map(str, meta["rows_per_fold"])))
    return Folds(fold, k, out)


def _ids_and_labels(path, id, label, group, encoding, quoting):
    """The training file's ids (row numbers without an id column) and labels (None without a
    label column): its texts are not needed, so no text column is."""
    from ensemble.data.splits import load_columns, row_of

    _, columns = load_columns(path, [], encoding=encoding, quoting=quoting)
    id_column = id or ("id" if "id" in columns else None)
    label_column = label or ("label" if "label" in columns else None)
    for column, name in ((id, "id"), (label, "label")):
        if column is not None and column not in columns:
            raise EnsembleError(f"{path}: no column {column!r} (columns: {', '.join(columns)}); pass {flag(name)} with "
                                "one of them")
    wanted = [c for c in (id_column, label_column) if c is not None] or [columns[0]]
    values, _ = load_columns(path, wanted, encoding=encoding, quoting=quoting)
    n = len(values[wanted[0]])
    if id_column is None:
        ids = [str(i) for i in range(n)]
        log.info("%s: no 'id' column; the folds file names rows by their number (0...%d)", path, n - 1)
    else:
        ids = values[id_column]
        row_of(ids, path)
    if group is not None and group == label_column:
        raise EnsembleError(f"{flag('group', repr(group))} is the label column; name the column of groups that must not span "
                            "two folds (an author, a document)")
    return ids, id_column, None if label_column is None else values[label_column], label_column


def read_folds(path: str | os.PathLike, ids: Sequence[str], *, id_column: str | None = None,
               fold_column: str | None = None, encoding: str | None = None) -> Folds:
    """The fold of each row id of a split, from a folds file.

    Parameters
    ----------
    path : path-like
        A folds file: ``id,fold`` as :func:`make_folds` writes, or any table with an id column
        and a fold column, such as a Kaggle ``train_folds.csv`` with its ``kfold`` column.
    ids : sequence of str
        The split's row ids, in its order.
    id_column : str, optional
        Default ``id``.
    fold_column : str, optional
        Default: the first of ``fold``, ``kfold`` the file has.

    Every id of the split must have a fold and every id of the file must be in the split; folds
    are numbered 0..k-1 and none is empty. Anything else is a one-line error naming the file.
    """
    from ensemble.data.splits import load_columns, row_of

    path = Path(path)
    _, columns = load_columns(path, [], encoding=encoding)
    if fold_column is None:
        found = [c for c in FOLD_COLUMNS if c in columns]
        if not found:
            raise EnsembleError(f"{path}: no fold column (looked for {', '.join(FOLD_COLUMNS)}; columns: "
                                f"{', '.join(columns)}); {option('fold_column', 'COLUMN')}")
        fold_column = found[0]
    id_column = id_column or "id"
    for c, name in ((id_column, "folds_id" if cli_face() else "id_column"), (fold_column, "fold_column")):
        if c not in columns:
            raise EnsembleError(f"{path}: no column {c!r} (columns: {', '.join(columns)}); {option(name, 'COLUMN')}")
    values, _ = load_columns(path, [id_column, fold_column], encoding=encoding)
    file_ids, raw = values[id_column], values[fold_column]
    fold = np.empty(len(raw), dtype=np.int64)
    for row, v in enumerate(raw):
        if not (v.isascii() and v.isdigit()):  # "²" is a digit to str.isdigit, not to int()
            raise EnsembleError(f"{path}: row {row + 1} has fold {v!r} in column {fold_column!r}; folds are whole "
                                "numbers 0, 1, ..., k-1")
        fold[row] = int(v)
    where = row_of(file_ids, path, "each row has one fold")
    ids = [str(i) for i in ids]
    missing = [i for i in ids if i not in where]
    if missing:
        raise EnsembleError(f"{path}: {len(missing)} id(s) of the training split have no fold, e.g. "
                            f"{', '.join(map(repr, missing[:3]))}; assign every training row a fold "
                            "(ensemble folds make)")
    known = set(ids)
    extra = [i for i in file_ids if i not in known]
    if extra:
        raise EnsembleError(f"{path}: {len(extra)} id(s) are not in the training split, e.g. "
                            f"{', '.join(map(repr, extra[:3]))}; is it the folds file of another training file?")
    out = fold[[where[i] for i in ids]]
    k = int(out.max()) + 1
    sizes = np.bincount(out, minlength=k)
    if (sizes == 0).any():
        empty = int(np.flatnonzero(sizes == 0)[0])
        raise EnsembleError(f"{path}: fold {empty} has no rows (folds found: 0..{k - 1}); folds are numbered "
                            "0..k-1 with rows in each")
    if k < 2:
        raise EnsembleError(f"{path}: every row is in fold 0; K-fold needs 2 folds or more")
    return Folds(out, k, path)


def check_sidecar(folds: Folds, train: str | os.PathLike) -> str | None:
    """What the folds file's sidecar (``<folds>.json``, written by :func:`make_folds`) says is
    wrong with using it for ``train`` now: another K than the file's, or a training file changed
    since the folds were made (its rows may be others; returned as a warning). Another K is an
    error. None when it agrees, or has no sidecar."""
    from ensemble.io.hashing import file_digest

    if folds.path is None:
        return None
    sidecar = Path(folds.path).with_name(Path(folds.path).name + ".json")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    if isinstance(meta.get("k"), int) and meta["k"] != folds.k:
        raise EnsembleError(f"{folds.path}: holds {folds.k} folds but {sidecar.name} says it was made with "
                            f"k={meta['k']} (edited since?); remake it with ensemble folds make --force")
    edited = f"{folds.path}: edited since it was made ({sidecar.name} records "
    fix = ("the fold models were trained on the folds it held then, so out-of-fold rows would be scored by models "
           "that saw them: restore it, or remake the folds and retrain")
    written = meta.get("folds_file_blake3")
    if written and file_digest(folds.path) != written:
        raise EnsembleError(f"{edited}another digest); {fix}")
    per_fold, held = meta.get("rows_per_fold"), np.bincount(folds.fold, minlength=folds.k).tolist()
    if not written and isinstance(per_fold, list) and meta.get("rows") == len(folds.fold) and per_fold != held:
        raise EnsembleError(f"{edited}{per_fold} rows per fold, it holds {held}); {fix}")
    recorded = meta.get("train_file_blake3")
    if recorded and Path(train).is_file() and file_digest(train) != recorded:
        return (f"{train}: changed since {folds.path} was made from it ({sidecar.name} records another digest); "
                "models trained on those folds may have seen other rows: remake the folds and retrain, or restore "
                "the training file")
    return None


def training_rows(path, id: str | None = None, label: str | None = None, encoding: str | None = None,
                  quoting: str = "auto") -> tuple[list[str], list[str] | None]:
    """A training file's row ids (row numbers without an id column) and labels (None without a
    label column), as :func:`make_folds` reads them."""
    ids, _, labels, _ = _ids_and_labels(path, id, label, None, encoding, quoting)
    return ids, labels


def fold_table(folds: Folds, labels: Sequence[str] | None = None, top: int = 6) -> str:
    """Rows per fold and, with labels, each fold's share of the most frequent classes: what a
    stratified assignment keeps equal."""
    lines = [f"{folds.path or 'folds'}: {len(folds.fold)} rows in {folds.k} folds"]
    sizes = folds.sizes()
    if labels is None:
        lines += [f"  fold {i}: {n} rows" for i, n in enumerate(sizes)]
        return "\n".join(lines)
    labels = np.asarray(labels, dtype=object)
    classes, counts = np.unique(labels, return_counts=True)
    shown = classes[np.argsort(-counts, kind="stable")[:top]]
    lines.append("  " + " " * 18 + "".join(f"{str(c)[:10]:>11}" for c in shown))
    for i, n in enumerate(sizes):
        rows = labels[folds.fold == i]
        shares = [np.mean(rows == c) for c in shown]
        lines.append(f"  fold {i}: {n:>7} rows" + "".join(f"{v:>11.3f}" for v in shares))
    if len(classes) > top:
        lines.append(f"  (the {top} most frequent of {len(classes)} classes)")
    return "\n".join(lines)
