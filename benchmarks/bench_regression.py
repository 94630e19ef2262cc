"""Regression and multi-label ensembles: does the honest estimate tell the truth, and what does
``report`` cost? Simulations with known truth (tests/synthetic_members.py ``draw_values``).

Each seed draws 1,000 validation rows and 50,000 test rows from the same generator, runs
``--weights auto`` (score, optimize, select, stack and uniform, each refitted in 5 folds repeated
twice, thresholds included) on validation only, fits the chosen method on every validation row,
and scores it on test: the truth the estimate is compared with.

  regression (one target, Pearson): members ``y + noise / s`` with strengths (2.0, 1.0, 0.6, 0.6)
      and shared noise; the goal is a mean |estimate - test Pearson| <= 0.01.
  multi-label (8 labels, micro-F1, one global threshold fitted): members ``s (2y - 1) + noise``
      with strengths (1.6, 1.0, 0.6); the goal is a mean |estimate - test micro-F1| <= 1 point.
  each again with equal members, where auto should keep uniform.

Printed beside each: the apparent score's error (fitted and scored on the same rows) and what
auto chose. Last, the cost of ``report`` (members cached on disk, read through the cache) at
20,000 rows x 10 members x 6 targets (regression) and x 30 labels (multi-label); goal < 60 s.

    python benchmarks/bench_regression.py [--seeds 50] [--task regression|multi_label] [--cost-only]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.synthetic_members import draw_values, make_value_members  # noqa: E402

VALID_ROWS, TEST_ROWS = 1000, 50_000
SETTINGS = {
    "regression": {"task": "regression", "strengths": [2.0, 1.0, 0.6, 0.6], "targets": 1, "metric": "pearson",
                   "goal": 0.01},
    "multi_label": {"task": "multi_label", "strengths": [1.6, 1.0, 0.6], "targets": 8, "metric": "f1_micro",
                    "goal": 0.01},
    # equal members: nothing to gain from fitting, so auto should keep uniform
    "regression, equal members": {"task": "regression", "strengths": [1.0, 1.0, 1.0, 1.0], "targets": 1,
                                  "metric": "pearson", "goal": 0.01},
    "multi_label, equal members": {"task": "multi_label", "strengths": [1.0, 1.0, 1.0], "targets": 8,
                                   "metric": "f1_micro", "goal": 0.01},
}


def honesty(scenario: str, seeds: int) -> dict:
    from ensemble.tasks.columns.estimate import AUTO_VALUE_METHODS, cross_validate_values, select_value_method

    s = SETTINGS[scenario]
    task = s["task"]
    names = [f"t{j}" for j in range(s["targets"])]
    errors, apparent, chosen, gaps = [], [], collections.Counter(), []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        valid, yv = draw_values(task, VALID_ROWS, names, s["strengths"], rng)
        test, yt = draw_values(task, TEST_ROWS, names, s["strengths"], rng)
        est = cross_validate_values(task, valid, yv, AUTO_VALUE_METHODS, cv=5, seed=seed, metric=s["metric"])
        choice, _ = select_value_method(est)
        chosen[choice] += 1
        e = est[choice]
        truth = _metric(task, s["metric"], e.weights.decided(test), yt)
        errors.append(abs(e.cross_validated[s["metric"]] - truth))
        apparent.append(abs(e.apparent[s["metric"]] - truth))
        gaps.append(truth - _metric(task, s["metric"], est["uniform"].weights.decided(test), yt))
    return {"error": float(np.mean(errors)), "apparent_error": float(np.mean(apparent)), "chosen": dict(chosen),
            "true_gain_of_choice": float(np.mean(gaps)), "goal": s["goal"]}


def _metric(task, name, pred, y):
    from ensemble.tasks import task_named

    return task_named(task).metric(name)(pred, y)


def cost(task: str, rows: int = 20_000, models: int = 10) -> float:
    """Seconds of ``report`` over cached members (the default methods and folds)."""
    from ensemble.workflows.report import report

    targets = 6 if task == "regression" else 30
    with tempfile.TemporaryDirectory() as tmp:
        members, data, cache_dir, names, _ = make_value_members(Path(tmp), task, valid_rows=rows, test_rows=100,
                                                                models=models, targets=targets)
        t = time.perf_counter()
        rep = report(members, data, cache_dir=cache_dir, columns={"label": names})
        seconds = time.perf_counter() - t
    what = "targets" if task == "regression" else "labels"
    print(f"  {task}: report on {rows:,} rows x {models} members x {targets} {what}"
          f": {seconds:.1f} s (goal < 60 s); auto -> {rep.choice}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--task", choices=("regression", "multi_label"), default=None)
    ap.add_argument("--cost-only", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite), not its figures")
    args = ap.parse_args()
    tasks = [args.task] if args.task else ["regression", "multi_label"]
    if args.smoke:
        global VALID_ROWS, TEST_ROWS
        VALID_ROWS, TEST_ROWS = 120, 500
        for task in [k for k, v in SETTINGS.items() if v["task"] in tasks][:1]:
            honesty(task, 1)
        for task in tasks:
            cost(task, rows=120, models=3)
        return
    if not args.cost_only:
        for task in [k for k, v in SETTINGS.items() if v["task"] in tasks]:
            t = time.perf_counter()
            r = honesty(task, args.seeds)
            print(f"{task} ({SETTINGS[task]['metric']}, {VALID_ROWS} validation rows, {args.seeds} seeds, "
                  f"{time.perf_counter() - t:.0f} s):")
            print(f"  mean |cross-validated estimate - test| = {r['error']:.4f} (goal <= {r['goal']}): "
                  f"{'met' if r['error'] <= r['goal'] else 'NOT met'}")
            print(f"  mean |apparent - test|                 = {r['apparent_error']:.4f}")
            print(f"  auto chose {r['chosen']}; the choice's true gain over uniform on test: "
                  f"{r['true_gain_of_choice']:+.4f}")
    print("cost:")
    for task in tasks:
        cost(task)


if __name__ == "__main__":
    main()
