"""A fold group's logits: out of fold on the training rows, the fold mean everywhere else.

Fold model k of a K-fold run was trained without the rows of fold k. On the training split, the
group's logits are each fold model's logits on its own held-out rows, put back in the split's row
order (out-of-fold, OOF): every training row is scored by a model that never saw it, so weights
and estimates can be fitted on all of them. On any other split (test, a holdout), the group's
probabilities are the mean of its K fold models' probabilities; its "logits" there are the log of
that mean, so that softmax gives the mean back.

Each OOF row is scored by one fold model, while the fold mean averages K of them: OOF figures
describe a single fold model and are usually conservative for the fold mean.

A fold model's held-out rows are cached as a split of their own (:meth:`ensemble.data.splits.Split.subset`),
keyed by their ids and texts: a folds file changed after the logits were cached is a cache miss.
"""

from __future__ import annotations

import re

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError, folds_fix
from ensemble.tasks import open_member

log = logging.getLogger(__name__)

__all__ = ['GroupRef', 'TrainingFolds', 'fold_mean', 'out_of_fold', 'held_out', 'member_jobs', 'open_training_folds', 'group_fingerprint']


@dataclass(frozen=True)
class TrainingFolds:
    """The training split and the fold of each of its rows: where fold groups have OOF logits.

    Attributes
    ----------
    split : Split
        The training split (``--data train=FILE``).
    folds : Folds
        Its rows' folds (``--folds FILE``), in the split's row order.
    """

    split: object
    folds: object

    @property
    def k(self) -> int:
        return self.folds.k

    def rows(self, k: int) -> np.ndarray:
        """Row indices of fold k, in the split's order."""
        return np.flatnonzero(self.folds.fold == k)

    def describe(self) -> dict:
        """What the provenance of a fit on OOF rows records."""
        from blake3 import blake3

        return {"path": str(Path(self.split.path).resolve()), "data_digest": self.split.digest,
                "labels_digest": self.split.labels_digest, "rows": len(self.split),
                "folds_file": None if self.folds.path is None else str(Path(self.folds.path).resolve()),
                "folds_digest": blake3(np.ascontiguousarray(self.folds.fold, dtype=np.int64).tobytes()).hexdigest(),
                "k": self.k}


def open_training_folds(split, folds, *, fold_column: str | None = None, encoding: str | None = None) -> TrainingFolds:
    """``folds`` (a folds file, or a :class:`~ensemble.data.folds.Folds` already read for ``split``)
    read against the training split's ids."""
    from ensemble.data.folds import Folds, read_folds

    if isinstance(folds, TrainingFolds):
        return folds
    if not isinstance(folds, Folds):
        from ensemble.data.folds import check_sidecar

        folds = read_folds(folds, split.ids, id_column=split.id_column, fold_column=fold_column, encoding=encoding)
        changed = check_sidecar(folds, split.path)
        if changed:
            log.warning("%s", changed)
    elif len(folds.fold) != len(split):
        raise EnsembleError(f"folds: {len(folds.fold)} fold numbers for the {len(split)} rows of {split.path}; give "
                            "one per row, in row order")
    return TrainingFolds(split, folds)


def held_out(training: TrainingFolds, k: int):
    """The rows of fold k as a split of their own (named ``<train>-fold<k>``)."""
    return training.split.subset(training.rows(k), f"{training.split.name}-fold{k}")


