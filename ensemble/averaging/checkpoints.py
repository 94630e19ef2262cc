"""Find the ``checkpoint-N`` folders of a Hugging Face ``Trainer`` run and rank them by a metric.

Facts this module relies on (see DESIGN.md):

* The eval metrics of checkpoint N are the ``log_history`` entries whose ``step`` equals N and
  that hold ``eval_*`` keys. Each checkpoint's ``trainer_state.json`` holds the history up to its
  own step, so the newest one is read; steps whose folder was deleted (``save_total_limit``)
  are dropped. Entries at the same step are merged, the first value of a key winning, so that a
  ``trainer.evaluate()`` after ``load_best_model_at_end`` cannot relabel the last checkpoint.
* ``trainer_state.json`` records no metric direction. When the metric is the run's
  ``metric_for_best_model``, the run says it: ``best_metric`` is the lowest or the highest value
  logged. Otherwise the name decides, from a table of known metrics (loss, mse, rmse, mae, wer ...
  lower; accuracy, f1, pearson, rouge, bleu ... higher); a name in neither is refused, never
  guessed (``greater_is_better`` settles it).
* ``metric_for_best_model`` lives in ``training_args.bin``, a pickle that is never loaded. It is
  recovered instead from ``best_metric`` and the best step (``best_global_step``, or the name of
  ``best_model_checkpoint`` in 4.x): the one ``eval_*`` key whose value at that step equals
  ``best_metric``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ensemble.core.errors import EnsembleError, direction_fix, option

log = logging.getLogger(__name__)

__all__ = ['Checkpoint', 'Ranking', 'find_checkpoints', 'rank_checkpoints', 'rank_run', 'read_checkpoint', 'infer_greater_is_better', 'metric_direction', 'metrics_by_step', 'default_metric', 'newest_state', 'normalize_metric']

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# Metric names by direction, matched against the words of a name (``eval_macro_f1`` -> macro, f1):
# a word in one set, or starting with one of the prefixes, says the direction.
_LOWER_WORDS = frozenset({
    "loss", "mse", "rmse", "mae", "mape", "smape", "msle", "rmsle", "mcrmse", "medae", "error", "err", "wer", "cer",
    "ter", "perplexity", "ppl", "nll", "logloss", "brier", "ece", "hamming", "distance", "levenshtein"})
_LOWER_SUFFIXES = ("loss", "error")  # celoss, logloss, mean_squared_error
_HIGHER_WORDS = frozenset({
    "accuracy", "acc", "f1", "fbeta", "f05", "f2", "precision", "recall", "auc", "auroc", "roc", "aupr", "ap", "map",
    "mrr", "ndcg", "pearson", "pearsonr", "spearman", "spearmanr", "kendall", "kendalltau", "corr", "correlation",
    "r2", "mcc", "matthews", "kappa", "qwk", "bleu", "sacrebleu", "chrf", "meteor", "bertscore", "em", "exact",
    "iou", "jaccard", "dice", "combined", "gleu", "cider", "spice"})
_HIGHER_PREFIXES = ("rouge", "bleu", "accuracy", "f1", "top")  # rouge1, rougeLsum, bleu4, accuracy_top5, top5
# Logged with every evaluation but not a quality metric.
_NOT_METRICS = ("runtime", "samples_per_second", "steps_per_second")


@dataclass(frozen=True)
class Checkpoint:
    """One ``checkpoint-N`` folder and the eval metrics logged at its step.

    Attributes
    ----------
    path : Path
        The checkpoint folder.
    step : int
        N, the global step it was saved at.
    metrics : Mapping[str, float]
        ``eval_*`` values logged at step N (empty when none was logged).
    """

    path: Path
    step: int
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Ranking:
    """Checkpoints ordered best first by one metric.

    Attributes
    ----------
    metric : str
        The ``eval_*`` key ranked on.
    greater_is_better : bool
    ranked : tuple of Checkpoint
        Checkpoints that logged the metric, best first; ties go to the later step.
    skipped : tuple of Checkpoint
        Checkpoints with no (finite) value for the metric.
    """

    metric: str
    greater_is_better: bool
    ranked: tuple[Checkpoint, ...]
    skipped: tuple[Checkpoint, ...] = ()
    direction_from: str = "given"  # "given", "the run's best_metric" or "the metric's name"

    def top(self, k: int) -> tuple[Checkpoint, ...]:
        """The best ``k`` checkpoints; an error naming the run when fewer have the metric."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise EnsembleError(f"k must be a positive integer, got {k!r}; {option('k', '1')} or more")
        if k > len(self.ranked):
            where = self.ranked[0].path.parent if self.ranked else "the run"
            raise EnsembleError(
                f"{where}: k={k} but only {len(self.ranked)} checkpoint(s) logged {self.metric}; "
                f"{option('k', str(len(self.ranked)))} or less"
            )
        return self.ranked[:k]

    @property
    def arrow(self) -> str:
        """"higher is better (from the run's best_metric)" and the like: the direction and its source."""
        arrow = "higher is better" if self.greater_is_better else "lower is better"
        return arrow if self.direction_from == "given" else f"{arrow}, from {self.direction_from}"

    def format_table(self, chosen: Iterable[Checkpoint] = ()) -> str:
        """An aligned text table: rank, checkpoint, step, metric value, chosen or not."""
        chosen_paths = {c.path for c in chosen}
        rows = [("rank", "checkpoint", "step", f"{self.metric} ({self.arrow})", "chosen")]
        for i, c in enumerate(self.ranked, 1):
            rows.append((str(i), c.name, str(c.step), f"{c.metrics[self.metric]:.6g}",
                         "yes" if c.path in chosen_paths else ""))
        for c in self.skipped:
            rows.append(("-", c.name, str(c.step), "not logged", ""))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


