"""Fold groups without a holdout: the fold mean that is submitted, estimated where the mathematics
allows (:mod:`ensemble.estimates.decomposition`). The Brier score of the fold mean is the
out-of-fold Brier minus the ambiguity of the fold ensembles, measured on the test rows; its
accuracy is carried over from the Brier gain by the slope the members show. Both are reported
beside the out-of-fold figure, which is one fold model's."""

from __future__ import annotations

import numpy as np

__all__ = ["estimate_fold_mean"]


def _linear(weights) -> bool:
    """Whether the fold mean of these weights is the mean of the fold ensembles: a linear pool of
    probabilities, no temperature, calibration, stacker or adjustment."""
    return (weights.combine == "prob" and weights.stacker is None and weights.calibration in (None, 1.0)
            and (weights.temperatures is None or np.allclose(weights.temperatures, 1.0))
            and (weights.adjustment is None or weights.adjustment.get("kind") == "none"))


def estimate_fold_mean(source, test_split, labels, fit_idx, choice: str, estimates, fit_arrays, y, combine: str,
                       member_probas) -> dict:
    """The fold mean of ``choice`` estimated from the out-of-fold rows and the unlabelled test rows.

    Returns ``{}`` with ``why`` when it cannot be (a stacker, temperatures, another combination
    rule: the fold mean is then not the mean of the fold ensembles), else ``method``, ``brier``
    (:func:`~ensemble.estimates.decomposition.decomposed_brier`), ``accuracy`` (the
    Brier-calibrated estimate) and ``oof_accuracy`` (one fold model's)."""
    from ensemble.core.combination import align
    from ensemble.core.combination import combine as combine_logits
    from ensemble.core.scores import accuracy
    from ensemble.estimates.decomposition import brier_calibrated_accuracy, brier_rows, decomposed_brier

    refs = [source.refs[i] for i in fit_idx]
    weights = None if choice == "uniform" else estimates[choice].weights
    if combine != "prob" or (weights is not None and not _linear(weights)):
        return {"why": f"{choice} is not a linear pool of probabilities (a stacker, temperatures or combine={combine})"
                       ": its fold mean is not the mean of the fold ensembles, and the decomposition does not hold"}
    w = np.full(len(refs), 1 / len(refs)) if weights is None else np.asarray(weights.weights, dtype=np.float64)
    K = len(refs[0].parts)
    fold_q = []
    for k in range(K):  # the fold-k ensemble on the test rows: every group's fold-k model, pooled
        arrays = [align([source.logits(r.parts[k], test_split)], ids=test_split.ids, labels=labels).arrays[0]
                  for r in refs]
        fold_q.append(combine_logits(arrays, w, "prob"))
    oof = combine_logits(fit_arrays, None, combine) if weights is None else estimates[choice].oof_proba
    d, oof_accuracy = decomposed_brier(oof, y, fold_q), accuracy(oof, y)
    points = [(float(brier_rows(p, y).mean()), accuracy(p, y)) for p in member_probas] + [(d["oof_brier"], oof_accuracy)]
    return {"method": choice, "brier": d, "oof_accuracy": oof_accuracy, "test_split": str(test_split.path),
            "accuracy": brier_calibrated_accuracy(points, oof_accuracy, d["oof_brier"], d["estimate"])}
