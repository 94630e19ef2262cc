"""Many classes: how long `ensemble report` and `ensemble vote --weights auto` take, cold and with
their estimates stored, against `python -c "import torch, transformers"` timed in the same run.

Members are synthetic (tests/synthetic_members.py: shared errors, members of different
strength, under- to over-confident), written as model folders with their logits in the cache,
so the commands run exactly as on real members. Cases:

  (a) 1,500 validation rows x 3 members x 77 classes: report cold, report again (estimates
      stored), vote --weights auto after the report; targets 5x and 1x the import;
  (b) the cost of each method auto considers, cross-validated (5 folds x 2 repeats), at 77 classes;
  (c) 1,500 x 3 at 10 and at 100 classes: the report's time ratio (target: at most 10x);
  (d) 20,000 x 10 x 200: report cold (target: 60 s);
  (e) the stacker at 77 classes: the full multinomial LogisticRegression against the classwise
      one, cross-validated accuracy;
  (f) 20,000 x 10 x 200: how far a second round of folds moves each method's cross-validated
      accuracy and gain over uniform (why one round is the default above 10,000 rows).

    python benchmarks/bench_many_classes.py [--skip-large] [--only a,b,...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.synthetic_members import draw, make_members  # noqa: E402

ENSEMBLE = [sys.executable, "-m", "ensemble"]


def timed(cmd: list[str], cwd: Path | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    return time.perf_counter() - t


def members_args(members, data, cache_dir) -> list[str]:
    args = []
    for name, folder in members.items():
        args += ["--model", f"{name}={folder}"]
    for split, path in data.items():
        args += ["--data", f"{split}={path}"]
    return args + ["--cache-dir", str(cache_dir)]


def setup(tmp: Path, valid: int, models: int, classes: int):
    root = tmp / f"{valid}x{models}x{classes}"
    return make_members(root, valid_rows=valid, test_rows=2000, models=models, classes=classes, seed=0)


def arrays_77() -> tuple[list[np.ndarray], np.ndarray]:
    """1,500 validation rows of 3 members over 77 classes, as in (a)."""
    rng = np.random.default_rng(0)
    return draw(1500, 77, 3.0 * np.linspace(1, 0.7, 3), np.linspace(0.6, 1.8, 3), rng, rng.dirichlet(np.full(77, 30.0)))


def case_a(tmp: Path, base: float) -> None:
    members, data, cache_dir, _ = setup(tmp, 1500, 3, 77)
    valid = {"valid": data["valid"]}
    cold = timed(ENSEMBLE + ["report"] + members_args(members, valid, cache_dir))
    stored = timed(ENSEMBLE + ["report"] + members_args(members, valid, cache_dir))
    out = tmp / "a-out"  # vote writes weights/ and submissions/ here
    out.mkdir()
    vote = timed(ENSEMBLE + ["vote", "--weights", "auto"] + members_args(members, data, cache_dir), cwd=out)
    print("(a) 1,500 x 3 members x 77 classes")
    for what, t, target in (("report, cold", cold, 5), ("report, estimates stored", stored, 1),
                            ("vote --weights auto after the report", vote, 1)):
        print(f"  {what:<40} {t:6.1f} s  {t / base:4.2f}x the import (target <= {target}x)")


def case_b() -> None:
    from ensemble.tasks.classification.estimate import AUTO_METHODS, cross_validate

    arrays, y = arrays_77()
    print("(b) each method auto considers, cross-validated (5 folds x 2 repeats), 1,500 x 3 x 77")
    for m in ("uniform",) + AUTO_METHODS + ("best",):
        if m == "uniform":
            continue
        t = time.perf_counter()
        e = cross_validate(arrays, y, m)
        print(f"  {m:<10} {time.perf_counter() - t:6.2f} s  cv accuracy {e.cross_validated['accuracy']:.4f}")


def case_c(tmp: Path) -> None:
    times = {}
    for classes in (10, 100):
        members, data, cache_dir, _ = setup(tmp, 1500, 3, classes)
        times[classes] = timed(ENSEMBLE + ["report"] + members_args(members, {"valid": data["valid"]}, cache_dir))
    print(f"(c) report, 1,500 x 3: 10 classes {times[10]:.1f} s, 100 classes {times[100]:.1f} s: "
          f"{times[100] / times[10]:.1f}x for 10x the classes (target <= 10x)")


def case_d(tmp: Path, base: float) -> None:
    members, data, cache_dir, _ = setup(tmp, 20000, 10, 200)
    args = members_args(members, {"valid": data["valid"]}, cache_dir)
    cold = timed(ENSEMBLE + ["report"] + args)
    stored = timed(ENSEMBLE + ["report"] + args)
    print(f"(d) report, 20,000 x 10 x 200, cold: {cold:.1f} s ({cold / base:.1f}x the import; target <= 60 s); "
          f"again, estimates stored: {stored:.1f} s")


def case_e() -> None:
    import ensemble.tasks.classification.weighting as weighting
    from ensemble.tasks.classification.estimate import cross_validate

    arrays, y = arrays_77()
    print("(e) stack at 77 classes, 1,500 x 3, cross-validated (5 folds x 2 repeats)")
    saved = weighting.STACK_FULL_CLASSES
    try:
        for label, limit in (("full LogisticRegression (before)", 10 ** 6), ("classwise (now)", saved)):
            weighting.STACK_FULL_CLASSES = limit
            t = time.perf_counter()
            e = cross_validate(arrays, y, "stack")
            print(f"  {label:<34} {time.perf_counter() - t:6.2f} s  cv accuracy {e.cross_validated['accuracy']:.4f}  "
                  f"cv log loss {e.cross_validated['log_loss']:.4f}")
    finally:
        weighting.STACK_FULL_CLASSES = saved


def case_f() -> None:
    from ensemble.core.combination import as_log_probs, combine
    from ensemble.tasks.classification.estimate import AUTO_METHODS
    from ensemble.tasks.classification.procedure import Procedure
    from ensemble.estimates.resampling import FoldPlan

    rng = np.random.default_rng(0)
    arrays, y = draw(20000, 200, 3.0 * np.linspace(1, 0.7, 10), np.linspace(0.6, 1.8, 10), rng,
                     rng.dirichlet(np.full(200, 30.0)))
    arrays = [as_log_probs(a) for a in arrays]
    plan = FoldPlan.repeated_stratified(y, 5, 2, 0)
    uniform = float(np.mean(combine(arrays).argmax(axis=1) == y))
    print(f"(f) 20,000 x 10 x 200: two rounds of 5 folds (uniform accuracy {uniform:.4f})")
    for m in AUTO_METHODS:
        t = time.perf_counter()
        oof = Procedure.of(m).out_of_fold(arrays, y, plan)[0]
        acc = [float(np.mean(oof[r].argmax(axis=1) == y)) for r in range(2)]
        print(f"  {m:<10} round 1 {acc[0]:.4f}, round 2 {acc[1]:.4f}: the second moves the estimate by "
              f"{abs(acc[1] - acc[0]) / 2:.4f} (gain over uniform {acc[0] - uniform:+.4f} -> "
              f"{np.mean(acc) - uniform:+.4f}); {time.perf_counter() - t:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-large", action="store_true", help="skip (d) and (f), 20,000 x 10 x 200")
    ap.add_argument("--only", default="abcdef", help="the cases to run, e.g. d,f")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite), not its figures")
    args = ap.parse_args()
    if args.smoke:
        args.only = "b"  # the others time whole processes at 20,000 rows
    only = set(args.only.replace(",", "")) - (set("df") if args.skip_large else set())
    base = 0.0  # the baseline of the cases that time whole processes (a, d)
    if only & set("ad"):
        base = min(timed([sys.executable, "-c", "import torch, transformers"]) for _ in range(2))
        print(f"baseline: python -c 'import torch, transformers': {base:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, case in (("a", lambda: case_a(tmp, base)), ("b", case_b), ("c", lambda: case_c(tmp)), ("e", case_e),
                           ("d", lambda: case_d(tmp, base)), ("f", case_f)):
            if name in only:
                case()


if __name__ == "__main__":
    main()
