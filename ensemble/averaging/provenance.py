"""Where a member's validation score comes from, read from its folder: trained or chosen on those
rows, and so optimistic there. Read by the vote (a warning) and the report (a note, and the member
left out of weight fitting); imports neither.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ['model_notes', 'logged_accuracy', 'logged_metric', 'optimistic_members']


def model_notes(folder: Path, valid_digest: str | None, trained_on_valid: bool = False) -> tuple[str, bool]:
    """(note, exclude): why a model's validation score is optimistic, and whether to keep it out
    of weight fitting by default (trained on these rows, or chosen on them)."""
    if trained_on_valid:
        return "trained on the validation rows: its score here is not an estimate", True
    manifest = folder / "ensemble_manifest.json"
    if not manifest.is_file():
        from ensemble.averaging.checkpoints import CHECKPOINT_RE

        if CHECKPOINT_RE.match(folder.name) and (folder / "trainer_state.json").is_file():
            return ("a Trainer checkpoint: optimistic if it was picked (as DIR@top does) by the Trainer's eval metric "
                    "on this split"), False
        return "", False
    try:
        m = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "", False
    holdout = m.get("holdout") or {}
    if m.get("selected_on_holdout") and holdout.get("data_digest") == valid_digest:
        what = "greedy soup" if m.get("method") == "greedy" else "K"
        return f"{what} chosen on this validation split: its score here is optimistic", True
    if m.get("selected_on_holdout"):
        return "soup or K chosen on another held-out split", False
    if m.get("selected_on_eval_set"):
        return "checkpoints chosen by the Trainer's eval metric: optimistic if that eval set is this split", False
    return "", False


def optimistic_members(refs, valid_digest: str | None, trained_on_valid=()) -> dict[str, str]:
    """``{member: why}`` of the members (``refs``: models, or fold groups, ``kind == "folds"``,
    read by their first fold model's folder) whose scores on the rows of ``valid_digest`` are
    optimistic (:func:`model_notes`: marked trained on them, or a soup or K chosen on them): what
    the vote and the reports leave out of their fits."""
    marked = set(trained_on_valid)
    out = {}
    for r in refs:
        note, exclude = model_notes(r.parts[0].folder if r.kind == "folds" else r.folder, valid_digest,
                                    r.name in marked)
        if exclude:
            out[r.name] = note
    return out


def logged_accuracy(folder: Path) -> float | None:
    """The eval accuracy the model's own training run logged for it (:func:`logged_metric` of
    ``eval_accuracy``). A fold model's eval set is its fold's held-out rows."""
    return logged_metric(folder, "eval_accuracy")


def logged_metric(folder: Path, name: str) -> float | None:
    """The eval metric ``name`` the model's own training run logged for it: the mean of an
    average's checkpoints' values (its manifest's ranking metric, else each listed checkpoint's
    ``trainer_state.json`` at its step), else the value at a checkpoint's own step; None when
    nothing says."""
    try:
        m = json.loads((folder / "ensemble_manifest.json").read_text(encoding="utf-8"))
        if m.get("metric") == name:
            values = [c.get("metric_value") for c in m.get("checkpoints", [])]
        else:
            values = [_at_step(_listed(folder, c.get("path")), name) for c in m.get("checkpoints", [])]
        if values and all(isinstance(v, (int, float)) for v in values):
            return float(sum(values) / len(values))
        return None
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return _at_step(folder, name)


def _listed(folder: Path, path) -> Path | None:
    """A checkpoint a manifest lists (its path relative to the average, or as written)."""
    if not isinstance(path, str):
        return None
    for p in (folder / path, Path(path)):
        if p.is_dir():
            return p
    return None


def _at_step(folder: Path | None, name: str) -> float | None:
    if folder is None or not (folder / "trainer_state.json").is_file():
        return None
    from ensemble.averaging.checkpoints import read_checkpoint
    from ensemble.core.errors import EnsembleError

    try:
        return read_checkpoint(folder).metrics.get(name)  # the eval logged at its own step
    except EnsembleError:  # an unreadable state says nothing
        return None
