"""The competition's sample submission: read once, its ids checked against the test file's.

Every task's submission follows it (its columns, row order and label format); ``ensemble run``
checks its ids before any model runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError

__all__ = ["read_sample", "sample_order"]


def read_sample(path: Path):
    """The sample submission as strings (an id column, a label column or more, rows), or a
    one-line error naming the file and the fix."""
    import pandas as pd

    try:
        sample = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise EnsembleError(f"{path}: not found; pass the competition's sample submission CSV") from None
    except UnicodeDecodeError:
        from ensemble.data.splits import encoding_hint

        hint = encoding_hint(path).split("; ")[0]
        raise EnsembleError(f"{path}: is not UTF-8 ({hint}); re-save the sample submission as UTF-8") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as e:
        raise EnsembleError(f"{path}: cannot be read as a CSV ({type(e).__name__}); check the file") from None
    if len(sample.columns) < 2 or len(sample) == 0:
        raise EnsembleError(f"{path}: a sample submission needs an id column, a label column and rows; "
                            f"got columns {', '.join(sample.columns)} and {len(sample)} rows")
    return sample


def sample_order(sample_path: Path, ids: Sequence[str]):
    """The sample submission read, and for each of its rows the row of ``ids`` it names: its ids
    must be the test ids, each once (a one-line error naming the first that is not)."""
    ids = [str(v) for v in ids]
    if len(set(ids)) != len(ids):  # the test rows' ids (a notebook's; a split refuses them when read)
        twice = next(v for k, v in enumerate(ids) if v in ids[:k])
        raise EnsembleError(f"test id {twice!r} appears twice; every test row needs an id of its own")
    sample = read_sample(sample_path)
    id_col = sample.columns[0]
    sample_ids = sample[id_col].to_numpy(dtype=object)
    position = {v: i for i, v in enumerate(ids)}
    extra = next((v for v in sample_ids if v not in position), None)
    if extra is not None:
        raise EnsembleError(f"{sample_path}: id {extra!r} is not in the test data; the sample and the test "
                            "file must hold the same ids")
    if len(set(sample_ids)) != len(sample_ids):
        seen, rows = {}, None
        for row, v in enumerate(sample_ids):
            if v in seen:
                rows = (seen[v], row)
                break
            seen[v] = row
        raise EnsembleError(f"{sample_path}: id {sample_ids[rows[0]]!r} appears twice (rows {rows[0] + 1} and "
                            f"{rows[1] + 1}); a sample submission lists each test id once")
    if len(sample_ids) != len(ids):
        sample_set = set(sample_ids)
        missing = next(v for v in ids if v not in sample_set)
        raise EnsembleError(f"{sample_path}: test id {missing!r} is missing; the sample and the test file "
                            "must hold the same ids")
    return sample, np.array([position[v] for v in sample_ids])
