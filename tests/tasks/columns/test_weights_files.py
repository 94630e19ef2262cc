"""What is read is checked: a regression or multi-label weights file carries a checksum, as a
classifier's does; one edited by hand, damaged or of the wrong shape is refused in one line naming
the file, never used as is nor a traceback."""

from __future__ import annotations

import json

import pytest

from ensemble.core.errors import EnsembleError
from ensemble.io.weightsfile import weights_checksum

from tests.synthetic_members import make_task_members


@pytest.fixture(scope="module", params=["regression", "multi_label"])
def fitted(request, tmp_path_factory):
    from ensemble import vote

    root = tmp_path_factory.mktemp(f"wfile-{request.param}")
    members, data, cache_dir, columns, names = make_task_members(request.param, root)
    files = {}
    for method in ("optimize", "stack"):
        vote(members, data, method, columns=columns, cache_dir=cache_dir, out=root / f"{method}.csv",
             weights_dir=root / method)
        (files[method],) = (root / method).glob("*.json")
    return request.param, members, data, cache_dir, columns, files


def _resealed(d):
    """The document with a checksum that matches it: a file whose content is wrong, not edited."""
    d = {k: v for k, v in d.items() if k != "blake3"}
    return {**d, "blake3": weights_checksum(d)}


EDITS = {
    "a weight changed": lambda d: {**d, "weights": [w * 2 if i == 0 else w for i, w in enumerate(d["weights"])]},
    "the checksum removed": lambda d: {k: v for k, v in d.items() if k != "blake3"},
    "weights of the wrong shape": lambda d: _resealed({**d, "weights": [1.0]}),
    "a negative weight": lambda d: _resealed({**d, "weights": [-1.0] + list(d["weights"][1:])}),
    "a threshold out of (0, 1)": lambda d: _resealed({**d, "threshold": 1.5}),
    "clip low above high": lambda d: _resealed({**d, "clip": [[1.0] * len(d["names"]), [0.0] * len(d["names"])]}),
    "a task that is not one": lambda d: _resealed({**d, "task": "ner"}),
    "no weights": lambda d: _resealed({k: v for k, v in d.items() if k != "weights"}),
}


@pytest.mark.parametrize("method", ["optimize", "stack"])
@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edited_or_malformed_weights_file_is_refused_in_one_line(fitted, tmp_path, method, edit):
    from ensemble import vote

    task, members, data, cache_dir, columns, files = fitted
    path = tmp_path / "w.json"
    path.write_text(json.dumps(EDITS[edit](json.loads(files[method].read_text()))), encoding="utf-8")
    with pytest.raises(EnsembleError) as e:
        vote(members, data, str(path), columns=columns, cache_dir=cache_dir, out=tmp_path / "s.csv",
             weights_dir=tmp_path / "w")
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "s.csv").exists()


def test_an_untouched_weights_file_is_read_back(fitted, tmp_path):
    """The file as written reproduces its submission."""
    import pandas as pd

    from ensemble import vote

    task, members, data, cache_dir, columns, files = fitted
    for method, path in files.items():
        again = vote(members, data, str(path), columns=columns, cache_dir=cache_dir, out=tmp_path / f"{method}.csv",
                     weights_dir=tmp_path / "w")
        first = pd.read_csv(path.parent.parent / f"{method}.csv")
        pd.testing.assert_frame_equal(first, again.reset_index(drop=True), check_dtype=False)
