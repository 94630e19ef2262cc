"""Which checkpoints to average: a run's top K by a metric, explicit folders, a sweep's trials."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ensemble.averaging.checkpoints import (
    CHECKPOINT_RE,
    Checkpoint,
    Ranking,
    newest_state,
    rank_checkpoints,
    rank_run,
    read_checkpoint,
)
from ensemble.averaging.reading import check_trials
from ensemble.core.errors import EnsembleError, cli_face, flag, option
from ensemble.io.modelfiles import has_tokenizer, has_weights

log = logging.getLogger(__name__)

__all__ = ['select_checkpoints', 'Selection', 'parse_k']


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """Which checkpoints to average and why.

    Attributes
    ----------
    chosen : tuple of Checkpoint
        Best first.
    ranking : Ranking or None
        The ranking they were chosen from; None for explicit folders given without ``k``.
    run_dir : Path or None
        The run folder, when one was given.
    """

    chosen: tuple[Checkpoint, ...]
    ranking: Ranking | None
    run_dir: Path | None
    sweep: object | None = None  # a Sweep when checkpoints were ranked across its trials

    def trial_of(self, checkpoint: Checkpoint):
        return self.sweep.trial_of(checkpoint) if self.sweep is not None else None

    @property
    def name(self) -> str:
        """The run's name: the run folder, or the parent of the first checkpoint."""
        return (self.run_dir or self.chosen[0].path.parent).resolve().name


def _is_run_folder(path: Path) -> bool:
    return path.is_dir() and not CHECKPOINT_RE.match(path.name) and any(
        CHECKPOINT_RE.match(p.name) for p in path.iterdir() if p.is_dir()
    )


def _count(k, ranking: Ranking, default: int) -> int:
    """How many of the ranking to keep: ``k``, every ranked one for "all", ``default`` for None."""
    return default if k is None else len(ranking.ranked) if k == "all" else k


def select_checkpoints(
    run_or_paths: str | os.PathLike | Sequence[str | os.PathLike],
    k: int | None = None,
    metric: str | None = None,
    greater_is_better: bool | None = None,
    *,
    across_trials: bool = False,
    exclude_trials: Sequence[str] = (),
) -> Selection:
    """Choose the checkpoints to average.

    Parameters
    ----------
    run_or_paths : path or sequence of paths
        A ``Trainer`` output folder holding ``checkpoint-N`` folders, or checkpoint folders.
    k : int or "all", optional
        How many of the best to keep. Default: 4 for a run folder; every folder given when
        checkpoint folders are listed (with ``k``, the best ``k`` of them by ``metric``).
        "all": every checkpoint that logged the metric, ranked.
    metric, greater_is_better
        See :func:`ensemble.averaging.checkpoints.rank_checkpoints`.
    across_trials : bool, default False
        ``run_or_paths`` is a sweep (a folder of trial run folders, as
        ``Trainer.hyperparameter_search`` writes): rank the checkpoints of every trial together.
        Trials whose architecture, tensor shapes or label map differ are refused.
    exclude_trials : sequence of str
        With ``across_trials``: trial folder names to leave out.
    """
    if across_trials:
        from ensemble.averaging.sweeps import find_sweep

        if not isinstance(run_or_paths, (str, os.PathLike)):
            raise EnsembleError(f"{flag('across_trials')} takes one sweep folder (the hyperparameter search's output_dir)")
        sweep = find_sweep(run_or_paths, metric, greater_is_better, exclude=exclude_trials)
        check_trials(sweep)
        ranking = sweep.ranking
        return Selection(ranking.top(_count(k, ranking, 4)), ranking, sweep.root, sweep)
    if exclude_trials:
        raise EnsembleError(f"{flag('exclude_trial' if cli_face() else 'exclude_trials')} is used only with "
                            f"{flag('across_trials')}; drop it")
    paths = [Path(run_or_paths)] if isinstance(run_or_paths, (str, os.PathLike)) else [
        Path(p) for p in run_or_paths
    ]
    if not paths:
        raise EnsembleError("no run folder or checkpoint folders given; pass at least one")
    if len(paths) == 1 and not _is_run_folder(paths[0]) and not has_weights(paths[0]):
        from ensemble.averaging.sweeps import is_sweep

        if is_sweep(paths[0]):
            raise EnsembleError(f"{paths[0]}: is a sweep (a folder of trial runs); {option('across_trials')} to rank the "
                                "checkpoints of every trial together, or one trial's folder")
    if len(paths) == 1 and _is_run_folder(paths[0]):
        ranking = rank_run(paths[0], metric, greater_is_better)
        return Selection(ranking.top(_count(k, ranking, 4)), ranking, paths[0])
    for p in paths:
        if not p.is_dir():
            raise EnsembleError(f"{p}: not a folder; pass a Trainer run folder or checkpoint folders")
        if not has_weights(p):
            if len(paths) == 1:
                raise EnsembleError(
                    f"{p}: no checkpoint-N folders and no model weights; "
                    "pass the Trainer's output_dir or checkpoint folders"
                )
            raise EnsembleError(f"{p}: no model.safetensors or pytorch_model.bin; is it a checkpoint folder?")
    if len({p.resolve() for p in paths}) != len(paths):
        raise EnsembleError("the same checkpoint folder is listed twice; list each once")
    checkpoints = [read_checkpoint(p) for p in paths]
    if k is None and metric is None:
        return Selection(tuple(checkpoints), None, None)
    ranking = rank_checkpoints(checkpoints, metric, greater_is_better, state=newest_state(checkpoints))
    return Selection(ranking.top(_count(k, ranking, len(checkpoints))), ranking, None)