def infer_greater_is_better(metric: str) -> bool | None:
    """The direction a metric's name says: False for error-like names (loss, mse, rmse, mae,
    mape, error, wer, cer, ter, perplexity ...), True for score-like ones (accuracy, f1,
    pearson, spearman, rouge*, bleu, auc ...), None for a name in neither set or in both."""
    name = metric.lower()
    name = name[5:] if name.startswith("eval_") else name
    words = [w for w in re.split(r"[^a-z0-9]+", name) if w]
    lower = any(w in _LOWER_WORDS or w.endswith(_LOWER_SUFFIXES) for w in words)
    higher = any(w in _HIGHER_WORDS or w.startswith(_HIGHER_PREFIXES) for w in words)
    return None if lower == higher else higher


def _direction_of_run(name: str, state: Mapping | None) -> bool | None:
    """The direction the run itself recorded for ``name``: when it is the run's
    ``metric_for_best_model`` (recovered from ``best_metric`` and the best step), ``best_metric``
    is the lowest or the highest value of it logged; None when the run does not tell."""
    if not state:
        return None
    by_step = metrics_by_step(state.get("log_history", []))
    if _metric_for_best_model(state, by_step) != name:
        return None
    values = [v[name] for v in by_step.values() if name in v and math.isfinite(v[name])]
    best = state.get("best_metric")
    lo, hi = min(values), max(values)
    if lo == hi:
        return None
    return True if best == hi else False if best == lo else None


def metric_direction(name: str, greater_is_better: bool | None = None, *, state: Mapping | None = None,
                     where: Path | None = None) -> tuple[bool, str]:
    """``(greater_is_better, where the direction came from)`` for metric ``name``: the caller's
    ``greater_is_better``, else the run's ``best_metric`` (see :func:`_direction_of_run`), else the
    name (:func:`infer_greater_is_better`); a name that says neither is an error naming the fix."""
    if greater_is_better is not None:
        return bool(greater_is_better), "given"
    gib = _direction_of_run(name, state)
    if gib is not None:
        return gib, "the run's best_metric"
    gib = infer_greater_is_better(name)
    if gib is not None:
        return gib, "the metric's name"
    raise EnsembleError(f"{where or 'the run'}: cannot tell whether {name} is better higher or lower (it is not the "
                        f"run's metric_for_best_model and not a known metric name); {direction_fix()}")


def normalize_metric(metric: str) -> str:
    """``accuracy`` -> ``eval_accuracy``, as the ``Trainer`` does for ``metric_for_best_model``."""
    return metric if metric.startswith("eval_") else f"eval_{metric}"


