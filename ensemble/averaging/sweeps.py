"""A hyper-parameter sweep: a folder of ``Trainer`` runs, one per trial.

``Trainer.hyperparameter_search`` writes ``<output_dir>/run-<trial number>/checkpoint-N/`` (the
folder is ``hp_name(trial)`` when an ``hp_name`` was given), and each checkpoint's
``trainer_state.json`` holds ``trial_params`` and ``trial_name``. Any folder whose sub-folders
are ``Trainer`` runs (``runs/bert-a``, ``runs/bert-b``) is read the same way, with no
parameters. Trials are ranked by the best value of one eval metric over their checkpoints.

A sweep is used three ways: ``ensemble sweep ls`` prints its trials; ``avg-ckpt --across-trials``
ranks the checkpoints of every trial together; and a member written ``DIR@top3`` stands for the
best checkpoint of each of the three best trials (``DIR@all``: of every trial).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ensemble.averaging.checkpoints import CHECKPOINT_RE, Checkpoint, Ranking, load_run, rank_checkpoints
from ensemble.core.errors import EnsembleError

__all__ = ['Trial', 'Sweep', 'find_sweep', 'is_sweep', 'is_search', 'expand_members', 'parse_member']

_MEMBER_RE = re.compile(r"^(?P<path>.+)@(?:top(?P<n>\d+)|(?P<all>all))$")
_RUN_NUMBER = re.compile(r"^run-(\d+)$")


@dataclass(frozen=True)
class Trial:
    """One trial of a sweep: a ``Trainer`` run folder and its hyper-parameters.

    Attributes
    ----------
    name : str
        The folder's name (``run-3``, or ``hp_name(trial)``).
    path : Path
    params : Mapping
        ``trial_params`` from ``trainer_state.json`` (empty for a plain run folder).
    trial_name : str or None
        ``trial_name`` from ``trainer_state.json`` (set when ``hp_name`` was given).
    checkpoints : tuple of Checkpoint
        By step, with their eval metrics.
    """

    name: str
    path: Path
    params: Mapping
    trial_name: str | None
    checkpoints: tuple[Checkpoint, ...]
    state: Mapping = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class Sweep:
    """The trials of a sweep, ranked by one metric.

    Attributes
    ----------
    root : Path
    trials : tuple of Trial
        Best first (by the best checkpoint's value); trials that logged no value last.
    ranking : Ranking
        Every checkpoint of every trial, best first.
    """

    root: Path
    trials: tuple[Trial, ...]
    ranking: Ranking

    @property
    def metric(self) -> str:
        return self.ranking.metric

    def best_checkpoint(self, trial: Trial) -> Checkpoint | None:
        """The trial's best checkpoint by the sweep's metric (None when it logged none)."""
        mine = {c.path for c in trial.checkpoints}
        return next((c for c in self.ranking.ranked if c.path in mine), None)

    def trial_of(self, checkpoint: Checkpoint) -> Trial:
        return next(t for t in self.trials if checkpoint.path.parent == t.path)

    def top(self, n: int | None) -> list[tuple[Trial, Checkpoint]]:
        """The best checkpoint of each of the ``n`` best trials (every ranked trial for None)."""
        ranked = [(t, c) for t in self.trials if (c := self.best_checkpoint(t)) is not None]
        if n is None:
            return ranked
        if n < 1:
            raise EnsembleError(f"{self.root}: @top{n}: the number of trials must be at least 1")
        if n > len(ranked):
            raise EnsembleError(f"{self.root}: @top{n} but only {len(ranked)} trial(s) logged {self.metric}; "
                                f"use @top{len(ranked)} or less")
        return ranked[:n]

    def format_table(self) -> str:
        """Rank, trial, parameters, best metric value and its step, checkpoints."""
        arrow = self.ranking.arrow
        keys = list(dict.fromkeys(k for t in self.trials for k in t.params))
        head = ["rank", "trial", *keys, f"best {self.metric} ({arrow})", "step", "checkpoints"]
        rows = [head]
        rank = 0
        for t in self.trials:
            best = self.best_checkpoint(t)
            rank += best is not None
            rows.append([str(rank) if best else "-", t.name, *(_fmt(t.params.get(k)) for k in keys),
                         f"{best.metrics[self.metric]:.6g}" if best else "not logged",
                         str(best.step) if best else "-", str(len(t.checkpoints))])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)

    def to_dict(self) -> dict:
        """What a manifest records of the sweep: every trial, its parameters and best value."""
        out = []
        for t in self.trials:
            best = self.best_checkpoint(t)
            out.append({"name": t.name, "trial_name": t.trial_name, "params": dict(t.params),
                        "path": str(t.path.resolve()), "best_step": best.step if best else None,
                        "best_metric_value": best.metrics[self.metric] if best else None,
                        "checkpoints": len(t.checkpoints)})
        return {"root": str(self.root.resolve()), "metric": self.metric,
                "greater_is_better": self.ranking.greater_is_better, "trials": out}


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _is_run(path: Path) -> bool:
    try:
        return path.is_dir() and any(CHECKPOINT_RE.match(p.name) and p.is_dir() for p in path.iterdir())
    except OSError:
        return False


def is_sweep(path: str | os.PathLike) -> bool:
    """True for a folder that holds no ``checkpoint-N`` itself but run folders that do."""
    path = Path(path)
    if not path.is_dir() or _is_run(path) or CHECKPOINT_RE.match(path.name):
        return False
    return any(_is_run(p) for p in path.iterdir())


def is_search(path: str | os.PathLike) -> bool:
    """A sweep written by ``Trainer.hyperparameter_search``: a trial's ``trainer_state.json``
    holds ``trial_params`` (a folder of unrelated runs does not)."""
    import json

    path = Path(path)
    if not is_sweep(path):
        return False
    for run in (p for p in path.iterdir() if _is_run(p)):
        for ck in sorted((c for c in run.iterdir() if CHECKPOINT_RE.match(c.name)), key=lambda c: c.name):
            try:
                state = json.loads((ck / "trainer_state.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            return bool(state.get("trial_params")) or bool(state.get("is_hyper_param_search"))
    return False


def _trial_order(t: Trial):
    m = _RUN_NUMBER.match(t.name)
    return (0, int(m.group(1)), "") if m else (1, 0, t.name)


def find_sweep(
    path: str | os.PathLike,
    metric: str | None = None,
    greater_is_better: bool | None = None,
    *,
    exclude: Sequence[str] = (),
) -> Sweep:
    """Read a sweep folder and rank its trials.

    Parameters
    ----------
    path : path-like
        A ``hyperparameter_search`` output folder (``run-<n>/checkpoint-N``), or any folder of
        ``Trainer`` run folders.
    metric, greater_is_better
        As for :func:`~ensemble.averaging.checkpoints.rank_checkpoints` (default ``eval_accuracy`` when
        logged, else the metric the runs chose their best model by, else ``eval_loss``).
    exclude : sequence of str
        Trial folder names to leave out.

    Returns
    -------
    Sweep
    """
    root = Path(path)
    if not root.is_dir():
        raise EnsembleError(f"{root}: not a folder; pass the output_dir of a hyperparameter search")
    if _is_run(root):
        raise EnsembleError(f"{root}: is a single Trainer run (it holds checkpoint-N folders), not a sweep; "
                            "pass the folder that holds the run-<n> trial folders")
    folders = sorted(p for p in root.iterdir() if _is_run(p))
    unknown = sorted(set(exclude) - {p.name for p in folders})
    if unknown:
        raise EnsembleError(f"{root}: no trial {unknown[0]!r} to exclude (trials: {', '.join(p.name for p in folders)})")
    folders = [p for p in folders if p.name not in set(exclude)]
    if not folders:
        raise EnsembleError(f"{root}: no trial folders (sub-folders holding checkpoint-N); pass the output_dir "
                            "of Trainer.hyperparameter_search or a folder of run folders")
    trials = []
    for p in folders:
        checkpoints, state = load_run(p)
        params = state.get("trial_params") or {}
        if not isinstance(params, Mapping):
            params = {"trial_params": str(params)}
        trials.append(Trial(p.name, p, dict(params), state.get("trial_name"), tuple(checkpoints), state))
    trials.sort(key=_trial_order)
    everything = [c for t in trials for c in t.checkpoints]
    ranking = rank_checkpoints(everything, metric, greater_is_better, state=trials[0].state, where=root)
    position = {c.path: i for i, c in enumerate(ranking.ranked)}

    def key(t: Trial):
        ranks = [position[c.path] for c in t.checkpoints if c.path in position]
        return (min(ranks) if ranks else len(position), _trial_order(t))

    return Sweep(root, tuple(sorted(trials, key=key)), ranking)


def parse_member(spec: str | os.PathLike) -> tuple[Path, int | None] | None:
    """``DIR@top3`` -> (DIR, 3); ``DIR@all`` -> (DIR, None); a plain path -> None."""
    m = _MEMBER_RE.match(os.fspath(spec))
    if m is None:
        return None
    return Path(m.group("path")), (None if m.group("all") else int(m.group("n")))


def expand_members(models: Mapping[str, str | os.PathLike], metric: str | None = None) -> dict[str, Path | tuple]:
    """Members as model folders: ``NAME=DIR@top3`` becomes ``NAME-<trial>`` for the best
    checkpoint of each of the 3 best trials of the sweep in DIR (best trial first).

    Other entries are kept as given (a fold group's list of folders as a tuple). An expanded name
    that clashes with another member is an error naming both.
    """
    out: dict[str, Path] = {}
    for name, spec in models.items():
        if isinstance(spec, (list, tuple)):  # a fold group's K model folders, in fold order
            items = [(name, tuple(Path(s) for s in spec))]
        elif (parsed := parse_member(spec)) is None:
            items = [(name, Path(spec))]
        else:
            folder, n = parsed
            sweep = find_sweep(folder, metric)
            items = [(f"{name}-{t.name}", c.path) for t, c in sweep.top(n)]
        for member, path in items:
            if member in out:
                raise EnsembleError(f"model name {member!r} comes twice (from {spec}); rename one of the members")
            out[member] = path
    return out
