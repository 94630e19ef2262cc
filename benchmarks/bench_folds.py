"""K-fold training: how much better are weights and estimates fitted on the out-of-fold (OOF) rows
of every training row than on a small validation split? A simulation with known truth (issue 17,
part (a); the real-BERT part (b) needs the fold members that are not built yet).

Each backbone b is trained K times; fold model k never saw the rows of fold k. For a row of
class y, fold model k of backbone b gives logits

    t_bk * (strength_b * onehot(y) + sqrt(rho) * shared + sqrt(1 - rho) * own_b) + fold_noise * e_bk

(``shared``: errors every backbone has; ``own_b``: backbone b's own; ``e_bk``: what differs between
the fold models of one backbone, with a scale t_bk near 1). A training row's OOF logits come from
the one fold model that did not see it; a test row's prediction of a backbone is the mean of its
K fold models' probabilities (what `ensemble` will do with a fold group).

Each seed draws 8,000 training rows (5 stratified folds, `ensemble.folds.assign_folds`), a
500- and a 1,000-row validation split and 50,000 test rows, and runs `select_method`
(`--weights auto`: acc, optimize, select, stack) three ways:

  * OOF: fitted and estimated on the 8,000 OOF rows, cross-validated on the training folds
    (`splits=` the fold of each row);
  * valid 500 / valid 1000: fitted and estimated on the validation rows (fold-mean predictions, as
    a user without OOF logits has), repeated stratified folds.

It prints, per way: the mean |cross-validated estimate - test accuracy| of every method (goal for
OOF: at most 0.6 points), the same of the chosen one, the test accuracy of what auto chose, and
for OOF the gap between the estimate's subject (one fold model per row) and the test's (the fold
mean): uniform's OOF accuracy against the fold mean's on test.

    python benchmarks/bench_folds.py [--seeds 100] [--fold-noise 0,0.5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STRENGTHS = (1.5, 1.2, 0.7)
CLASSES = 4
K = 5
TRAIN, TEST = 8000, 50_000
VALID = (500, 1000)
RHO = 0.5


def backbones(n: int, y: np.ndarray, rng) -> list[np.ndarray]:
    """Each backbone's fold-free logits (n, C): strength on the true class, shared and own errors."""
    shared = rng.normal(size=(n, CLASSES))
    out = []
    for s in STRENGTHS:
        z = np.sqrt(RHO) * shared + np.sqrt(1 - RHO) * rng.normal(size=(n, CLASSES))
        z[np.arange(n), y] += s
        out.append(z)
    return out


def fold_models(base: list[np.ndarray], scales: np.ndarray, noise: float, rng) -> list[list[np.ndarray]]:
    """[backbone][fold] logits (n, C) of every fold model on the same rows."""
    n = len(base[0])
    return [[scales[b, k] * z + noise * rng.normal(size=(n, CLASSES)) for k in range(K)]
            for b, z in enumerate(base)]


def fold_mean(models: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Each backbone's prediction: the log of its fold models' mean probability."""
    from ensemble.combination import softmax

    return [np.log(np.mean([softmax(z) for z in per_fold], axis=0)) for per_fold in models]


def one_seed(seed: int, noise: float) -> dict:
    from ensemble.estimate import select_method
    from ensemble.folds import assign_folds
    from ensemble.voting import combine

    rng = np.random.default_rng(seed)
    # fold models of one backbone differ (none of that without noise)
    scales = rng.uniform(0.8, 1.2, size=(len(STRENGTHS), K)) if noise else np.ones((len(STRENGTHS), K))
    y = rng.integers(0, CLASSES, TRAIN)
    fold, _ = assign_folds(TRAIN, K, labels=y, seed=seed)
    train_models = fold_models(backbones(TRAIN, y, rng), scales, noise, rng)
    oof = [np.stack([per_fold[k] for k in range(K)])[fold, np.arange(TRAIN)] for per_fold in train_models]
    yt = rng.integers(0, CLASSES, TEST)
    test = fold_mean(fold_models(backbones(TEST, yt, rng), scales, noise, rng))
    out = {"uniform_oof": float(np.mean(combine(oof).argmax(axis=1) == y)),
           "uniform_test": float(np.mean(combine(test).argmax(axis=1) == yt))}
    ways = {"OOF": (oof, y, fold)}
    for n in VALID:
        yv = rng.integers(0, CLASSES, n)
        ways[f"valid {n}"] = (fold_mean(fold_models(backbones(n, yv, rng), scales, noise, rng)), yv, None)
    for way, (arrays, labels, splits) in ways.items():
        choice, _, estimates = select_method(arrays, labels, seed=seed, splits=splits)
        errors, chosen_err = [], None
        for method, e in estimates.items():
            test_acc = float(np.mean(e.weights.predict_proba(test).argmax(axis=1) == yt))
            errors.append(abs(e.cross_validated["accuracy"] - test_acc))
            if method == choice:
                chosen_err = errors[-1]
        chosen_test = out["uniform_test"] if choice == "uniform" else float(
            np.mean(estimates[choice].weights.predict_proba(test).argmax(axis=1) == yt))
        if choice == "uniform":  # uniform's own estimate: its cross-validated score is its score on the rows
            chosen_err = abs(float(np.mean(combine(arrays).argmax(axis=1) == labels)) - out["uniform_test"])
        out[way] = {"errors": errors, "chosen": choice, "chosen_err": chosen_err, "chosen_test": chosen_test}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--fold-noise", default="0,0.5", help="how much the fold models of a backbone differ (a list)")
    args = ap.parse_args()
    for noise in (float(v) for v in args.fold_noise.split(",")):
        t0 = time.perf_counter()
        report(noise, [one_seed(s, noise) for s in range(args.seeds)], args.seeds, time.perf_counter() - t0)


def report(noise: float, runs: list[dict], seeds: int, seconds: float) -> None:
    print(f"\nfold-model noise {noise} ({seeds} seeds: {TRAIN} training rows in {K} folds, {len(STRENGTHS)} backbones "
          f"of strengths {', '.join(map(str, STRENGTHS))}, {CLASSES} classes, test {TEST} rows; {seconds:.0f} s)")
    print("| fitted and estimated on | mean abs(cv - test), every method | the chosen one | auto chose "
          "| test accuracy of the choice |")
    print("| --- | --- | --- | --- | --- |")
    for way in ("OOF", *(f"valid {n}" for n in VALID)):
        errors = [e for r in runs for e in r[way]["errors"]]
        chosen = [r[way]["chosen_err"] for r in runs]
        picks = {}
        for r in runs:
            picks[r[way]["chosen"]] = picks.get(r[way]["chosen"], 0) + 1
        pick_text = ", ".join(f"{m} {c}" for m, c in sorted(picks.items(), key=lambda kv: -kv[1]))
        print(f"| {way} | {100 * np.mean(errors):.2f} points | {100 * np.mean(chosen):.2f} points | {pick_text} "
              f"| {np.mean([r[way]['chosen_test'] for r in runs]):.4f} |")
    gap = np.mean([r["uniform_test"] - r["uniform_oof"] for r in runs])
    print(f"uniform: OOF accuracy (one fold model per row) {np.mean([r['uniform_oof'] for r in runs]):.4f}, test "
          f"accuracy of the fold mean {np.mean([r['uniform_test'] for r in runs]):.4f}: the OOF figure is "
          f"{100 * gap:+.2f} points conservative")


if __name__ == "__main__":
    main()