def _read_state(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        raise EnsembleError(f"{path}: not found; is this a Trainer checkpoint folder?") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EnsembleError(f"{path}: not valid JSON ({e}); restore it from the training run") from None
    if not isinstance(state, dict) or not isinstance(state.get("log_history", []), list):
        raise EnsembleError(f"{path}: has no log_history list; is it a Trainer trainer_state.json?")
    return state


def _checkpoint_folders(run_dir: Path) -> list[tuple[int, Path]]:
    if not run_dir.is_dir():
        raise EnsembleError(f"{run_dir}: not a folder; pass the output_dir of a Trainer run")
    found = []
    for p in run_dir.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    if not found:
        raise EnsembleError(
            f"{run_dir}: no checkpoint-N folders; pass the Trainer's output_dir, "
            "or the checkpoint folders themselves"
        )
    return sorted(found)


def _as_float(v) -> float:
    """A logged number as a float; an integer too large for one (400 digits) is infinite, and so
    skipped like NaN, instead of an OverflowError."""
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def metrics_by_step(history: Sequence[Mapping]) -> dict[int, dict[str, float]]:
    """The ``eval_*`` values of a ``log_history`` by step (runtime and throughput keys left out),
    the first value of a key at a step winning."""
    out: dict[int, dict[str, float]] = {}
    for entry in history:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("step"), int):
            continue
        evals = {
            k: _as_float(v)
            for k, v in entry.items()
            if k.startswith("eval_")
            and not k.endswith(_NOT_METRICS)
            and isinstance(v, (int, float))
            and not isinstance(v, bool)
        }
        if evals:
            merged = out.setdefault(entry["step"], {})
            for k, v in evals.items():
                merged.setdefault(k, v)
    return out


def _newest_state(folders: Sequence[tuple[int, Path]]) -> tuple[Path, dict]:
    """The trainer_state.json of the highest step that has one."""
    for _, p in reversed(folders):
        if (p / "trainer_state.json").is_file():
            return p / "trainer_state.json", _read_state(p / "trainer_state.json")
    raise EnsembleError(
        f"{folders[-1][1].parent}: no checkpoint holds a trainer_state.json; "
        "averaging by metric needs the Trainer's state (pass checkpoint folders explicitly instead)"
    )


def load_run(run_dir: Path) -> tuple[list[Checkpoint], dict]:
    folders = _checkpoint_folders(run_dir)
    _, state = _newest_state(folders)
    by_step = metrics_by_step(state.get("log_history", []))
    return [Checkpoint(p, step, by_step.get(step, {})) for step, p in folders], state


def find_checkpoints(run_dir: str | Path) -> list[Checkpoint]:
    """The ``checkpoint-N`` folders of a run, by step, with the eval metrics logged at N.

    Parameters
    ----------
    run_dir : path-like
        A ``Trainer`` ``output_dir``.

    Returns
    -------
    list of Checkpoint
        Sorted by step. Metrics come from the newest ``trainer_state.json``.
    """
    return load_run(Path(run_dir))[0]


def read_checkpoint(path: str | Path) -> Checkpoint:
    """One checkpoint folder given explicitly, with its metrics when its state logged them."""
    path = Path(path)
    if not path.is_dir():
        raise EnsembleError(f"{path}: not a folder; pass a checkpoint-N folder or a run folder")
    m = CHECKPOINT_RE.match(path.name)
    state_file = path / "trainer_state.json"
    state = _read_state(state_file) if state_file.is_file() else {}
    step = int(m.group(1)) if m else int(state.get("global_step", 0) or 0)
    return Checkpoint(path, step, metrics_by_step(state.get("log_history", [])).get(step, {}))


def newest_state(checkpoints: Sequence[Checkpoint]) -> dict | None:
    """The ``trainer_state.json`` of the highest step among ``checkpoints`` that has one (None
    when none has): what the run recorded about its metric, for checkpoint folders given one by one."""
    for c in sorted(checkpoints, key=lambda c: c.step, reverse=True):
        if (c.path / "trainer_state.json").is_file():
            return _read_state(c.path / "trainer_state.json")
    return None


