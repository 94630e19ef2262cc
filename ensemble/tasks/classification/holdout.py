"""Fold groups on an untouched validation split (a holdout): what is submitted (the fold means,
or each refit in its group's place) scored where no fit has been, and the choice ``auto`` makes
there. One piece for the report and the vote, so they choose alike."""

from __future__ import annotations

import numpy as np

__all__ = ["score_holdout"]


def score_holdout(source, split, labels, fit_idx, estimates, combine, methods, metric, oof_choice) -> dict:
    """Fold groups on an untouched validation split: each member as its fold mean, uniform and each
    estimated method as fitted on all out-of-fold rows, and, with refits, the same with each refit
    in its group's place. The candidates ``auto`` chooses among are scored as what is submitted
    (with the refits when there are refits), with intervals, and the choice is made there."""
    from ensemble.core.combination import align, as_log_probs
    from ensemble.core.combination import combine as combine_logits
    from ensemble.estimates.holdout import choose_on_holdout, holdout_scores, holdout_touches

    split.require_labels("the holdout is scored against its labels")
    hal = source.aligned(split, labels)
    arrays = [as_log_probs(a) for a in hal.arrays]
    probas = {r.name: np.exp(a) for r, a in zip(source.refs, arrays)}
    fit_arrays = [arrays[i] for i in fit_idx]
    probas["uniform"] = combine_logits(fit_arrays, None, combine)
    probas.update({m: e.weights.predict_proba(fit_arrays) for m, e in estimates.items()})
    suffix = ""
    if source.refits:  # what is submitted: each refit in its group's place, with the group's weight
        suffix, refit = " with refits", list(arrays)
        names = [x.name for x in source.refs]
        for g, r in source.refits.items():
            i = names.index(g)
            refit[i] = as_log_probs(align([source.logits(r, split)], ids=split.ids, labels=labels).arrays[0])
            probas[r.name] = np.exp(refit[i])
        refit = [refit[i] for i in fit_idx]
        probas["uniform with refits"] = combine_logits(refit, None, combine)
        probas.update({f"{m} with refits": e.weights.predict_proba(refit) for m, e in estimates.items()})
    # fold means and, with refits, the same with the refits in their groups' places: all candidates
    # under one sure-gain rule over uniform on the fold means (does retraining on every row help?)
    scores = holdout_scores(probas, hal.y, metric=metric, baseline="uniform")
    plain = ["uniform"] + [m for m in methods if m in estimates]
    offered = plain + [m + suffix for m in plain] if suffix else plain
    choice, reason = choose_on_holdout(scores, offered, metric=metric, baseline="uniform", rows=len(split))
    chosen = choice.removesuffix(suffix) if suffix else choice
    out = {"path": str(split.path), "rows": len(split), "metric": metric,
           "accuracy": {n: float(np.mean(p.argmax(axis=1) == hal.y)) for n, p in probas.items()},
           "scores": {n: vars(s) for n, s in scores.items()},
           "decided_on": "refits" if suffix and choice.endswith(suffix) else "fold means",
           "choice": chosen, "reason": reason, "oof_choice": oof_choice[0],
           "oof_reason": oof_choice[1], **holdout_touches(source, split)}
    if suffix:  # what retraining on every row did to the chosen method, on the holdout
        from ensemble.core.scores import CLASS_METRICS

        sign = 1 if CLASS_METRICS[metric] else -1  # positive: the refits helped (a loss went down)
        out["refits_gain"] = sign * (scores[chosen + suffix].score - scores[chosen].score)
    return out
