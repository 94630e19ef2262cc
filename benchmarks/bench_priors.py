"""Class-prior adjustment under a simulated label shift with known truth.

Three classes with Gaussian features (unit variance, means (0,0), (1.2,0), (0,1.2)); the
"ensemble" is the exact posterior under the validation prior, so it is calibrated to validation
as the fitted methods make it. Each seed draws 2,000 validation rows from the validation prior
and 50,000 test rows from the target prior, runs ``select_adjustment`` (``--adjust auto``:
"prior" and "fit", 5-fold cross-validation repeated twice, held-out rows weighted by
pi_t / pi_v) on validation alone, and scores each adjustment on test.

  (a) label shift: validation prior (0.6, 0.3, 0.1), target (0.2, 0.3, 0.5). The correct
      offsets are log(pi_t / pi_v) and the Bayes classifier under pi_t is the best possible.
  (b) no shift: target = validation prior. No adjustment can help; auto should keep none.

Printed: test accuracy of none / prior / fit against the Bayes classifier; the mean error of
the cross-validated estimate against test; auto's choices.

Last, the cost of ``--adjust auto`` on 100,000 rows x 10 models x 10 classes.

    python benchmarks/bench_priors.py [--seeds 50] [--cost-only]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MEANS = np.array([[0.0, 0.0], [1.2, 0.0], [0.0, 1.2]])
PI_V = np.array([0.6, 0.3, 0.1])
SCENARIOS = {"a: label shift": np.array([0.2, 0.3, 0.5]), "b: no shift": PI_V}
VALID, TEST = 2000, 50_000


def _draw(n, prior, rng):
    y = rng.choice(3, size=n, p=prior)
    x = MEANS[y] + rng.normal(size=(n, 2))
    return -0.5 * ((x[:, None, :] - MEANS[None]) ** 2).sum(axis=2), y


def main() -> None:
    from ensemble.tasks.classification.offsets import fit_adjustment
    from ensemble.core.combination import softmax
    from ensemble.tasks.classification.offset_choice import select_adjustment

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--cost-only", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite), not its figures")
    args = ap.parse_args()
    if args.smoke:
        global VALID, TEST
        VALID, TEST = 300, 1000
        args.seeds = 1
    if args.cost_only:
        return cost()
    t0 = time.perf_counter()
    print(f"{VALID} validation rows from the validation prior {PI_V.tolist()}, {TEST} test rows from the target; "
          f"{args.seeds} seeds; accuracy")
    for scenario, pi_t in SCENARIOS.items():
        truth = {k: [] for k in ("none", "prior", "fit", "bayes")}
        errors = {k: [] for k in ("none", "prior", "fit")}
        choices = Counter()
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            lv, yv = _draw(VALID, PI_V, rng)
            lt, yt = _draw(TEST, pi_t, rng)
            zv, zt = lv + np.log(PI_V), lt + np.log(PI_V)
            choice, _, est = select_adjustment([zv], yv, "uniform", target=pi_t, seed=seed)
            choices[choice] += 1
            truth["bayes"].append(np.mean((lt + np.log(pi_t)).argmax(axis=1) == yt))
            acc_none = np.mean(zt.argmax(axis=1) == yt)
            truth["none"].append(acc_none)
            errors["none"].append(est["prior"].baseline["accuracy"] - acc_none)
            for kind in ("prior", "fit"):
                adj = fit_adjustment(softmax(zv), yv, kind, target=pi_t)
                acc = np.mean(adj.apply(softmax(zt)).argmax(axis=1) == yt)
                truth[kind].append(acc)
                errors[kind].append(est[kind].scores["accuracy"] - acc)
        print(f"\n{scenario}: target prior {pi_t.tolist()}")
        print(f"  {'adjust':<6}  {'test accuracy':>13}  {'cv - test (mean)':>16}  {'|cv - test|':>11}")
        for k in ("none", "prior", "fit"):
            print(f"  {k:<6}  {np.mean(truth[k]):13.4f}  {np.mean(errors[k]):+16.4f}  {np.mean(np.abs(errors[k])):11.4f}")
        print(f"  {'bayes':<6}  {np.mean(truth['bayes']):13.4f}  (the best possible under the target prior)")
        print("  auto chose: " + ", ".join(f"{k} {v}/{args.seeds}" for k, v in sorted(choices.items())))
    print(f"\n{time.perf_counter() - t0:.1f} s")
    if not args.smoke:
        cost()


def cost() -> None:
    """``--adjust auto`` on 100,000 rows x 10 models x 10 classes, uniform weights: time and peak memory."""
    import resource

    from ensemble.tasks.classification.offset_choice import select_adjustment

    rng = np.random.default_rng(0)
    n, M, C = 100_000, 10, 10
    y = rng.integers(0, C, n)
    arrays = [rng.normal(size=(n, C)) + 1.5 * np.eye(C)[y] for _ in range(M)]
    t = time.perf_counter()
    choice, _, _ = select_adjustment(arrays, y, "uniform", target=np.full(C, 1 / C))
    print(f"cost: --adjust auto (prior and fit, 5 folds, 1 round above 10,000 rows) on {n} rows x {M} models x {C} classes: "
          f"{time.perf_counter() - t:.1f} s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
          f"(chose {choice})")


if __name__ == "__main__":
    main()
