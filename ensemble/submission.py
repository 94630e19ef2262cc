"""Write the submission CSV: the sample submission's columns, row order and label format.

A sample with an id column and one label column gets the predicted label in it, as class names,
or as class indices when the sample's column holds integers and the class names are not
integers. A sample whose other columns are the class names gets probabilities. Its ids must be
the test ids, as a set; the rows follow the sample's order. The CSV and a JSON sidecar naming the
weights and cache entries used are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .atomic import atomic_write
from .errors import EnsembleError

__all__ = ["make_submission", "save_submission", "write_submission", "sidecar_path", "sidecar_matches"]

log = logging.getLogger(__name__)


def _is_int(value: str) -> bool:
    return value.lstrip("-").isdigit()


def _read_sample(path: Path):
    import pandas as pd

    try:
        sample = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise EnsembleError(f"{path}: not found; pass the competition's sample submission CSV") from None
    except UnicodeDecodeError:
        from .data import encoding_hint

        hint = encoding_hint(path).split("; ")[0]
        raise EnsembleError(f"{path}: is not UTF-8 ({hint}); re-save the sample submission as UTF-8") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as e:
        raise EnsembleError(f"{path}: cannot be read as a CSV ({type(e).__name__}); check the file") from None
    if len(sample.columns) < 2 or len(sample) == 0:
        raise EnsembleError(f"{path}: a sample submission needs an id column, a label column and rows; "
                            f"got columns {', '.join(sample.columns)} and {len(sample)} rows")
    return sample


def make_submission(
    ids: Sequence[str],
    proba: np.ndarray,
    labels: Sequence[str],
    *,
    sample_submission: str | os.PathLike | None = None,
    proba_columns: bool = False,
    id_column: str = "id",
    label_column: str = "label",
    class_order: Sequence[str] | None = None,
    member_orders: Mapping[str, Sequence[str]] | None = None,
    text_columns: Sequence[str] = (),
):
    """The submission as a DataFrame, checked against the sample submission; nothing written.

    Parameters
    ----------
    ids : sequence of str, shape (n,)
        Test ids, in the order of ``proba``'s rows.
    proba : ndarray, shape (n, C)
        Ensemble probabilities; the prediction is the argmax.
    labels : sequence of str, length C
        Class names in column order.
    sample_submission : path-like, optional
        The competition's sample submission to follow.
    proba_columns : bool, default False
        Add a probability column per class (named by the class).
    id_column, label_column : str
        Column names when there is no sample.
    class_order : sequence of str, optional
        When the sample's label column holds integers: the class of each index. Default: the
        order every member's ``id2label`` agrees on (``member_orders``), never the order in which
        the members happen to be listed; members that disagree are an error asking for it.
    member_orders : mapping of member name to its class names in id2label order, optional
    text_columns : sequence of str
        The test data's text columns: a sample whose label column is one of them is the test file
        given by mistake (its texts would be replaced by classes), and is refused.
    """
    import pandas as pd

    ids = np.asarray(ids, dtype=object)
    labels = [str(c) for c in labels]
    pred = np.asarray(proba).argmax(axis=1)
    if sample_submission is None:
        frame = pd.DataFrame({id_column: ids, label_column: np.asarray(labels, dtype=object)[pred]})
        order = np.arange(len(ids))
    else:
        sample_path = Path(sample_submission)
        sample = _read_sample(sample_path)
        id_col = sample.columns[0]
        sample_ids = sample[id_col].to_numpy(dtype=object)
        position = {v: i for i, v in enumerate(ids)}
        extra = next((v for v in sample_ids if v not in position), None)
        if extra is not None:
            raise EnsembleError(f"{sample_path}: id {extra!r} is not in the test data; the sample and the test "
                                "file must hold the same ids")
        if len(set(sample_ids)) != len(sample_ids):
            raise EnsembleError(f"{sample_path}: an id appears twice; a sample submission lists each test id once")
        if len(sample_ids) != len(ids):
            sample_set = set(sample_ids)
            missing = next(v for v in ids if v not in sample_set)
            raise EnsembleError(f"{sample_path}: test id {missing!r} is missing; the sample and the test file "
                                "must hold the same ids")
        order = np.array([position[v] for v in sample_ids])
        rest = list(sample.columns[1:])
        texts = [c for c in rest if c in set(text_columns)]
        if texts:
            raise EnsembleError(f"{sample_path}: its column {texts[0]!r} is a text column of the test data: this is the "
                                "test file, not a sample submission; pass the competition's sample submission (id and "
                                "label columns), or none")
        frame = sample.copy()
        if set(rest) == set(labels):  # one column per class: probabilities
            for c in rest:
                frame[c] = proba[order, labels.index(c)]
        elif len(rest) == 1:
            target = rest[0]
            as_index = all(_is_int(v) for v in sample[target]) and not all(_is_int(c) for c in labels)
            if as_index:
                index_of = _index_order(labels, class_order, member_orders, sample_path)
                log.info("%s: column %r holds integers; writing class indices (%s)", sample_path, target,
                         ", ".join(f"{i}={c}" for i, c in enumerate(index_of)))
                to_index = np.array([index_of.index(c) for c in labels])
                frame[target] = to_index[pred[order]]
            else:
                frame[target] = np.asarray(labels, dtype=object)[pred[order]]
        else:
            raise EnsembleError(f"{sample_path}: columns {', '.join(rest)} after the id are neither one label column "
                                f"nor one column per class ({', '.join(labels)}); pass a sample with id and label")
    if proba_columns:
        for j, c in enumerate(labels):
            if c not in frame.columns:
                frame[c] = np.asarray(proba)[order, j]
    frame.attrs["sample_submission"] = None if sample_submission is None else str(Path(sample_submission).resolve())
    return frame


def write_submission(ids: Sequence[str], proba: np.ndarray, labels: Sequence[str], *, out: str | os.PathLike,
                     sidecar: Mapping | None = None, **kwargs):
    """Write predictions as a submission CSV and ``<out>.json`` (``sidecar``, provenance);
    returns the DataFrame written. ``kwargs`` go to :func:`make_submission`."""
    return save_submission(make_submission(ids, proba, labels, **kwargs), out, sidecar)


def _index_order(labels, class_order, member_orders, sample_path) -> list[str]:
    """The class of each integer index in a submission: given, or agreed by every member."""
    from .errors import option

    if class_order is not None:
        order = [str(c) for c in class_order]
        if sorted(order) != sorted(labels):
            raise EnsembleError(f"class order {','.join(order)} must name each class of the models once "
                                f"({', '.join(labels)})")
        return order
    orders = {m: tuple(map(str, o)) for m, o in (member_orders or {}).items()}
    if len(set(orders.values())) > 1:
        shown = "; ".join(f"{m}: {','.join(o)}" for m, o in orders.items())
        raise EnsembleError(f"{sample_path}: holds class indices, but the members number their classes differently "
                            f"({shown}); {option('class_order', ','.join(next(iter(orders.values()))))} with the "
                            "order the competition uses")
    return list(next(iter(orders.values()))) if orders else list(labels)


def sidecar_path(out: str | os.PathLike) -> Path:
    """The provenance file beside a submission: ``<out>.json``."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def sidecar_matches(out: str | os.PathLike) -> bool:
    """Whether the sidecar of submission ``out`` records the CSV's current BLAKE3 (it describes
    this very file)."""
    from .hashing import file_digest

    try:
        recorded = json.loads(sidecar_path(out).read_text(encoding="utf-8")).get("blake3")
    except (OSError, ValueError, AttributeError):
        return False
    return Path(out).is_file() and recorded == file_digest(out)


