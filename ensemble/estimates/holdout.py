"""Scoring on a holdout: what is submitted, scored on rows no fit has seen, with intervals, and
the choice ``auto`` makes there.

With fold groups and a validation split beside them, every method is fitted on the out-of-fold
rows, but what is submitted is the fold means (or the refits in their groups' place). The
holdout scores that object; the choice is made on it by the sure-gain rule
(:func:`~ensemble.estimates.resampling.sure_gain`): a fitted method over uniform only when the
lower end of the paired interval of its gain on the holdout is above zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ensemble.estimates.resampling import gain_words, interval_words, score_difference_interval, sure_gain, wilson

__all__ = ["HoldoutScore", "holdout_scores", "choose_on_holdout", "holdout_overlap", "holdout_touches",
           "warn_overlap"]

METRICS = ("accuracy", "macro_f1")  # scored on predicted classes: the paired bootstrap is exact for them


@dataclass(frozen=True)
class HoldoutScore:
    """One candidate on the holdout: its score with an interval, and its gain over the baseline
    with the paired interval of that gain (positive is better)."""

    score: float
    low: float
    high: float
    gain: float
    gain_low: float
    gain_high: float


def _score_interval(metric: str, pred: np.ndarray, y: np.ndarray, C: int, confidence: float, n_resamples: int,
                    seed: int) -> tuple[float, float]:
    from scipy.stats import bootstrap

    from ensemble.core.scores import resampled_scores

    if metric == "accuracy":
        return wilson(int((pred == y).sum()), len(y), confidence)

    def stat(idx, axis=-1):
        idx = np.asarray(idx).astype(np.int64)
        s = resampled_scores(pred, y, C, idx, classes="union")[metric]
        return s if idx.ndim > 1 else s[0]

    res = bootstrap((np.arange(len(y)),), stat, vectorized=True, confidence_level=confidence, n_resamples=n_resamples,
                    method="percentile", random_state=seed)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def holdout_scores(probas: Mapping[str, np.ndarray], y: np.ndarray, *, metric: str = "accuracy",
                   baseline: str = "uniform", confidence: float = 0.95, n_resamples: int = 1000,
                   seed: int = 0) -> dict[str, HoldoutScore]:
    """Each candidate's ``metric`` on the holdout rows ``y``, with its interval, and its gain over
    ``baseline`` (one of ``probas``) with the paired bootstrap interval of the gain (positive is
    better: for log loss, the baseline's loss minus the candidate's).

    Parameters
    ----------
    probas : mapping of name to array (n, C)
        Each candidate's probabilities on the holdout rows.
    y : array of int, shape (n,)
    metric : {"accuracy", "macro_f1", "log_loss", "roc_auc", "qwk"}
    """
    from ensemble.core.errors import EnsembleError
    from ensemble.core.scores import CLASS_METRICS, resampled_metric, resampled_scores
    from ensemble.estimates.resampling import metric_interval

    if metric not in CLASS_METRICS:
        raise EnsembleError(f"the holdout decides by one of {', '.join(CLASS_METRICS)}; got {metric!r}")
    y = np.asarray(y)
    C = next(iter(probas.values())).shape[1]
    rows = np.arange(len(y))[None, :]
    out = {}
    if metric not in METRICS:  # scored on the probabilities, or not by class counts
        sign = 1 if CLASS_METRICS[metric] else -1
        value = {n: float(resampled_metric(metric, p, y, rows)[0]) for n, p in probas.items()}
        for n, p in probas.items():
            low, high = metric_interval(metric, p, y, confidence=confidence, n_resamples=n_resamples, seed=seed)
            g_low, g_high = (0.0, 0.0) if n == baseline else metric_interval(
                metric, p, y, against=probas[baseline], confidence=confidence, n_resamples=n_resamples, seed=seed)
            out[n] = HoldoutScore(value[n], low, high, sign * (value[n] - value[baseline]), g_low, g_high)
        return out
    preds = {n: np.asarray(p).argmax(axis=1) for n, p in probas.items()}
    # macro-F1 over the classes present or predicted, as metric_value, the gain's interval and
    # scikit-learn's f1_score average over
    value = {n: float(resampled_scores(p, y, C, rows, classes="union")[metric][0]) for n, p in preds.items()}
    for n, p in preds.items():
        low, high = _score_interval(metric, p, y, C, confidence, n_resamples, seed)
        if n == baseline:
            g_low = g_high = 0.0
        else:
            g_low, g_high = score_difference_interval(metric, p, preds[baseline], y, C, classes="union",
                                                      confidence=confidence, n_resamples=n_resamples, seed=seed)
        out[n] = HoldoutScore(value[n], low, high, value[n] - value[baseline], g_low, g_high)
    return out


def choose_on_holdout(scores: Mapping[str, HoldoutScore], candidates: Sequence[str], *, metric: str = "accuracy",
                      baseline: str = "uniform", rows: int | None = None) -> tuple[str, str]:
    """(choice, reason): the candidate with the best holdout score, kept over ``baseline`` only on
    a sure gain (:func:`~ensemble.estimates.resampling.sure_gain`); else the baseline."""
    fitted = [c for c in candidates if c != baseline]
    where = f"on the holdout ({rows} rows)" if rows else "on the holdout"
    if not fitted:
        return baseline, f"{baseline}: only {baseline} was offered"
    best = max(fitted, key=lambda c: scores[c].gain)  # signed: positive is better, for losses too
    s, b = scores[best], scores[baseline]
    if sure_gain((s.gain_low, s.gain_high)):
        return best, (f"{best}: {metric} {s.score:.4f} {where} against {b.score:.4f} for {baseline}, gain "
                      f"{s.gain:+.4f} [{s.gain_low:+.4f}, {s.gain_high:+.4f}] excludes zero")
    return baseline, (f"{baseline}: the best fitted method, {best}, {gain_words(s.gain)} [{s.gain_low:+.4f}, "
                      f"{s.gain_high:+.4f}] in {metric} {where}, {interval_words(s.gain_low, s.gain_high)}")


def _same_input(text: str) -> str:
    """A text as a tokenizer would likely see it: Unicode NFKC, case folded, runs of whitespace as
    one space, trimmed. Two texts equal here are treated as the same input (a holdout row that is a
    training row up to these differences has been seen by the models)."""
    import unicodedata

    return " ".join(unicodedata.normalize("NFKC", str(text)).casefold().split())


def holdout_overlap(holdout, train) -> int:
    """How many holdout rows are also training rows: the same text up to case, whitespace and
    Unicode normalisation (:func:`_same_input`, for each text column), or the same id when both
    files name their rows by an id column. Those rows were seen by every fold model but one, so
    the holdout is not untouched."""
    texts = {tuple(_same_input(x) for x in t) for t in zip(*train.texts)}
    ids = set(train.ids) if holdout.id_column is not None and train.id_column is not None else set()
    return sum(1 for i, t in zip(holdout.ids, zip(*holdout.texts))
               if tuple(_same_input(x) for x in t) in texts or i in ids)


def holdout_touches(source, split) -> dict:
    """What makes a holdout not untouched, whatever the task: ``overlap`` (rows also in the
    training split, :func:`holdout_overlap`) and ``used_by`` (members, refits included, whose
    manifest says a soup or K was chosen on this very split). The headline says it
    (:func:`~ensemble.estimates.headline.holdout_note`)."""
    from ensemble.averaging.provenance import model_notes

    refs = [*source.refs, *source.refits.values()]
    folders = {r.name: (r.parts[0].folder if r.kind == "folds" else r.folder) for r in refs}
    return {"overlap": holdout_overlap(split, source.training.split),
            "used_by": [name for name, folder in folders.items() if model_notes(folder, split.digest)[1]]}


def warn_overlap(holdout, train, n: int, log) -> None:
    """The holdout's rows that are also training rows (:func:`holdout_overlap` counted ``n``),
    said in a warning on ``log``."""
    if n:
        by_id = holdout.id_column is not None and train.id_column is not None
        log.warning("%s: %d of its %d rows are also in the training file %s (same text up to case, whitespace and "
                    "Unicode form%s): it is not an untouched holdout; remove them from one of the files", holdout.path,
                    n, len(holdout), train.path, ", or same id" if by_id else "")