def _best_step(state: Mapping) -> int | None:
    """``best_global_step`` (transformers 4.5x+), else the step in ``best_model_checkpoint``'s
    folder name (its path goes stale when a run is moved, its name does not)."""
    step = state.get("best_global_step")
    if isinstance(step, int):
        return step
    m = CHECKPOINT_RE.match(Path(str(state.get("best_model_checkpoint") or "")).name)
    return int(m.group(1)) if m else None


def _metric_for_best_model(state: Mapping, by_step: Mapping[int, Mapping[str, float]]) -> str | None:
    best, step = state.get("best_metric"), _best_step(state)
    if best is None or step is None or step not in by_step:
        return None
    names = [k for k, v in by_step[step].items() if v == best]
    return names[0] if len(names) == 1 else None


def default_metric(checkpoints: Sequence[Checkpoint], state: Mapping | None) -> str:
    """``eval_accuracy`` when logged, else the run's ``metric_for_best_model`` (recovered from
    ``state``), else ``eval_loss``."""
    logged = {k for c in checkpoints for k in c.metrics}
    if "eval_accuracy" in logged:
        return "eval_accuracy"
    if state is not None:
        name = _metric_for_best_model(state, metrics_by_step(state.get("log_history", [])))
        if name:
            return name
    return "eval_loss"


def rank_checkpoints(
    checkpoints: Sequence[Checkpoint],
    metric: str | None = None,
    greater_is_better: bool | None = None,
    *,
    state: Mapping | None = None,
    where: Path | None = None,
) -> Ranking:
    """Order checkpoints best first by an eval metric.

    Parameters
    ----------
    checkpoints : sequence of Checkpoint
    metric : str, optional
        ``eval_*`` key (the prefix may be left out). Default: ``eval_accuracy`` when logged,
        else the run's ``metric_for_best_model`` (recovered from ``state``), else ``eval_loss``.
    greater_is_better : bool, optional
        Default: the run's own (``best_metric`` is the min or the max of the metric's values when
        the metric is its ``metric_for_best_model``), else the name's (see
        :func:`infer_greater_is_better`); a name that says neither is an error.
    state : mapping, optional
        A parsed ``trainer_state.json``: the run's ``metric_for_best_model`` and its direction.
    where : Path, optional
        The folder errors name (default: the last checkpoint's run folder; a sweep's root).

    Returns
    -------
    Ranking
        Ties go to the later step. Checkpoints that did not log the metric are in ``skipped``
        and reported with a warning.
    """
    if not checkpoints:
        raise EnsembleError("no checkpoints to rank; pass a run folder or checkpoint folders")
    name = normalize_metric(metric) if metric else default_metric(checkpoints, state)
    logged = sorted({k for c in checkpoints for k in c.metrics})
    if name not in logged:
        where = where or checkpoints[-1].path.parent
        listed = ", ".join(logged) if logged else "none"
        raise EnsembleError(
            f"{where}: metric {name} is not logged in trainer_state.json (logged: {listed}); "
            f"{option('metric', 'NAME')} with one of them"
        )
    gib, source = metric_direction(name, greater_is_better, state=state, where=where or checkpoints[-1].path.parent)
    have = [c for c in checkpoints if math.isfinite(c.metrics.get(name, math.nan))]
    skipped = tuple(c for c in checkpoints if c not in have)
    if not have:
        where = where or checkpoints[-1].path.parent
        raise EnsembleError(f"{where}: {name} is NaN or infinite at every checkpoint in trainer_state.json, so nothing "
                            f"can be ranked by it; {option('metric', 'NAME')} with another logged metric")
    for c in skipped:
        log.warning("%s: no finite %s logged at step %d; skipped", c.path, name, c.step)
    sign = -1.0 if gib else 1.0
    ranked = tuple(sorted(have, key=lambda c: (sign * c.metrics[name], -c.step)))
    return Ranking(name, gib, ranked, skipped, source)


def rank_run(
    run_dir: str | Path, metric: str | None = None, greater_is_better: bool | None = None
) -> Ranking:
    """:func:`find_checkpoints` then :func:`rank_checkpoints`, with the run's newest state."""
    checkpoints, state = load_run(Path(run_dir))
    return rank_checkpoints(checkpoints, metric, greater_is_better, state=state)