def save_submission(frame, out: str | os.PathLike, sidecar: Mapping | None = None, then=None):
    """Write a DataFrame from :func:`make_submission` and its sidecar, each atomically: the CSV
    first, then ``then()`` (vote writes its weights file there), the sidecar last, so that a
    sidecar never describes a CSV that is not there. When a later step fails, a CSV this call
    created is removed again; a kill between the steps leaves a sidecar whose ``blake3`` does
    not match the CSV, which ``ensemble run`` reports (:func:`sidecar_matches`)."""
    out = Path(out)
    meta = {**dict(sidecar or {}), "rows": len(frame), "columns": list(frame.columns),
            "sample_submission": frame.attrs.get("sample_submission"),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    replaced = out.exists()
    data = frame.to_csv(index=False).encode("utf-8")
    from blake3 import blake3

    meta["blake3"] = blake3(data).hexdigest()  # of the CSV's bytes: a copy can be checked against it
    atomic_write(out, lambda p: p.write_bytes(data))
    try:
        if then is not None:
            then()
        atomic_write(sidecar_path(out), lambda p: p.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8"))
    except BaseException:
        if not replaced:
            out.unlink(missing_ok=True)
        raise
    if replaced:
        log.info("replaced %s", out)
    out_frame = frame.copy()
    out_frame.attrs["path"] = str(out)
    return out_frame
