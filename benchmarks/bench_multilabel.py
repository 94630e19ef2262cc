"""Multi-label ensembles: the honest estimate against the truth, and the cost of ``report`` at
20,000 rows x 10 members x 30 labels. The simulation and the figures are shared with regression
(``benchmarks/bench_regression.py``, which documents them); this runs its multi-label part.

    python benchmarks/bench_multilabel.py [--seeds 50] [--cost-only]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_regression import main  # noqa: E402

if __name__ == "__main__":
    sys.argv[1:1] = ["--task", "multi_label"]
    main()