class GroupRef:
    """A fold group opened: its K model folders checked (:class:`~ensemble.inference.models.ModelRef`)
    and agreeing on their class names.

    Attributes
    ----------
    name : str
    folder : Path
        The group's path as given (``runs/bert-fold{fold}``), for messages.
    parts : list of ModelRef
        Fold 0 first, named ``<name>-fold<k>``.
    labels : tuple of str
        Fold 0's class names, in its column order.
    """

    kind = "folds"

    def __init__(self, name: str, folder: Path, parts: list):
        self.name, self.folder, self.parts = name, Path(folder), parts
        self.labels = parts[0].labels
        self.task = parts[0].task
        for i, p in enumerate(parts[1:], 1):
            if set(p.labels) != set(self.labels):
                only = sorted(set(p.labels) ^ set(self.labels))
                raise EnsembleError(f"{p.folder}: fold {i} of member {name} has other classes than fold 0 "
                                    f"({parts[0].folder}): {', '.join(only)} in one only; the fold models of a group "
                                    "are one task's")

    @classmethod
    def open(cls, member, task=None) -> "GroupRef":
        """``task``: as :func:`~ensemble.tasks.open_member`, for every fold model."""

        for k, f in enumerate(member.parts):
            _check_fold_source(member.name, k, Path(f))
        return cls(member.name, member.folder,
                   [open_member(f, f"{member.name}-fold{i}", task) for i, f in enumerate(member.parts)])

    def logits(self, read, split, training: TrainingFolds | None):
        """The group's logits over ``split``: out of fold on the training split (fold model k's
        on the rows of fold k, checked for a model that has seen its rows), else the log of the
        fold models' mean probabilities. ``read(part, split, fix)`` reads one fold model's
        cached logits; ``fix`` is the command that computes them."""
        t = training
        oof = t is not None and split.name == t.split.name
        if oof and split.digest != t.split.digest:
            raise EnsembleError(f"{split.path}: not the training split the folds were read for ({t.split.path})")
        folds_flag = f" --folds {t.folds.path}" if t is not None and t.folds.path is not None else " --folds FILE"
        fix = f"run: ensemble predict --model {self.name}={self.folder} --data {split.name}={split.path}" + (
            folds_flag if oof else "")
        if oof:
            parts = [read(p, held_out(t, k), fix) for k, p in enumerate(self.parts)]
            _check_held_out(self, parts, t)
            return out_of_fold(parts, t, self.name, self.task)
        return fold_mean([read(p, split, fix) for p in self.parts], self.name, self.task)

    def fingerprint(self, digest) -> str:
        """The group's content: its fold models' fingerprints, in fold order."""
        return group_fingerprint([p.fingerprint(digest) for p in self.parts], self.name)

    def folders(self) -> list[str]:
        """Its fold models' folders, fold 0 first, as absolute paths (for provenance)."""
        return [str(p.folder.resolve()) for p in self.parts]


_FOLD_IN_NAME = re.compile(r"fold[-_]?(\d+)(?!\d)", re.IGNORECASE)


def _check_fold_source(name: str, k: int, folder: Path) -> None:
    """A fold group's model k averaged from another fold's run (folders swapped or mislabelled:
    ``weights/bert-fold0`` averaged from ``runs/bert-fold1``) is refused: its out-of-fold rows
    would be scored by a model that saw them. Read from the averaged folder's manifest, whose
    ``run`` names the run it came from; a folder without one is not checked here."""
    import json

    try:
        run = json.loads((folder / "ensemble_manifest.json").read_text(encoding="utf-8")).get("run")
    except (OSError, ValueError, AttributeError):
        return
    found = _FOLD_IN_NAME.findall(Path(str(run)).name) if isinstance(run, str) else []
    if found and int(found[-1]) != k:
        raise EnsembleError(f"{folder / 'ensemble_manifest.json'}: averaged from {run}, fold {found[-1]}'s run, but it "
                            f"stands for fold {k} of member {name}: its out-of-fold rows would be scored by a model "
                            "that saw them; put each fold's average in its own folder (avg-ckpt again)")


def group_fingerprint(part_fingerprints, name: str = "the fold group") -> str:
    """A fold group's content digest from its fold models' fingerprints, in fold order. Two fold
    models with the same content (one model, a full-data refit say, listed as several folds) are
    an error: its "out-of-fold" rows would be scored by a model trained on them."""
    from blake3 import blake3

    part_fingerprints = list(part_fingerprints)
    for j, f in enumerate(part_fingerprints):
        i = part_fingerprints.index(f)
        if i != j:
            raise EnsembleError(f"member {name}: fold models {i} and {j} are the same model (identical weights, config "
                                "and tokenizer); each fold needs the model trained without that fold's rows")

    h = blake3(b"ensemble.foldgroup/1\0")
    for f in part_fingerprints:
        h.update(f.encode() + b"\0")
    return h.hexdigest()


