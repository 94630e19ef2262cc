"""Does the honest estimate tell the truth? A simulation with known ground truth.

Member logits come from a known generator: for a row of class y, member m's logits are
``strength_m * onehot(y) + sqrt(rho) * shared + sqrt(1 - rho) * own_m`` (shared noise: the
errors members have in common). Each seed draws a validation set (500, 1,000, 2,000 or 5,000
rows, by turns) and a test set of 50,000 rows from the same generator, runs ``select_method``
(``--weights auto``: acc, optimize, select and stack, 5-fold cross-validation repeated twice) on
validation only, and compares with the truth on test:

  (a) equal members (four of strength 1.0): auto must pick uniform in >= 95% of seeds, and the
      interval of each fitted method's gain over uniform must contain its true test gain in
      >= 90% of (seed, method) pairs;
  (b) different members (strengths 1.4, 1.4 and a weak 0.2, plus a near-duplicate of the
      first): auto must pick a fitted method in >= 80% of seeds, and the mean absolute error of
      the cross-validated accuracy against the test accuracy must be <= 1 point (the apparent
      accuracy's error is printed beside it).

Last, the cost: cross-validating every method on 10,000 rows x 10 models x 10 classes.

    python benchmarks/bench_honesty.py [--seeds 100] [--classes 4] [--cost-only]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCENARIOS = {
    "a: equal members": {"strengths": [1.0, 1.0, 1.0, 1.0], "duplicate": None},
    "b: different members": {"strengths": [1.4, 1.4, 0.2], "duplicate": 0},
}
SIZES = (500, 1000, 2000, 5000)
TEST_ROWS = 50_000
RHO = 0.5


def draw(n: int, classes: int, scenario: dict, rng) -> tuple[list[np.ndarray], np.ndarray]:
    y = rng.integers(0, classes, n)
    shared = rng.normal(size=(n, classes))
    members = []
    for s in scenario["strengths"]:
        z = np.sqrt(RHO) * shared + np.sqrt(1 - RHO) * rng.normal(size=(n, classes))
        z[np.arange(n), y] += s
        members.append(z)
    if scenario["duplicate"] is not None:
        members.append(members[scenario["duplicate"]] + 0.1 * rng.normal(size=(n, classes)))
    return members, y


def run(seeds: int, classes: int, only: str | None = None) -> None:
    from ensemble.core.combination import combine
    from ensemble.core.scores import accuracy
    from ensemble.tasks.classification.estimate import select_method

    for name, scenario in SCENARIOS.items():
        if only and not name.startswith(only):
            continue
        t0 = time.perf_counter()
        picks_uniform, covered, pairs = 0, 0, 0
        cv_err, apparent_err, gains, sizes, test_accs = [], [], [], [], []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            n = SIZES[seed % len(SIZES)]
            valid, y = draw(n, classes, scenario, rng)
            test, yt = draw(TEST_ROWS, classes, scenario, rng)
            choice, _, estimates = select_method(valid, y, seed=seed)
            picks_uniform += choice == "uniform"
            uniform_test = accuracy(combine(test, None), yt)
            for method, e in estimates.items():
                test_acc = accuracy(e.weights.predict_proba(test), yt)
                true_gain = test_acc - uniform_test
                lo, hi = e.gain_interval["accuracy"]
                covered += lo <= true_gain <= hi
                pairs += 1
                cv_err.append(abs(e.cross_validated["accuracy"] - test_acc))
                sizes.append(n)
                test_accs.append(test_acc)
                apparent_err.append(abs(e.apparent["accuracy"] - test_acc))
                gains.append(true_gain)
        dt = time.perf_counter() - t0
        print(f"{name} ({seeds} seeds, validation {'/'.join(map(str, SIZES))} rows, test {TEST_ROWS}, {dt:.0f} s)")
        print(f"  auto picked uniform in {picks_uniform / seeds:.1%} of seeds, a fitted method in "
              f"{1 - picks_uniform / seeds:.1%}")
        print(f"  the gain interval contained the true test gain in {covered / pairs:.1%} of {pairs} (seed, method) pairs")
        print(f"  mean |cross-validated - test| accuracy {100 * np.mean(cv_err):.2f} points; "
              f"mean |apparent - test| {100 * np.mean(apparent_err):.2f} points; mean true gain of fitted "
              f"methods over uniform {100 * np.mean(gains):+.2f} points")
        by_size = ", ".join(f"{n}: {100 * np.mean(np.array(cv_err)[np.array(sizes) == n]):.2f}" for n in SIZES)
        print(f"  mean |cross-validated - test| by validation rows (points): {by_size}")
        p = float(np.mean(test_accs))
        floor = ", ".join(f"{n}: {100 * np.sqrt(2 / np.pi) * np.sqrt(p * (1 - p) / n):.2f}" for n in SIZES)
        print(f"  sampling floor, the mean |error| of any estimate from n rows, sqrt(2/pi) x binomial SE (points): {floor}")


def cost(rows: int = 10_000, models: int = 10, classes: int = 10) -> None:
    """The time to cross-validate every method (5 folds x 2 repeats) on one validation set."""
    from ensemble.tasks.classification.estimate import select_method

    rng = np.random.default_rng(0)
    valid, y = draw(rows, classes, {"strengths": list(np.linspace(0.6, 1.6, models)), "duplicate": None}, rng)
    t0 = time.perf_counter()
    choice, reason, estimates = select_method(valid, y, ("acc", "optimize", "select", "stack"))
    dt = time.perf_counter() - t0
    print(f"cost: cross-validating acc, optimize, select and stack (5 folds x 2 repeats, plus the full fits) on "
          f"{rows} rows x {models} models x {classes} classes: {dt:.1f} s; auto -> {choice}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--cost-only", action="store_true")
    ap.add_argument("--scenario", choices=["a", "b"], default=None, help="Run one scenario only.")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite), not its figures")
    args = ap.parse_args()
    if args.smoke:
        global SIZES, TEST_ROWS
        SIZES, TEST_ROWS = (150,), 1000
        run(1, 3, "a")
        return cost(rows=300, models=3, classes=3)
    if not args.cost_only:
        run(args.seeds, args.classes, args.scenario)
    cost()


if __name__ == "__main__":
    main()
