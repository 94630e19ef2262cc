"""The model zoo, measured: every backbone family through avg-ckpt and predict.

For each family of ``tests/zoo.py`` (tiny configs: 2 layers, hidden size 32): a base model, a
real ``Trainer`` run of 4 steps saved every 2, the top-2 average, then ``predict`` over 192
Korean comments in length-sorted batches, against the model's own forward pass one row at a time
(no padding) under its default attention. Printed per family: the attention that ran, the largest
|difference| of the logits, and the time of predict against the one-row-at-a-time loop measured
in the same run (the ratio is the figure; the seconds depend on the machine).

    python benchmarks/bench_zoo.py [--device cpu|cuda] [--dtype float32|bfloat16|float16] [--rows 192]

On a GPU with ``--dtype bfloat16`` the difference is bf16's (about 1e-2 on logits of size 1);
the reference loop runs in float32.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--rows", type=int, default=192)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite), not its figures")
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.batch_size = 16, 8

    import pandas as pd
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ensemble.averaging.build import average_checkpoints
    from ensemble.cli.example import train_run
    from ensemble.workflows.predict import predict_logits
    from tests.conftest import load_korean
    from ensemble.io.modelfiles import dtype_kwarg
    from tests.zoo import FAMILIES, has_family, make_zoo_model

    train, valid = load_korean(64, args.rows)
    labels = sorted(set(train[1]))
    work = Path(tempfile.mkdtemp(prefix="bench_zoo-"))
    data = work / "valid.csv"
    pd.DataFrame({"id": range(len(valid[0])), "text": valid[0], "label": valid[1]}).to_csv(data, index=False)
    print(f"{'family':<12} {'attention':<9} {'max |diff|':>10} {'predict s':>9} {'one-by-one s':>12} {'ratio':>6}")
    try:
        for i, family in enumerate(FAMILIES):
            if not has_family(family):  # modernbert: transformers 4.48 and later
                print(f"{family:<12} not in transformers {transformers.__version__}: skipped")
                continue
            base = make_zoo_model(family, work / family / "base", train[0] + valid[0], labels, seed=i)
            train_run(work / family / "run", base, train, (valid[0][:32], valid[1][:32]),
                      epochs=1, batch_size=16, steps=2, seed=i)
            avg = average_checkpoints(work / family / "run", k=2, out=work / family / "avg", progress=False)
            t0 = time.perf_counter()
            got = predict_logits(avg, data, cache=False, progress=False, device=args.device, dtype=args.dtype,
                                 batch_size=args.batch_size)
            t_predict = time.perf_counter() - t0
            model = AutoModelForSequenceClassification.from_pretrained(avg, **dtype_kwarg(torch.float32))
            model = model.eval().to(args.device)
            tok = AutoTokenizer.from_pretrained(avg)
            t0 = time.perf_counter()
            with torch.inference_mode():
                ref = np.stack([model(**tok(t, return_tensors="pt").to(args.device)).logits[0].float().cpu().numpy()
                                for t in valid[0]])
            t_loop = time.perf_counter() - t0
            diff = float(np.abs(got.values - ref).max())
            print(f"{family:<12} {got.meta['attention']:<9} {diff:>10.2e} {t_predict:>9.2f} {t_loop:>12.2f} "
                  f"{t_loop / t_predict:>6.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