def _meta(parts: Sequence) -> dict:
    from blake3 import blake3

    keys = [lg.meta.get("key") for lg in parts]
    return {"key": blake3("\0".join(map(str, keys)).encode()).hexdigest(), "fold_keys": keys}


def out_of_fold(parts: Sequence, training: TrainingFolds, name: str, task=None):
    """The group's OOF Logits on the training split: fold model k's Logits on the rows of fold k
    (``parts[k]``), each put in fold 0's class order and back in the split's row order. Ragged
    outputs (a row of units each) are aligned by ``task`` and their rows put in the split's order."""
    from ensemble.core.combination import align
    from ensemble.core.outputs import Logits

    split = training.split
    if getattr(parts[0], "kind", "dense") == "ragged":
        return _ragged_out_of_fold(parts, training, name, task)
    if getattr(parts[0], "kind", "dense") == "texts":
        return _texts_out_of_fold(parts, training, name, task)
    labels = parts[0].labels
    values = np.empty((len(split), len(labels)), dtype=np.float32)
    for k, lg in enumerate(parts):
        rows = training.rows(k)
        values[rows] = align([lg], ids=split.ids[rows], labels=labels).arrays[0]
    return Logits(split.ids, values, tuple(labels), name, split.name, _meta(parts))


def _ragged_out_of_fold(parts: Sequence, training: TrainingFolds, name: str, task):
    """Fold model k's ragged outputs on the rows of fold k, aligned by ``task`` (its names in the
    task's common order), each row's units put back in the training split's row order."""
    from ensemble.core.outputs import Ragged

    split = training.split
    rows: list = [None] * len(split)
    names = None
    for k, lg in enumerate(parts):
        al = task.align([lg], ids=split.ids[training.rows(k)])
        if names is not None and tuple(al.labels) != names:
            raise EnsembleError(f"{name}: fold model {k} outputs {', '.join(al.labels)}, fold 0 {', '.join(names)}; the "
                                "fold models of one group are trained with the same names")
        names = tuple(al.labels)
        for j, r in enumerate(training.rows(k)):
            rows[r] = al.arrays[0][al.offsets[j]:al.offsets[j + 1]]
    offsets = np.concatenate([[0], np.cumsum([len(v) for v in rows])]).astype(np.int64)
    values = np.concatenate(rows) if rows else np.zeros((0, len(names or ())))
    return Ragged(split.ids, values, offsets, names, name, split.name, _meta(parts))


def _texts_out_of_fold(parts: Sequence, training: TrainingFolds, name: str, task):
    """Fold model k's candidates on the rows of fold k, aligned by ``task``, each row put back in
    the training split's row order."""
    from ensemble.core.outputs import Texts

    split = training.split
    texts: list = [None] * len(split)
    scores: list = [None] * len(split)
    for k, lg in enumerate(parts):
        al = task.align([lg], ids=split.ids[training.rows(k)])
        for j, r in enumerate(training.rows(k)):
            texts[r], scores[r] = al.texts[0][j], al.scores[0][j]
    flat = np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, dtype=np.float32)
    return Texts(split.ids, texts, flat, None, name, split.name, _meta(parts))


def _pooled_texts(parts: Sequence, name: str, task):
    """A fold group's candidates on a split every fold model generated over: as many per row as
    one fold model gives out of fold, the ones its fold models agree on
    (:meth:`~ensemble.tasks.base.Task.fold_mean`), each with the score of its first fold model."""
    from ensemble.core.outputs import Texts

    al = task.align(list(parts))
    chosen = task.fold_mean(al.texts)
    scores = []
    for i, row in enumerate(chosen):
        first = {}
        for m in range(len(parts)):
            for t, s in zip(al.texts[m][i], al.scores[m][i]):
                first.setdefault(t, s)
        scores += [first[t] for t in row]
    return Texts(np.asarray(al.ids), chosen, np.asarray(scores, dtype=np.float32), None, name, parts[0].split,
                 _meta(parts))


