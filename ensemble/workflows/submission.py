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

from ensemble.core.errors import EnsembleError, option
from ensemble.io.atomic import atomic_write
from ensemble.io.hashing import file_digest

log = logging.getLogger(__name__)

__all__ = ['save_submission', 'write_submission', 'sidecar_path', 'sidecar_matches', 'free_name',
           'refuse_other_procedure', 'procedure_of', 'point_latest', 'latest_submission', 'LATEST']








def write_submission(ids: Sequence[str], proba: np.ndarray, labels: Sequence[str], *, out: str | os.PathLike,
                     sidecar: Mapping | None = None, task=None, **kwargs):
    """Write predictions as a submission CSV and ``<out>.json`` (``sidecar``, provenance);
    returns the DataFrame written. ``kwargs`` go to the task's submission format
    (:meth:`~ensemble.tasks.base.Task.submission`; default: single-label classification,
    :func:`~ensemble.tasks.classification.task.make_submission`)."""
    from ensemble.tasks import DEFAULT_TASK

    task = task or DEFAULT_TASK
    return save_submission(task.submission(ids, proba, labels, **kwargs), out, sidecar)




def sidecar_path(out: str | os.PathLike) -> Path:
    """The provenance file beside a submission: ``<out>.json``."""
    out = Path(out)
    return out.with_name(out.name + ".json")


def sidecar_matches(out: str | os.PathLike) -> bool:
    """Whether the sidecar of submission ``out`` records the CSV's current BLAKE3 (it describes
    this very file)."""

    try:
        recorded = json.loads(sidecar_path(out).read_text(encoding="utf-8")).get("blake3")
    except (OSError, ValueError, AttributeError):
        return False
    return Path(out).is_file() and recorded == file_digest(out)


