"""A real sweep end to end: Trainer.hyperparameter_search (Optuna), the winner's curse as
`ensemble report` states it, and the truth on a large test set.

The synthetic Korean-looking 4-class task of `ensemble example` (600 training rows, 300 dev
rows, 300 validation rows and 6,000 test rows from the same generator), a tiny BERT, and a sweep
of 8 trials over the learning rate and the seed (6 epochs, evaluated and saved every 15 steps).
Every trial's best checkpoint is a member (`DIR@all`); the report's `best` and `best3` rows are
compared with the test accuracy of the members they pick, and the soup of the best 4 checkpoints
across trials (`avg-ckpt --across-trials --k 4`) with the best trial. Twice: (a) the Trainer
evaluates on the dev split, so the report's validation split is fresh; (b) the Trainer evaluates
on the validation split, as in most notebooks, so the checkpoints were already chosen on it.

    python benchmarks/bench_sweep.py [--trials 8] [--out /tmp/bench-sweep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run(root: Path, eval_on_valid: bool, trials: int, smoke: bool = False) -> None:
    from ensemble import average_checkpoints, predict_logits
    from ensemble.averaging.sweeps import expand_members, find_sweep
    from ensemble.cli.example import _write_csv, make_base_model, synthetic_task, train_sweep
    from ensemble.data.splits import load_split
    from ensemble.workflows.report import report

    root.mkdir(parents=True)
    rows = (120, 60, 60, 200) if smoke else (600, 300, 300, 6000)  # train, dev, valid, test
    train, dev = synthetic_task(rows[0], seed=10), synthetic_task(rows[1], seed=13)
    valid, test = synthetic_task(rows[2], seed=11), synthetic_task(rows[3], seed=12)
    for name, (texts, labels) in (("valid", valid), ("test", test)):
        _write_csv(root / f"{name}.csv", ["id", "text", "label"], [(f"{name}{i}", t, y) for i, (t, y) in
                                                                   enumerate(zip(texts, labels))])
    make_base_model(root / "base", train[0], sorted(set(train[1])), seed=0)
    t0 = time.perf_counter()
    train_sweep(root / "sweep", root / "base", train, valid if eval_on_valid else dev, n_trials=trials,
                epochs=2 if smoke else 6, steps=4 if smoke else 15, batch_size=16, learning_rate=(1e-3, 8e-3))
    t_sweep = time.perf_counter() - t0
    print(find_sweep(root / "sweep").format_table())
    print(f"sweep: {trials} trials asked, {len(find_sweep(root / 'sweep').trials)} with checkpoints (Optuna prunes "
          f"the others), {t_sweep:.0f} s")

    members = expand_members({"hp": f"{root / 'sweep'}@all"})
    soup = average_checkpoints(root / "sweep", k=4, across_trials=True, out=root / "soup", progress=False)
    splits = {s: load_split(root / f"{s}.csv") for s in ("valid", "test")}
    cache = root / "cache"
    acc = {}
    for name, path in {**members, "soup": soup}.items():
        for s, split in splits.items():
            lg = predict_logits(path, split, cache=cache, progress=False)
            acc[name, s] = float(np.mean(lg.predictions() == split.label_indices(lg.labels)))
    rep = report(members, {"valid": splits["valid"]}, cache_dir=cache, methods=["acc"], adjust="none")
    w = rep.winners_curse
    picked = w["best_member"]
    best3 = [m for m, v in zip(rep.estimates["best3"].weights.models, rep.estimates["best3"].weights.weights) if v > 0]
    test_best3 = _uniform_test({m: members[m] for m in best3}, splits["test"], cache)
    names = list(members)
    print(f"\n{'':<30}{'validation':>11}{'test':>9}")
    print(f"{'trials (mean)':<30}{np.mean([acc[m, 'valid'] for m in names]):11.4f}"
          f"{np.mean([acc[m, 'test'] for m in names]):9.4f}")
    print(f"{'best trial on test (oracle)':<30}{'':>11}{max(acc[m, 'test'] for m in names):9.4f}")
    print(f"{'best: ' + picked:<30}{w['apparent_best']:11.4f}{acc[picked, 'test']:9.4f}   "
          f"report's cross-validated estimate {w['cv_best']:.4f}")
    print(f"{'best3: ' + ','.join(m.removeprefix('hp-') for m in best3):<30}{w['apparent_best_k']:11.4f}"
          f"{test_best3:9.4f}   report's cross-validated estimate {w['cv_best_k']:.4f}")
    print(f"{'soup of the top-4 checkpoints':<30}{acc['soup', 'valid']:11.4f}{acc['soup', 'test']:9.4f}")
    print(f"{time.perf_counter() - t0:.0f} s")


def main() -> None:
    import transformers

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--out", default="/tmp/bench-sweep")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite), not "
                                                         "its figures; part (a) only, 4 trials of 2 epochs")
    args = ap.parse_args()
    transformers.logging.disable_progress_bar()
    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)
    print("(a) the Trainer evaluates on a dev split of its own; the report's validation split is fresh")
    if args.smoke:
        root = Path(tempfile.mkdtemp(prefix="bench-sweep-smoke-"))
        try:
            return run(root / "a", False, 4, smoke=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    run(root / "a", False, args.trials)
    print("\n(b) the Trainer evaluates on the validation split itself: checkpoints and trials were already "
          "chosen on it")
    run(root / "b", True, args.trials)


def _uniform_test(members, split, cache) -> float:
    """Test accuracy of the uniform average of ``members``' cached logits."""
    from ensemble.core.combination import combine
    from ensemble.workflows.gather import gather

    al = gather(members, split, split.name, cache_dir=cache)
    proba = combine(al.arrays, None, "prob")
    return float(np.mean(proba.argmax(axis=1) == al.y))


if __name__ == "__main__":
    main()