def fold_mean(parts: Sequence, name: str, task):
    """The group's Logits on a split every fold model predicted, in fold 0's class and row order:
    the task's mean (:meth:`~ensemble.tasks.base.Task.fold_mean`; classification: the log of the
    mean of their probabilities, regression: the mean of their outputs). Ragged outputs: aligned
    by ``task``, the mean of each unit over the fold models that cover it. Texts (generations):
    every fold model's candidates pooled per row."""
    from ensemble.core.combination import align
    from ensemble.core.outputs import Logits, Ragged

    if getattr(parts[0], "kind", "dense") == "texts":
        return _pooled_texts(parts, name, task)
    if getattr(parts[0], "kind", "dense") == "ragged":
        al = task.align(list(parts))
        return Ragged(np.asarray(al.ids), task.fold_mean(al.arrays), al.offsets, tuple(al.labels), name,
                      parts[0].split, _meta(parts))
    al = align(list(parts))
    values = task.fold_mean(al.arrays)
    return Logits(np.asarray(al.ids), values, al.labels, name, parts[0].split, _meta(parts))


def member_jobs(members, splits: dict, training: TrainingFolds | None, task=None) -> list[tuple[str, object, list]]:
    """What ``ensemble predict`` runs: (member name, ModelRef, [(split label, Split)]) for each
    model folder, a fold group's K fold models included. A fold model predicts its own held-out
    rows of the training split (``train-fold<k>``) and every other split whole; a plain model
    skips the training split when folds are given (only fold groups have out-of-fold logits).
    ``task``: the task every model is read as (:func:`~ensemble.tasks.open_member`)."""

    jobs = []
    train = None if training is None else training.split.name
    for m in members:
        if not m.is_fold_group:
            todo = [(s, split) for s, split in splits.items() if s != train]
            if len(todo) < len(splits):
                log.info("%s: not a fold group, so it skips the training split %s", m.name, train)
            jobs.append((m.name, open_member(m.folder, m.name, task), todo))
            continue
        group = GroupRef.open(m, task)
        if training is None:
            raise EnsembleError(f"member {m.name} is a fold group; {folds_fix()}")
        for k, ref in enumerate(group.parts):
            todo = [(f"{s}-fold{k}", held_out(training, k)) if s == train else (s, split) for s, split in splits.items()]
            jobs.append((m.name, ref, todo))
    return jobs


def _check_held_out(ref, parts, training) -> None:
    """A fold model that scores far above what its own run logged on its eval set (its fold's
    held-out rows) has likely seen those rows (a full-data refit, a model of another fold):
    said in a warning naming it, since its out-of-fold rows would be optimistic."""
    from ensemble.averaging.provenance import logged_accuracy
    if training.split.labels is None:
        return
    for k, (part, lg) in enumerate(zip(ref.parts, parts)):
        logged = logged_accuracy(part.folder)
        rows = held_out(training, k)
        acc = None if logged is None or getattr(lg, "kind", "dense") == "texts" else ref.task.accuracy_of(lg.values, rows, lg.labels,
                                                                                      part.name)
        if acc is None:
            continue
        margin = max(0.15, 3 * np.sqrt(max(logged * (1 - logged), 0.01) / len(rows)))
        if acc > logged + margin:
            log.warning("%s: fold model %d (%s) scores %.3f on the rows of fold %d, far above the eval_accuracy %.3f its "
                        "run logged: it may have been trained on them (a refit, another fold's model); its out-of-fold "
                        "rows would be optimistic", ref.name, k, part.folder, acc, k, logged)
