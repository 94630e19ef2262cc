"""The honest estimate on real text: cross-validated validation scores against unseen data.

Four tiny BERT classifiers (different seeds, learning rates and sizes) are trained with the real
Trainer on Korean comments from ``../shared/data/korean-hate-speech/train.tsv``; validation rows
come from the same file (held out from training); the ``dev.tsv`` split is the unseen test set.
Their logits are cached with ``predict_logits``; ``ensemble.report`` estimates every method on
validation alone; each method, fitted on all validation rows, is then scored on dev. Printed
side by side: apparent, cross-validated (with the gain interval) and dev accuracy.

    python benchmarks/bench_real.py [--train 2000] [--valid 800]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "korean-hate-speech"

MEMBERS = [  # name, seed, learning rate, hidden size, epochs
    ("a", 1, 3e-3, 32, 4),
    ("b", 2, 2e-3, 48, 4),
    ("c", 3, 5e-3, 32, 3),
    ("d", 4, 1e-3, 32, 2),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--valid", type=int, default=800)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite), not "
                                                         "its figures; tests/data's comments, two members, one epoch")
    args = ap.parse_args()

    import pandas as pd

    from ensemble.cli.example import make_base_model, train_run
    from ensemble.core.combination import combine
    from ensemble.core.scores import accuracy
    from ensemble.data.splits import load_split
    from ensemble.workflows.predict import predict_logits
    from ensemble.workflows.report import report

    t0 = time.perf_counter()
    members = MEMBERS
    if args.smoke:  # the 256 comments shipped with the tests: 120 train, 70 validation, the rest as dev
        df = pd.read_csv(ROOT / "tests" / "data" / "korean-hate-speech" / "train-sample.tsv", sep="\t", quoting=3)
        args.train, args.valid, dev = 120, 70, df.iloc[190:]
        members = [(n, s, lr, h, 1) for n, s, lr, h, _ in MEMBERS[:2]]
    else:
        df = pd.read_csv(DATA / "train.tsv", sep="\t").sample(frac=1.0, random_state=0)
        dev = pd.read_csv(DATA / "dev.tsv", sep="\t")
    train = df.iloc[: args.train]
    valid = df.iloc[args.train: args.train + args.valid]
    work = Path(tempfile.mkdtemp(prefix="bench-real-"))
    try:
        for name, frame in (("valid", valid), ("dev", dev)):
            pd.DataFrame({"id": [f"{name}{i}" for i in range(len(frame))], "text": frame["comments"].tolist(),
                          "label": frame["hate"].tolist()}).to_csv(work / f"{name}.csv", index=False)
        texts = train["comments"].tolist() + valid["comments"].tolist()
        labels = sorted(set(train["hate"]))
        models = {}
        for name, seed, lr, hidden, epochs in members:
            base = work / f"base-{name}"
            make_base_model(base, texts, labels, hidden_size=hidden, seed=seed)
            run = work / f"run-{name}"
            train_run(run, base, (train["comments"].tolist(), train["hate"].tolist()),
                      (valid["comments"].tolist()[:100], valid["hate"].tolist()[:100]), epochs=epochs,
                      learning_rate=lr, seed=seed, strategy="epoch", batch_size=32)
            models[name] = max(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
            for split in ("valid", "dev"):
                predict_logits(models[name], load_split(work / f"{split}.csv", name=split), cache=work / "cache",
                               progress=False, name=name)
        train_s = time.perf_counter() - t0
        rep = report(models, {"valid": work / "valid.csv"}, cache_dir=work / "cache")
        print(f"{len(train)} training rows, {len(valid)} validation rows (from train.tsv), {len(dev)} dev rows "
              f"(unseen); training and inference {train_s:.0f} s")
        print(rep.to_text())
        from ensemble.workflows.gather import gather

        dev_al = gather(models, {"dev": load_split(work / "dev.csv", name="dev")}, "dev", cache_dir=work / "cache")
        y_dev = dev_al.y
        print("\nmethod      apparent  cross-validated [gain interval]      dev (unseen)")
        uniform_dev = accuracy(combine(dev_al.arrays), y_dev)
        print(f"{'uniform':<10}  {rep.table.loc['uniform', 'accuracy']:.4f}    {rep.table.loc['uniform', 'cv_accuracy']:.4f}"
              f"                              {uniform_dev:.4f}")
        errors_cv, errors_app = [], []
        for m, e in rep.estimates.items():
            dev_acc = accuracy(e.weights.predict_proba(dev_al.arrays), y_dev)
            lo, hi = e.gain_interval["accuracy"]
            print(f"{m:<10}  {e.apparent['accuracy']:.4f}    {e.cross_validated['accuracy']:.4f} "
                  f"[{lo:+.4f}, {hi:+.4f}]  gain on dev {dev_acc - uniform_dev:+.4f}  {dev_acc:.4f}")
            errors_cv.append(abs(e.cross_validated["accuracy"] - dev_acc))
            errors_app.append(abs(e.apparent["accuracy"] - dev_acc))
        for n, a in zip(models, dev_al.arrays):
            print(f"model {n}: validation {rep.table.loc[n, 'accuracy']:.4f}, dev {np.mean(a.argmax(1) == y_dev):.4f}")
        print(f"mean |cross-validated - dev| {100 * np.mean(errors_cv):.2f} points; mean |apparent - dev| "
              f"{100 * np.mean(errors_app):.2f} points; auto -> {rep.choice}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
