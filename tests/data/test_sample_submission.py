"""The sample submission: read as strings, its ids the test file's, each once, in any order."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.data.sample_submission import read_sample, sample_order


def _sample(tmp_path, text):
    p = tmp_path / "sample.csv"
    p.write_text(text, encoding="utf-8")
    return p


def test_the_order_maps_each_sample_row_to_its_test_row(tmp_path):
    sample, order = sample_order(_sample(tmp_path, "ID,label\nc,0\na,0\nb,0\n"), ["a", "b", "c"])
    assert list(sample.columns) == ["ID", "label"] and order.tolist() == [2, 0, 1]
    np.testing.assert_array_equal(np.array(["a", "b", "c"], dtype=object)[order], sample["ID"].to_numpy())
    assert read_sample(_sample(tmp_path, "id,x\n007,1\n"))["id"].tolist() == ["007"]  # strings, as written


@pytest.mark.parametrize("text, ids, message", [
    ("id,label\na,0\nz,0\n", ["a", "b"], "id 'z' is not in the test data"),
    ("id,label\na,0\na,0\n", ["a", "b"], "id 'a' appears twice (rows 1 and 2)"),
    ("id,label\na,0\n", ["a", "b"], "test id 'b' is missing"),
    ("id\na\n", ["a"], "needs an id column, a label column and rows"),
])
def test_ids_that_are_not_the_test_files_are_one_line(tmp_path, text, ids, message):
    with pytest.raises(EnsembleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sample_order(_sample(tmp_path, text), ids)
