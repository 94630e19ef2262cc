"""The winner's curse of a sweep, measured: trials of equal true quality, the best picked on
validation, and what ``ensemble report`` says about it.

Each sweep draws N trials of true accuracy 0.80 (each right on a row with probability 0.80,
independently: ``ensemble.cli.example.synthetic_trials``) on 1,000 validation rows and 20,000 test
rows. On validation alone it records the apparent best score (the best trial's validation
accuracy, what a user would report) and the cross-validated estimate of the procedure "pick the
best trial on validation" (5-fold, repeated twice: picked on the other folds, scored on the
held-out one, as the report does); on test, the picked trial's true accuracy. The same for
"average the 3 best" (best3). Printed per N: means over sweeps, and each estimate's mean error
against the test truth.

    python benchmarks/bench_winners_curse.py [--sweeps 100] [--trials 5,15,30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VALID, TEST, ACCURACY = 1000, 20_000, 0.80


def one_sweep(trials: int, seed: int) -> dict:
    from ensemble.cli.example import synthetic_trials
    from ensemble.tasks.classification.estimate import cross_validate

    arrays, y = synthetic_trials(VALID + TEST, trials, ACCURACY, classes=3, seed=seed)
    valid = [a[:VALID] for a in arrays]
    test = [a[VALID:] for a in arrays]
    yv, yt = y[:VALID], y[VALID:]
    out = {}
    for method in ("best", "best3"):
        est = cross_validate(valid, yv, method, folds=5, repeats=2, seed=seed, metrics=("accuracy",))
        proba = est.weights.predict_proba(test)
        out[method] = (est.apparent["accuracy"], est.cross_validated["accuracy"],
                       float(np.mean(proba.argmax(axis=1) == yt)))
    out["mean_valid"] = float(np.mean([np.mean(a.argmax(axis=1) == yv) for a in valid]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=100)
    ap.add_argument("--trials", default="5,15,30")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite), not its figures")
    args = ap.parse_args()
    if args.smoke:
        args.sweeps, args.trials = 1, "5"
    t0 = time.perf_counter()
    print(f"trials of true accuracy {ACCURACY:.2f}; {VALID} validation rows, {TEST} test rows; "
          f"{args.sweeps} sweeps each; means over sweeps")
    head = (f"{'N':>3}  {'procedure':<9}  {'apparent':>8}  {'cv estimate':>11}  {'true (test)':>11}  "
            f"{'apparent - true':>15}  {'cv - true':>9}  {'|cv - true|':>11}")
    print(head)
    for n in (int(v) for v in args.trials.split(",")):
        runs = [one_sweep(n, 1000 * n + s) for s in range(args.sweeps)]
        for method in ("best", "best3"):
            app, cv, true = (np.array([r[method][i] for r in runs]) for i in range(3))
            print(f"{n:>3}  {method:<9}  {app.mean():8.4f}  {cv.mean():11.4f}  {true.mean():11.4f}  "
                  f"{(app - true).mean():+15.4f}  {(cv - true).mean():+9.4f}  {np.abs(cv - true).mean():11.4f}")
        print(f"{n:>3}  {'(a trial)':<9}  {np.mean([r['mean_valid'] for r in runs]):8.4f}  "
              "<- the trials' mean validation accuracy")
    print(f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