def save_submission(frame, out: str | os.PathLike, sidecar: Mapping | None = None, then=None, pointer: bool = False):
    """Write a DataFrame from :func:`make_submission` and its sidecar, each atomically: the CSV
    first, then ``then()`` (vote writes its weights file there), the sidecar last, so that a
    sidecar never describes a CSV that is not there. When a later step fails, a CSV this call
    created is removed again; a kill between the steps leaves a sidecar whose ``blake3`` does
    not match the CSV, which ``ensemble run`` reports (:func:`sidecar_matches`). ``pointer``: then
    point ``latest.json`` beside it at it (:func:`point_latest`)."""
    out = Path(out)
    meta = {**dict(sidecar or {}), "rows": len(frame), "columns": list(frame.columns),
            "sample_submission": frame.attrs.get("sample_submission"),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    replaced = out.exists()
    before = procedure_of(out) if replaced else None
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
    if replaced and before is None:
        log.info("replaced %s (it had no sidecar: no vote wrote it)", out)
    elif replaced and before != meta.get("procedure"):  # never said of a rewrite of its own
        log.info("replaced %s, the submission of another procedure", out)
    if pointer:
        try:
            point_latest(out, meta)
        except OSError as e:  # the set is written and whole; only the pointer to it is not
            log.warning("%s: could not be written (%s); the submission is %s", Path(out).parent / LATEST, e, out)
    out_frame = frame.copy()
    out_frame.attrs["path"] = str(out)
    return out_frame


LATEST = "latest.json"


def point_latest(out: Path, meta: Mapping) -> Path:
    """``latest.json`` beside the submission ``out``: which file the last vote wrote there, its
    headline and its CSV's BLAKE3 (the one file to submit, however many earlier votes lie beside
    it); written atomically. :func:`latest_submission` reads it back, checked."""
    pointer = Path(out).parent / LATEST
    doc = {"submission": Path(out).name, "headline": meta.get("headline"), "blake3": meta.get("blake3"),
           "created_utc": meta.get("created_utc")}
    atomic_write(pointer, lambda p: p.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8"))
    return pointer


def latest_submission(folder: str | os.PathLike) -> Path:
    """The submission ``folder/latest.json`` points at, checked to be the file it was when
    written (its BLAKE3); a one-line error when there is none or it changed since."""
    pointer = Path(folder) / LATEST
    try:
        doc = json.loads(pointer.read_text(encoding="utf-8"))
        out = pointer.parent / doc["submission"]
    except (OSError, ValueError, KeyError, TypeError):
        raise EnsembleError(f"{pointer}: no readable pointer to the last submission; run ensemble vote (or "
                            "ensemble run) to write one") from None
    if not out.is_file() or file_digest(out) != doc.get("blake3"):
        raise EnsembleError(f"{pointer}: points at {out.name}, which is missing or changed since it was written; "
                            "run the vote again")
    return out


def procedure_of(out: Path) -> dict | None:
    """The procedure recorded in ``out``'s sidecar (None: no sidecar, or one from before it was recorded)."""
    import json

    try:
        return json.loads(sidecar_path(out).read_text(encoding="utf-8")).get("procedure")
    except (OSError, ValueError, AttributeError):
        return None


def forced(force, path: Path) -> bool:
    """Whether ``force`` lets a submission at ``path`` be replaced whatever its procedure: True, or
    a collection of the paths that may be (``ensemble run``: the one it wrote last)."""
    if isinstance(force, bool):
        return force
    return Path(path).resolve() in {Path(f).resolve() for f in force or ()}


def free_name(folder: Path, stem: str, procedure: dict | None, force) -> Path:
    """``folder/stem.csv``, unless another procedure's submission is there: then the first of
    ``stem-2.csv``, ``stem-3.csv`` ... that is free or holds this procedure's (said in the log).
    ``force``: see :func:`forced`."""
    first = folder / f"{stem}.csv"
    if force is True or procedure is None:
        return first
    for i in range(1, 1000):
        path = first if i == 1 else folder / f"{stem}-{i}.csv"
        before = procedure_of(path) if path.is_file() else None
        if not path.is_file() or before is None or before == procedure or forced(force, path):
            if i > 1:
                log.info("%s holds the submission of another procedure: this one is %s (force=True / --force "
                         "replaces it)", first, path.name)
            return path
    return first


def kept_weights_path(path: Path, out: Path) -> Path:
    """Where the weights of the submission ``out`` are written: ``path``, unless the sidecar of
    another submission (beside ``out``, or in ``path``'s submissions folder) names that file: then
    the first of ``stem-2.json``, ``stem-3.json`` ... that none names, so that no earlier
    submission loses the weights it was written with."""
    import json

    out_side = sidecar_path(out).resolve()
    folders = {out.resolve().parent, path.resolve().parent.parent / "submissions"}
    named = set()
    for folder in folders:
        for side in folder.glob("*.csv.json") if folder.is_dir() else ():
            if side.resolve() == out_side:
                continue
            try:
                named.add(json.loads(side.read_text(encoding="utf-8")).get("weights_file"))
            except (OSError, ValueError, AttributeError):
                continue
    for i in range(1, 1000):
        candidate = path if i == 1 else path.with_name(f"{path.stem}-{i}.json")
        if str(candidate.resolve()) not in named:
            if i > 1:
                log.info("%s holds the weights of another submission: these are %s", path, candidate.name)
            return candidate
    return path


def refuse_other_procedure(out: Path, procedure: dict | None, force) -> None:
    """A submission that another procedure wrote (other weights, combine rule, adjustment or
    members: the CLI with a project's defaults, a notebook without them) is not replaced in
    silence under the same name."""
    if forced(force, out) or procedure is None or not out.is_file():
        return
    before = procedure_of(out)
    if before is None or before == procedure:
        return
    what = ", ".join(f"{k} {before.get(k)!r} then, {procedure.get(k)!r} now" for k in procedure
                     if before.get(k) != procedure.get(k))
    raise EnsembleError(f"{out}: holds the submission of another procedure ({what}); {option('force')} to replace "
                        f"it, or {option('name', 'OTHER')} to keep both")
