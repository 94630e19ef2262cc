"""A child process for tests/test_faults.py: writes one kind of artifact over and over until it
is killed. ``python tests/fault_child.py KIND FOLDER``; prints "ready" once set up."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROWS = 200_000
KEY = "a" * 40


def logits():
    from ensemble.core.outputs import Logits

    rng = np.random.default_rng(0)
    return Logits(np.array([f"r{i}" for i in range(ROWS)], dtype=object),
                  rng.normal(size=(ROWS, 10)).astype(np.float32), tuple(f"c{i}" for i in range(10)))


def main() -> None:
    kind, folder = sys.argv[1], Path(sys.argv[2])
    if kind == "cache":
        from ensemble.inference.cache import OutputCache

        cache, lg = OutputCache(folder / "cache"), logits()

        def write():
            cache.put(KEY, lg, {"model_digest": "m", "data_digest": "d"})
    elif kind == "weights":
        from ensemble.tasks.classification.weights import Weights

        n = 2000  # many models: a file of a few hundred kB
        w = Weights("fixed", tuple(f"m{i}" for i in range(n)), np.full(n, 1 / n), meta={"pad": "x" * 200_000})

        def write():
            w.save(folder / "weights.json")
    elif kind == "submission":
        import pandas as pd

        from ensemble.workflows.submission import save_submission

        frame = pd.DataFrame({"id": [f"t{i}" for i in range(ROWS)], "label": ["c1"] * ROWS})

        def write():
            save_submission(frame, folder / "sub.csv", {"rows": ROWS})
    elif kind == "report":
        from ensemble.io.atomic import atomic_write

        page = "<html><body>" + "<p>row</p>" * 500_000 + "</body></html>"

        def write():
            atomic_write(folder / "report.html", lambda p: p.write_text(page, encoding="utf-8"))
    elif kind == "average":
        from ensemble.averaging.build import average_checkpoints

        def write():
            average_checkpoints([folder / "ck1", folder / "ck2"], out=folder / "avg", force=True,
                                tokenizer=folder / "tok", progress=False)
    else:
        raise SystemExit(f"unknown kind {kind}")
    print("ready", flush=True)
    while True:
        write()


if __name__ == "__main__":
    main()
