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
      one, cross-validated accuracy.

    python benchmarks/bench_many_classes.py [--skip-large]
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
    from ensemble.estimate import AUTO_METHODS, cross_validate

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


def case_d(tmp: Path) -> None:
    members, data, cache_dir, _ = setup(tmp, 20000, 10, 200)
    t = timed(ENSEMBLE + ["report"] + members_args(members, {"valid": data["valid"]}, cache_dir))
    print(f"(d) report, 20,000 x 10 x 200, cold: {t:.1f} s (target <= 60 s)")


def case_e() -> None:
    import ensemble.weighting as weighting
    from ensemble.estimate import cross_validate

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-large", action="store_true", help="skip (d), 20,000 x 10 x 200")
    args = ap.parse_args()
    base = min(timed([sys.executable, "-c", "import torch, transformers"]) for _ in range(2))
    print(f"baseline: python -c 'import torch, transformers': {base:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        case_a(tmp, base)
        case_b()
        case_c(tmp)
        case_e()
        if not args.skip_large:
            case_d(tmp)


if __name__ == "__main__":
    main()