def parse_k(k) -> int | str | tuple[int, ...] | None:
    """``k`` as given: None, an int, "auto", or several values ("2,3,4" or a sequence of ints)."""
    if isinstance(k, np.integer):
        k = int(k)
    if isinstance(k, bool) or not (k is None or isinstance(k, (int, str)) or (
            isinstance(k, (list, tuple)) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                                 for v in k))):
        raise EnsembleError(f"k must be a number, 'auto' or a list like 2,3,4; got {k!r}")
    if k is None or (isinstance(k, int) and not isinstance(k, bool)):
        if k is not None and k < 1:
            raise EnsembleError(f"k must be at least 1, got {k}")
        return k
    if isinstance(k, str):
        k = k.strip()
        if k == "auto":
            return k
        try:
            values = tuple(int(v) for v in k.split(","))
        except ValueError:
            raise EnsembleError(f"{flag('k')} must be a number, 'auto' or a list like 2,3,4; got {k!r}") from None
    else:
        values = tuple(int(v) for v in k)
    if not values or min(values) < 1:
        raise EnsembleError(f"k values must be at least 1, got {k!r}")
    return values[0] if len(values) == 1 else tuple(sorted(set(values)))


def find_tokenizer(selection: Selection, config: dict, tokenizer: str | os.PathLike | None) -> Path:
    if tokenizer is not None:
        t = Path(tokenizer)
        if not has_tokenizer(t):
            raise EnsembleError(f"{t}: no tokenizer files (tokenizer.json, tokenizer_config.json, vocab.txt...); "
                                "pass the folder the tokenizer was saved to")
        return t
    candidates = [c.path for c in selection.chosen]
    if selection.sweep is not None:  # the trial folders, then the sweep's
        candidates += list(dict.fromkeys(c.path.parent for c in selection.chosen))
    if selection.run_dir is not None:
        candidates.append(selection.run_dir)
    else:
        candidates.append(selection.chosen[0].path.parent)
    base = config.get("_name_or_path")
    if isinstance(base, str) and base and Path(base).is_dir():
        candidates.append(Path(base))
    for c in candidates:
        if has_tokenizer(c):
            return c
    raise MissingTokenizer(selection.chosen[0].path)


class MissingTokenizer(EnsembleError):
    """No tokenizer in a run's checkpoints or folder; ``checkpoint`` is the best one. The project
    runner says which key of ensemble.toml fixes it, the CLI and the library which option."""

    PROBLEM = "no tokenizer in the checkpoints or the run folder"

    def __init__(self, checkpoint: Path):
        from ensemble.core.errors import option

        self.checkpoint = checkpoint
        super().__init__(f"{checkpoint}: {self.PROBLEM}; {option('tokenizer', '<base model folder>')}")
