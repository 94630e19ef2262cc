"""Greedy soup and the search over K: candidates scored on a holdout split, kept when they help."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ensemble.averaging.checkpoints import Checkpoint, Ranking
from ensemble.core.errors import EnsembleError, flag
from ensemble.io.tensors import DTYPES, FLOAT_DTYPES, to_float

log = logging.getLogger(__name__)
from ensemble.averaging.reading import open_weights
from ensemble.averaging.selection import Selection


class _HoldoutScorer:
    """Accuracy on a labelled split of the average of a set of checkpoints, computed in memory:
    a running float32 sum of the state dicts, loaded into one model for each evaluation."""

    def __init__(self, best: Checkpoint, tok_dir: Path, holdout, batch_size: int, device: str,
                 trust_remote_code: bool = False):
        from ensemble.inference.models import ModelRef
        from ensemble.inference.session import ModelSession
        from ensemble.inference.settings import InferenceSettings

        self.session = ModelSession(ModelRef.open(best.path, tokenizer=tok_dir),
                                    InferenceSettings(batch_size=batch_size, device=device,
                                                      trust_remote_code=trust_remote_code), cache=None)
        self.holdout = holdout
        self.y = holdout.label_indices(self.session.ref.labels, model=str(best.path))
        self.enc = self.session.encode(holdout)

    @staticmethod
    def load(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
        ws = open_weights(checkpoint.path)
        try:
            out = {}
            for name, (reader, info) in ws.where.items():
                if info.dtype in FLOAT_DTYPES:
                    buf = bytearray(info.nbytes)
                    part = reader.read(info, 0, info.numel, buf) if info.numel else np.zeros(0, DTYPES[info.dtype][0])
                    out[name] = to_float(part, info.dtype, np.dtype("float32")).reshape(info.shape).copy()
            return out
        finally:
            ws.close()

    def score(self, total: dict[str, np.ndarray], count: int) -> float:
        import torch

        model = self.session.model
        state = {k: torch.from_numpy(v / count) for k, v in total.items()}
        result = model.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise EnsembleError(f"{self.session.ref.folder}: tensor {result.unexpected_keys[0]!r} is not in the model; "
                                "only checkpoints of one model can be averaged")
        values = self.session.compute(self.holdout, self.enc)
        return float((values.argmax(axis=1) == self.y).mean())


def search_k(ranking: Ranking, method: str, k, holdout, tok_dir: Path, batch_size: int, device: str,
            progress: bool, trial_of=lambda c: None, trust_remote_code: bool = False) -> tuple[tuple[Checkpoint, ...], dict]:
    """Greedy soup, or the K whose top-K average scores best on ``holdout``.

    Greedy soup (Wortsman et al., 2022, recipe 1): checkpoints in metric order, each added to the
    running average when the held-out accuracy does not drop. A tie adds it: an average of more
    checkpoints that scores the same is at least as flat a solution, and the paper's rule is the
    same (>=). K search: the top-K average for each K; the best score wins, the larger K on ties.
    """
    from tqdm.auto import tqdm

    candidates = list(ranking.ranked)
    if method == "greedy" and isinstance(k, int):
        candidates = candidates[:k]
    ks = None
    if method == "uniform":
        ks = tuple(range(1, len(candidates) + 1)) if k == "auto" else k
        if max(ks) > len(candidates):
            raise EnsembleError(f"{candidates[0].path.parent}: k={max(ks)} but only {len(candidates)} "
                                f"checkpoints have the metric; pass smaller values of {flag('k')}")
        candidates = candidates[:max(ks)]
    scorer = _HoldoutScorer(candidates[0], tok_dir, holdout, batch_size, device, trust_remote_code)
    metric = ranking.metric
    trials, chosen = [], []
    total, count, best = None, 0, -1.0
    with tqdm(total=len(candidates), desc=f"{method} search", unit="ckpt", disable=not progress, leave=False) as bar:
        for ck in candidates:
            weights = scorer.load(ck)
            trial = weights if total is None else {n: total[n] + weights[n] for n in total}
            del weights
            if method == "greedy":
                acc = scorer.score(trial, count + 1)
                accepted = acc >= best
                if accepted:
                    total, count, best = trial, count + 1, acc
                    chosen.append(ck)
                trial = trial_of(ck)
                trials.append({**({"trial": trial.name} if trial is not None else {}), "step": ck.step,
                               "metric_value": ck.metrics.get(metric), "holdout_accuracy": acc, "accepted": accepted})
            else:
                total, count = trial, count + 1
                if count in ks:
                    acc = scorer.score(total, count)
                    trials.append({"k": count, "holdout_accuracy": acc})
                    if acc >= best:
                        best, chosen = acc, candidates[:count]
            bar.update(1)
    holdout_info = {"path": str(holdout.path.resolve()), "data_digest": holdout.digest, "rows": len(holdout),
                    "metric": "accuracy", "score": best}
    for t in trials:
        log.info("  %s", ", ".join(f"{a}={b:.4f}" if isinstance(b, float) else f"{a}={b}" for a, b in t.items()))
    log.info("%s: %d checkpoints chosen on %s (accuracy %.4f)", "greedy soup" if method == "greedy" else "k search",
             len(chosen), holdout.path, best)
    return tuple(chosen), {"method": method, "holdout": holdout_info, "trials": trials}


def log_soup(selection: Selection) -> None:
    """The ranked table (or the sweep's trials) and what was chosen, in the log."""
    if selection.sweep is not None:
        log.info("%s", selection.sweep.format_table())
        for c in selection.chosen:
            log.info("chosen: trial %s, %s (%s %.6g)", selection.trial_of(c).name, c.name, selection.ranking.metric,
                     c.metrics[selection.ranking.metric])
    elif selection.ranking is not None:
        log.info("%s", selection.ranking.format_table(selection.chosen))
