"""The competition's metric: are its intervals honest, is ``auto`` honest in it, and what do they cost?

Members come from the generator of ``bench_honesty.py`` (a row's logits: its class's strength
plus noise shared between members and noise of their own). Each seed draws a validation set and a
test set of 50,000 rows, and:

  (a) coverage: the 95% interval of uniform's ROC AUC and quadratic weighted kappa on the
      validation rows (what the headline gives; nothing is fitted) must contain the test value in
      >= 90% of seeds;
  (b) ``--weights auto`` by ROC AUC, then by log loss: equal members (where uniform is as good as
      any weighting for ROC AUC, and only a recalibration, which ``stack`` does, helps log loss);
      when auto keeps a fitted method, it must beat uniform on the test draw in >= 90% of those
      seeds; the share of seeds it keeps uniform is printed;
  (c) members on different calibration (one of them 8x over-confident): the rank average's test
      ROC AUC against the probability average's, over the seeds.

Last, the cost of one interval (1,000 paired resamples) against scikit-learn's ``roc_auc_score``
and ``cohen_kappa_score`` looped over the same resamples, measured in the same run.

    python benchmarks/bench_metrics.py [--seeds 100] [--rows 1000] [--smoke]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_honesty import draw  # noqa: E402  (the same generator)

TEST_ROWS = 50_000


def honesty(seeds: int, rows: int, classes: int) -> None:
    from ensemble.core.combination import combine
    from ensemble.core.scores import qwk, roc_auc
    from ensemble.tasks.classification.estimate import estimate_interval, metric_value, select_method

    equal = {"strengths": [1.0, 1.0, 1.0, 1.0], "duplicate": None}
    covered = {"roc_auc": 0, "qwk": 0}
    uniform_chosen = {"roc_auc": 0, "log_loss": 0}
    fitted_won = {"roc_auc": [0, 0], "log_loss": [0, 0]}  # (chosen, beat uniform on test)
    rank_minus_prob = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        valid, y = draw(rows, classes, equal, rng)
        test, yt = draw(TEST_ROWS, classes, equal, rng)
        for metric, fn in (("roc_auc", roc_auc), ("qwk", qwk)):
            p = combine(valid)
            low, high = estimate_interval(metric, fn(p, y), p, y, seed=seed)
            covered[metric] += low <= fn(combine(test), yt) <= high
        for metric in uniform_chosen:
            choice, _, estimates = select_method(valid, y, ("acc", "optimize", "select", "stack"), metric=metric,
                                                 seed=seed)
            uniform_chosen[metric] += choice == "uniform"
            if choice != "uniform":
                sign = 1 if metric == "roc_auc" else -1
                chosen = estimates[choice].weights.predict_proba(test)
                fitted_won[metric][0] += 1
                fitted_won[metric][1] += sign * (metric_value(metric, chosen, yt)
                                                 - metric_value(metric, combine(test), yt)) > 0
        skewed = {"strengths": [1.2, 1.0, 0.8], "duplicate": None}
        t2, yt2 = draw(TEST_ROWS, classes, skewed, rng)
        t2[0] = t2[0] * 8.0  # the strongest member, over-confident: the same order of its rows, other scales
        rank_minus_prob.append(roc_auc(combine(t2, rule="rank"), yt2) - roc_auc(combine(t2), yt2))
    print(f"{seeds} seeds, {rows} validation rows, {classes} classes, test {TEST_ROWS} rows")
    for metric, k in covered.items():
        share = k / seeds
        print(f"(a) uniform's 95% interval of {metric} holds its test value in {share:.0%} of seeds "
              f"(goal >= 90%): {'PASS' if share >= 0.9 else 'FAIL'}")
    for metric, k in uniform_chosen.items():
        chosen, won = fitted_won[metric]
        verdict = "PASS" if not chosen or won >= 0.9 * chosen else "FAIL"
        print(f"(b) equal members, auto by {metric}: uniform in {k / seeds:.0%} of seeds; a fitted method in {chosen}, "
              f"which beat uniform on the test draw in {won} (goal >= 90% of them): {verdict}")
    d = np.asarray(rank_minus_prob)
    print(f"(c) one member 8x over-confident: test ROC AUC of the rank average minus the probability average "
          f"{d.mean():+.4f} (min {d.min():+.4f}, max {d.max():+.4f})")


def cost(sizes, resamples: int = 1000) -> None:
    from sklearn.metrics import cohen_kappa_score, roc_auc_score

    from ensemble.core.combination import softmax
    from ensemble.estimates.resampling import metric_interval

    print(f"cost of one paired interval, {resamples} resamples (ratio: scikit-learn looped over the same "
          "resamples / ensemble's, same run)")
    for n, C in sizes:
        rng = np.random.default_rng(0)
        y = rng.integers(0, C, n)
        z = rng.normal(size=(n, C))
        z[np.arange(n), y] += 1.0
        p, q = softmax(z), softmax(z + rng.normal(size=(n, C)))
        idx = np.random.default_rng(1).integers(0, n, (resamples, n))
        for metric in ("roc_auc", "qwk"):
            t0 = time.perf_counter()
            metric_interval(metric, p, y, against=q, n_resamples=resamples)
            ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            for rows in idx:
                if metric == "roc_auc":
                    a = (roc_auc_score(y[rows], p[rows, 1]) if C == 2 else
                         roc_auc_score(y[rows], p[rows], multi_class="ovr", labels=range(C)))
                    b = (roc_auc_score(y[rows], q[rows, 1]) if C == 2 else
                         roc_auc_score(y[rows], q[rows], multi_class="ovr", labels=range(C)))
                else:
                    a = cohen_kappa_score(y[rows], p[rows].argmax(1), weights="quadratic", labels=range(C))
                    b = cohen_kappa_score(y[rows], q[rows].argmax(1), weights="quadratic", labels=range(C))
            base = time.perf_counter() - t0
            print(f"  {n} rows x {C} classes, {metric}: {ours:.2f} s; scikit-learn loop {base:.2f} s; "
                  f"{base / ours:.1f}x faster")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--honesty-only", action="store_true", help="skip the cost")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite), not its figures")
    args = ap.parse_args()
    if args.smoke:
        global TEST_ROWS
        TEST_ROWS = 2000
        honesty(1, 200, 3)
        return cost([(200, 2), (200, 3)], resamples=20)
    honesty(args.seeds, args.rows, args.classes)
    if args.honesty_only:
        return
    cost([(2000, 2), (10000, 2), (2000, 10), (10000, 10)])


if __name__ == "__main__":
    main()
