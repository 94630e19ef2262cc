"""K-fold training: how much better are weights and estimates fitted on the out-of-fold (OOF) rows
of every training row than on a small validation split? (a) A simulation with known truth; (b)
with ``--real``, tiny BERTs trained with the real Trainer on Korean comments.

Each backbone b is trained K times; fold model k never saw the rows of fold k. For a row of
class y, fold model k of backbone b gives logits

    t_bk * (strength_b * onehot(y) + sqrt(rho) * shared + sqrt(1 - rho) * own_b) + fold_noise * e_bk

(``shared``: errors every backbone has; ``own_b``: backbone b's own; ``e_bk``: what differs between
the fold models of one backbone, with a scale t_bk near 1). A training row's OOF logits come from
the one fold model that did not see it; a test row's prediction of a backbone is the mean of its
K fold models' probabilities (what `ensemble` will do with a fold group).

Each seed draws 8,000 training rows (5 stratified folds, `ensemble.data.folds.assign_folds`), a
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

(b) ``--real``: two tiny BERT backbones on ``../shared/data/korean-hate-speech/train.tsv`` (7,896
rows; ``dev.tsv``, 471 rows, is the unseen test), each trained three ways, all through the
toolkit's own commands and functions (``ensemble folds make``, ``ensemble predict``, ``report``):

  * 5 fold models (fold groups ``a-fold{fold}``), fitted and estimated on the 7,896 OOF rows;
  * once on every training row (the refits), which take their groups' places on dev;
  * once on all but a 500-row validation split, fitted and estimated on those 500 rows.

It prints, per way, what ``auto`` chose, its estimate and its dev accuracy, and the mean
|estimate - dev| over every method (about 14 trainings: several minutes on 2 cores).

    python benchmarks/bench_folds.py --real [--train 7896] [--valid 500]

(d) ``--decomposed``: what the submitted fold mean will score, estimated four ways, each against
50,000 unseen test rows, over 100 seeds at fold-model spreads from "seeds only" to "very
different" (uniform weights over the backbones, K = 5):

  * the single-fold-model OOF figure (what the report shows out of fold);
  * the decomposed Brier (``ensemble.estimates.decomposition``): OOF Brier minus the ambiguity of
    the fold ensembles, measured on 2,000 unlabelled test rows;
  * the average-thresholded-confidence accuracy (ATC, Garg et al. 2022) on those test rows;
  * a 500-row holdout scored as the fold mean.

    python benchmarks/bench_folds.py --decomposed [--seeds 100] [--fold-noise 0,0.5,1,2]

(c) ``--cost``: ``--weights auto``'s estimate (acc, optimize, select, stack, cross-validated) on
8,000 rows x 10 members x 10 classes, on the training folds (OOF) against the repeated stratified
folds it uses on validation rows, and ``python -c "import torch, transformers"`` for scale.

    python benchmarks/bench_folds.py --cost
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
    from ensemble.core.combination import softmax

    return [np.log(np.mean([softmax(z) for z in per_fold], axis=0)) for per_fold in models]


def _draw(seed: int, noise: float):
    """(rng, scales, y, fold, train_models) of one seed: the training rows, their folds and every
    fold model's logits on them (``rng`` goes on to draw the rest)."""
    from ensemble.data.folds import assign_folds

    rng = np.random.default_rng(seed)
    # fold models of one backbone differ (none of that without noise)
    scales = rng.uniform(0.8, 1.2, size=(len(STRENGTHS), K)) if noise else np.ones((len(STRENGTHS), K))
    y = rng.integers(0, CLASSES, TRAIN)
    fold, _ = assign_folds(TRAIN, K, labels=y, seed=seed)
    return rng, scales, y, fold, fold_models(backbones(TRAIN, y, rng), scales, noise, rng)


def one_seed(seed: int, noise: float) -> dict:
    from ensemble.core.combination import combine
    from ensemble.tasks.classification.estimate import select_method

    rng, scales, y, fold, train_models = _draw(seed, noise)
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
    ap.add_argument("--real", action="store_true", help="part (b): real tiny BERTs on Korean comments")
    ap.add_argument("--train", type=int, default=None, help="--real: training rows used [default: all]")
    ap.add_argument("--valid", type=int, default=500, help="--real: the validation split's rows")
    ap.add_argument("--cost", action="store_true", help="part (c): the cost of the estimate on 8,000 OOF rows")
    ap.add_argument("--decomposed", action="store_true", help="part (d): estimating the fold mean itself")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite), not its figures")
    args = ap.parse_args()
    if args.smoke:
        global TRAIN, TEST, VALID
        TRAIN, TEST, VALID = 600, 1000, (150,)
        args.seeds, args.fold_noise = 1, "0.5"
    if args.decomposed:
        return decomposed(args.seeds, [float(v) for v in args.fold_noise.split(",")])
    if args.real:
        return real(args.train, args.valid)
    if args.cost:
        return cost()
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


