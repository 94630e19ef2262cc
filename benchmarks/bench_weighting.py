"""Fit times of every weighting method, ``optimize`` against the usual Kaggle recipe, and the
time of a whole ``ensemble vote`` process against a process that only imports torch and
transformers, all in one run.

Part 1: 100,000 rows x 10 models x 10 classes of synthetic logits (models of different quality
whose errors are correlated). The Kaggle recipe is ``scipy.optimize.minimize(method="SLSQP")``
on scikit-learn's log loss of the weighted mean probabilities, numerical gradients, from the
uniform start; ``optimize`` is ours from the same start alone (``starts=1``) and with its
default 5 starts.

Part 2: a tiny model's logits are cached for a 2,000-row valid and test split; then
``python -m ensemble vote --weights acc`` and ``--weights optimize`` run as fresh processes,
against ``python -c "import torch, transformers"``; medians of 5.

    python benchmarks/bench_weighting.py [--rows 100000] [--models 10] [--classes 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthetic(rows: int, models: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, rows)
    shared = rng.normal(0, 1.0, (rows, classes))  # errors the models share
    out = []
    for m in range(models):
        z = 0.6 * shared + rng.normal(0, 1.0, (rows, classes))
        z[np.arange(rows), y] += 0.6 + 0.15 * m
        out.append(z.astype(np.float32))
    return out, y


def kaggle_slsqp(probas, y):
    from scipy.optimize import minimize
    from sklearn.metrics import log_loss

    labels = list(range(probas[0].shape[1]))

    def loss(w):
        return log_loss(y, sum(wi * p for wi, p in zip(w, probas)), labels=labels)

    M = len(probas)
    res = minimize(loss, np.full(M, 1.0 / M), method="SLSQP", bounds=[(0, 1)] * M,
                   constraints={"type": "eq", "fun": lambda w: 1 - w.sum()})
    w = res.x / res.x.sum()
    return w, loss(w)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def part1(rows: int, models: int, classes: int) -> None:
    import scipy.optimize  # noqa: F401  imported before timing: both sides use it
    import sklearn.linear_model  # noqa: F401
    from scipy.special import softmax

    from ensemble.tasks.classification.weighting import fit_weights

    arrays, y = synthetic(rows, models, classes)
    probas = [softmax(a.astype(np.float64), axis=1) for a in arrays]
    print(f"part 1: {rows} rows x {models} models x {classes} classes")
    cases = [("uniform", {}), ("acc", {}), ("optimize", {}), ("optimize", {"starts": 1}), ("select", {}),
             ("select", {"bags": 1}), ("stack", {}), ("optimize", {"temperature": True, "calibrate": True}),
             ("optimize", {"combine": "geometric"})]
    results = {}
    for method, kw in cases:
        dt, w = timed(lambda: fit_weights(arrays, y, method, **kw))
        label = method + "".join(f" {k}={v}" for k, v in kw.items())
        results[label] = (dt, w)
        flag = "" if dt < 5 else "  (over 5 s)"
        print(f"  {label:<44} {dt:7.2f} s  valid log loss {w.apparent['log_loss']:.6f}  "
              f"accuracy {w.apparent['accuracy']:.4f}{flag}")
    dt_k, (w_k, loss_k) = timed(lambda: kaggle_slsqp(probas, y))
    dt_1, w1 = results["optimize starts=1"]
    dt_5, w5 = results["optimize"]
    print(f"  Kaggle SLSQP, numerical gradients          {dt_k:7.2f} s  valid log loss {loss_k:.6f}")
    print(f"optimize vs Kaggle SLSQP: {dt_k / dt_1:.1f}x faster from the same start "
          f"(log loss {w1.apparent['log_loss'] - loss_k:+.2e}), {dt_k / dt_5:.1f}x with 5 starts "
          f"(log loss {w5.apparent['log_loss'] - loss_k:+.2e}); max |w diff| {np.abs(w1.weights - w_k).max():.1e}")
    slowest = max(results, key=lambda k: results[k][0])
    print(f"slowest method: {slowest}, {results[slowest][0]:.2f} s")


def part2() -> None:
    import pandas as pd

    from ensemble.cli.example import make_base_model, synthetic_task
    from ensemble.workflows.predict import predict_logits

    work = Path(tempfile.mkdtemp(prefix="bench-vote-"))
    try:
        texts, labels = synthetic_task(4000, seed=0)
        pd.DataFrame({"id": [f"v{i}" for i in range(2000)], "text": texts[:2000], "label": labels[:2000]}).to_csv(
            work / "valid.csv", index=False)
        pd.DataFrame({"id": [f"t{i}" for i in range(2000)], "text": texts[2000:]}).to_csv(work / "test.csv", index=False)
        models = []
        for i in range(3):
            make_base_model(work / f"m{i}", texts, sorted(set(labels)), seed=i)
            for split in ("valid", "test"):
                predict_logits(work / f"m{i}", work / f"{split}.csv", cache=work / "cache", progress=False)
            models += ["--model", f"m{i}={work / f'm{i}'}"]
        vote = [sys.executable, "-m", "ensemble", "vote", *models, "--data", f"valid={work / 'valid.csv'}",
                "--data", f"test={work / 'test.csv'}", "--cache-dir", str(work / "cache"), "-q"]
        commands = {
            "import torch, transformers": [sys.executable, "-c", "import torch, transformers"],
            "ensemble vote --weights acc": vote + ["--weights", "acc"],
            "ensemble vote --weights optimize": vote + ["--weights", "optimize"],
        }
        times = {k: [] for k in commands}
        for _ in range(5):
            for name, cmd in commands.items():
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, cwd=work, capture_output=True)
                times[name].append(time.perf_counter() - t0)
        base = statistics.median(times["import torch, transformers"])
        print("part 2: whole processes, 3 models, 2,000 valid and 2,000 test rows, median of 5")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"  {name:<36} {med:6.2f} s  ratio to importing torch+transformers {med / base:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--models", type=int, default=10)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--skip-processes", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite), not its figures")
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.models, args.classes, args.skip_processes = 300, 3, 3, True
    part1(args.rows, args.models, args.classes)
    if not args.skip_processes:
        part2()


if __name__ == "__main__":
    main()
