"""A submission is written as a set: the CSV, then the sidecar that records its checksum."""

from __future__ import annotations

import json

import numpy as np

from ensemble.workflows.submission import save_submission, sidecar_matches, sidecar_path, write_submission


def test_the_sidecar_describes_its_csv_until_the_csv_changes(tmp_path):
    out = tmp_path / "sub.csv"
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    frame = write_submission(["a", "b", "c"], proba, ["neg", "pos"], out=out, sidecar={"method": "uniform"})
    assert list(frame["label"]) == ["neg", "pos", "neg"] and out.read_text().splitlines()[0] == "id,label"
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["method"] == "uniform" and meta["rows"] == 3 and sidecar_matches(out)
    out.write_text(out.read_text().replace("pos", "neg"))
    assert not sidecar_matches(out)


def test_a_failing_later_step_removes_the_csv_this_call_created(tmp_path):
    import pandas as pd
    import pytest

    out = tmp_path / "sub.csv"

    def boom():
        raise RuntimeError("the weights file could not be written")

    with pytest.raises(RuntimeError):
        save_submission(pd.DataFrame({"id": ["a"], "label": ["x"]}), out, {}, then=boom)
    assert not out.exists() and not sidecar_path(out).exists()