# ---------------------------------------------------------------------------------- (d) decomposed

UNLABELLED, HOLDOUT = 2000, 500


def _fold_ensembles(models: list[list[np.ndarray]]) -> np.ndarray:
    """(K, n, C): each fold-k ensemble, the uniform linear pool of every backbone's fold-k model."""
    from ensemble.core.combination import softmax

    return np.stack([np.mean([softmax(per_fold[k]) for per_fold in models], axis=0) for k in range(K)])


def decomposed_seed(seed: int, noise: float) -> dict:
    from ensemble.core.combination import softmax
    from ensemble.estimates.decomposition import atc_accuracy, brier_calibrated_accuracy, brier_rows, decomposed_brier

    rng, scales, y, fold, train_models = _draw(seed, noise)
    q_train = _fold_ensembles(train_models)
    oof = q_train[fold, np.arange(TRAIN)]  # each row by the fold ensemble that never saw it
    member_oof = [softmax(np.stack(per_fold)[fold, np.arange(TRAIN)]) for per_fold in train_models]
    yt = rng.integers(0, CLASSES, TEST)
    q_test = _fold_ensembles(fold_models(backbones(TEST, yt, rng), scales, noise, rng))
    submitted = q_test.mean(axis=0)
    yh = rng.integers(0, CLASSES, HOLDOUT)
    holdout = _fold_ensembles(fold_models(backbones(HOLDOUT, yh, rng), scales, noise, rng)).mean(axis=0)
    seen = q_test[:, :UNLABELLED]  # the test rows a user has, without labels
    d = decomposed_brier(oof, y, list(seen))
    points = [(float(brier_rows(m, y).mean()), float(np.mean(m.argmax(axis=1) == y))) for m in member_oof]
    points.append((d["oof_brier"], float(np.mean(oof.argmax(axis=1) == y))))
    calibrated = brier_calibrated_accuracy(points, points[-1][1], d["oof_brier"], d["estimate"])
    return {"calibrated": calibrated, "brier": float(brier_rows(submitted, yt).mean()), "acc": float(np.mean(submitted.argmax(axis=1) == yt)),
            "oof_brier": float(brier_rows(oof, y).mean()), "oof_acc": float(np.mean(oof.argmax(axis=1) == y)),
            "decomposed": d["estimate"], "atc": atc_accuracy(oof, y, seen.mean(axis=0)),
            "holdout_brier": float(brier_rows(holdout, yh).mean()),
            "holdout_acc": float(np.mean(holdout.argmax(axis=1) == yh))}


def decomposed(seeds: int, noises: list[float]) -> None:
    print(f"(d) the fold mean's score on {TEST} unseen test rows, estimated four ways; mean |estimate - test| over "
          f"{seeds} seeds, K = {K}, {len(STRENGTHS)} backbones, uniform weights")
    print("| fold-model spread | test accuracy | OOF accuracy | Brier-calibrated accuracy | ATC accuracy "
          "| holdout accuracy | test Brier | OOF Brier | decomposed Brier | holdout Brier |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for noise in noises:
        t0 = time.perf_counter()
        runs = [decomposed_seed(s, noise) for s in range(seeds)]

        def err(key, truth):
            return np.mean([abs(r[key] - r[truth]) for r in runs])

        print(f"| {noise} | {np.mean([r['acc'] for r in runs]):.4f} | {100 * err('oof_acc', 'acc'):.2f} points "
              f"| {100 * err('calibrated', 'acc'):.2f} points | {100 * err('atc', 'acc'):.2f} points | {100 * err('holdout_acc', 'acc'):.2f} points "
              f"| {np.mean([r['brier'] for r in runs]):.4f} | {err('oof_brier', 'brier'):.4f} "
              f"| {err('decomposed', 'brier'):.4f} | {err('holdout_brier', 'brier'):.4f} |  ({time.perf_counter() - t0:.0f} s)")


# ---------------------------------------------------------------------------------------- (c) cost


def cost(rows: int = 8000, members: int = 10, classes: int = 10) -> None:
    import subprocess

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from synthetic_members import draw

    from ensemble.data.folds import assign_folds
    from ensemble.tasks.classification.estimate import select_method

    def timed(f) -> float:
        t = time.perf_counter()
        f()
        return time.perf_counter() - t

    base = min(timed(lambda: subprocess.run([sys.executable, "-c", "import torch, transformers"], check=True))
               for _ in range(2))
    rng = np.random.default_rng(0)
    arrays, y = draw(rows, classes, 2.0 * np.linspace(1, 0.6, members), np.linspace(0.6, 1.8, members), rng)
    fold, _ = assign_folds(rows, K, labels=y, seed=0)
    oof = timed(lambda: select_method(arrays, y, splits=fold))
    valid = timed(lambda: select_method(arrays, y))
    print(f"\n(c) auto's estimate on {rows} rows x {members} members x {classes} classes: on the {K} training folds "
          f"(OOF) {oof:.1f} s, on repeated stratified folds (validation rows, 5 x 2) {valid:.1f} s: "
          f"{oof / valid:.2f}x; python -c 'import torch, transformers' {base:.2f} s ({oof / base:.1f}x)")


# ---------------------------------------------------------------------------------------- (b) real

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "korean-hate-speech"
BACKBONES = [("a", 1, 3e-3, 32, 3), ("b", 2, 2e-3, 48, 3)]  # name, seed, learning rate, hidden size, epochs


def _cli(*args) -> str:
    from click.testing import CliRunner

    from ensemble.cli.main import main as cli

    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exit_code != 0:
        raise SystemExit(f"ensemble {' '.join(map(str, args[:2]))} failed: {result.output}")
    return result.stdout


def _train(out: Path, base: Path, rows, frame, seed: int, lr: float, epochs: int) -> Path:
    """One tiny BERT on ``frame``'s rows ``rows``; the final model saved to ``out/final``."""
    from ensemble.cli.example import train_run

    texts, labels = frame["text"].tolist(), frame["label"].tolist()
    train = ([texts[i] for i in rows], [labels[i] for i in rows])
    trainer = train_run(out, base, train, (train[0][:64], train[1][:64]), epochs=epochs, learning_rate=lr, seed=seed,
                        strategy="epoch", batch_size=32, save_total_limit=1)
    trainer.save_model(str(out / "final"))
    return out / "final"


def real(n_train: int | None, n_valid: int) -> None:
    import shutil
    import tempfile

    import pandas as pd

    from ensemble.cli.example import make_base_model
    from ensemble.core.combination import combine
    from ensemble.core.scores import accuracy
    from ensemble.workflows.gather import gather
    from ensemble.workflows.report import report

    if not (DATA / "train.tsv").is_file():
        raise SystemExit(f"{DATA / 'train.tsv'} not found: --real needs ../shared beside the checkout")
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-folds-"))
    try:
        df = pd.read_csv(DATA / "train.tsv", sep="\t").sample(frac=1.0, random_state=0)
        df = df.iloc[:n_train] if n_train else df
        frame = pd.DataFrame({"id": [f"r{i}" for i in range(len(df))], "text": df["comments"].tolist(),
                              "label": df["hate"].tolist()})
        frame.to_csv(work / "train.csv", index=False)
        frame.iloc[-n_valid:].to_csv(work / "valid.csv", index=False)  # the validation way's held-out rows
        dev = pd.read_csv(DATA / "dev.tsv", sep="\t")
        pd.DataFrame({"id": [f"d{i}" for i in range(len(dev))], "text": dev["comments"].tolist(),
                      "label": dev["hate"].tolist()}).to_csv(work / "dev.csv", index=False)
        _cli("folds", "make", work / "train.csv", "--k", K, "--out", work / "folds.csv", "-q")
        fold = pd.read_csv(work / "folds.csv")["fold"].to_numpy()
        n = len(frame)
        for name, seed, lr, hidden, epochs in BACKBONES:
            base = work / f"base-{name}"
            make_base_model(base, frame["text"].tolist(), sorted(set(frame["label"])), hidden_size=hidden, seed=seed)
            for k in range(K):
                _train(work / f"{name}-fold{k}", base, np.flatnonzero(fold != k), frame, seed + 10 * k, lr, epochs)
            _train(work / f"{name}-full", base, np.arange(n), frame, seed, lr, epochs)
            _train(work / f"{name}-plain", base, np.arange(n - n_valid), frame, seed, lr, epochs)
        groups = {name: f"{work}/{name}-fold{{fold}}/final" for name, *_ in BACKBONES}
        refits = {f"{name}-full": work / f"{name}-full" / "final" for name, *_ in BACKBONES}
        plain = {name: work / f"{name}-plain" / "final" for name, *_ in BACKBONES}
        cache = ["--cache-dir", work / "cache", "-q"]
        _cli("predict", *[x for m, p in {**groups, **refits}.items() for x in ("--model", f"{m}={p}")],
             "--data", f"train={work / 'train.csv'}", "--data", f"dev={work / 'dev.csv'}", "--folds", work / "folds.csv",
             *cache)
        _cli("predict", *[x for m, p in plain.items() for x in ("--model", f"{m}={p}")],
             "--data", f"valid={work / 'valid.csv'}", "--data", f"dev={work / 'dev.csv'}", *cache)
        trained = time.perf_counter() - t0
        data = {"train": work / "train.csv", "dev": work / "dev.csv", "valid": work / "valid.csv"}
        refit = {f"{name}-full": name for name, *_ in BACKBONES}
        t1 = time.perf_counter()
        oof_rep = report({**groups, **refits}, {"train": data["train"]}, folds=work / "folds.csv",
                         cache_dir=work / "cache", refit=refit, adjust="none")  # valid.csv is training rows here
        oof_s = time.perf_counter() - t1
        t1 = time.perf_counter()
        valid_rep = report(plain, data, cache_dir=work / "cache", adjust="none")
        valid_s = time.perf_counter() - t1
        kw = dict(cache_dir=work / "cache", folds=work / "folds.csv")
        dev_groups = gather(groups, data, "dev", **kw)
        dev_refits = gather(refits, data, "dev", cache_dir=work / "cache")
        dev_plain = gather(plain, data, "dev", cache_dir=work / "cache")
        y = dev_groups.y
        print(f"\n(b) {n} training rows in {K} folds, {len(dev)} dev rows (unseen); {len(BACKBONES)} backbones x "
              f"({K} folds + a refit + one trained without {n_valid} validation rows); training and inference "
              f"{trained:.0f} s; report on OOF rows {oof_s:.1f} s, on validation rows {valid_s:.1f} s")
        print("| fitted and estimated on | auto chose | its estimate | its dev accuracy | mean abs(estimate - dev), "
              "every method | uniform: estimate / dev |")
        print("| --- | --- | --- | --- | --- | --- |")
        ways = (("OOF, 5-fold means on dev", oof_rep, dev_groups.arrays), ("OOF, refits on dev", oof_rep, dev_refits.arrays),
                (f"valid {n_valid}", valid_rep, dev_plain.arrays))
        for way, rep, arrays in ways:
            dev_acc = {"uniform": accuracy(combine(arrays), y)}
            for m, e in rep.estimates.items():
                dev_acc[m] = accuracy(e.weights.predict_proba(arrays), y)
            cv = {m: rep.table.loc[m, "cv_accuracy"] for m in dev_acc}
            errors = [abs(cv[m] - dev_acc[m]) for m in dev_acc]
            print(f"| {way} | {rep.choice} | {cv[rep.choice]:.4f} | {dev_acc[rep.choice]:.4f} | "
                  f"{100 * np.mean(errors):.2f} points | {cv['uniform']:.4f} / {dev_acc['uniform']:.4f} |")
        # (d) on real models: the fold mean estimated without a holdout, dev's texts as the unlabelled test rows
        from ensemble.estimates.decomposition import brier_rows

        dec = report(groups, {"train": data["train"], "test": data["dev"]}, folds=work / "folds.csv",
                     cache_dir=work / "cache", adjust="none")
        f = dec.out_of_fold["fold_mean"]
        chosen = combine(dev_groups.arrays) if dec.choice == "uniform" else dec.estimates[dec.choice].weights.predict_proba(
            dev_groups.arrays)
        b = f["brier"]
        print(f"(d) the fold mean of {dec.choice} without a holdout: decomposed Brier {b['estimate']:.4f} "
              f"[{b['low']:.4f}, {b['high']:.4f}] (OOF {b['oof_brier']:.4f} - ambiguity {b['ambiguity']:.4f} on the "
              f"{b['test_rows']} dev rows, unlabelled) against its dev Brier {brier_rows(chosen, y).mean():.4f}; "
              f"accuracy: Brier-calibrated {f['accuracy']:.4f}, OOF {f['oof_accuracy']:.4f}, dev {accuracy(chosen, y):.4f}")
        for (name, *_), a, r, p in zip(BACKBONES, dev_groups.arrays, dev_refits.arrays, dev_plain.arrays):
            print(f"backbone {name}: OOF {oof_rep.table.loc[name, 'accuracy']:.4f}; dev: fold mean {accuracy(a, y):.4f}, "
                  f"refit {accuracy(r, y):.4f}, trained without validation {accuracy(p, y):.4f} "
                  f"(validation {valid_rep.table.loc[name, 'accuracy']:.4f})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
