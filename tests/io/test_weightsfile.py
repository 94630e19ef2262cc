"""The weights file: its checksum covers every field, and every field is validated when read."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.tasks.classification.weights import Weights
from ensemble.core.errors import EnsembleError
from ensemble.io.weightsfile import WEIGHTS_SCHEMA, check_weights, validate_weights, weights_checksum


def _doc():
    w = Weights("acc", ("a", "b"), np.array([0.25, 0.75]), "prob", ("x", "y"))
    return w.to_dict()


def test_the_checksum_changes_with_any_field():
    doc = _doc()
    assert doc["schema"] == WEIGHTS_SCHEMA
    base = weights_checksum(doc)
    assert weights_checksum({**doc, "combine": "logit"}) != base
    assert weights_checksum({**doc, "weights": [0.3, 0.7]}) != base


def test_a_saved_file_records_the_checksum_of_the_rest(tmp_path):
    import json

    w = Weights("acc", ("a", "b"), np.array([0.25, 0.75]), "prob", ("x", "y"))
    doc = json.loads(w.save(tmp_path / "w.json").read_text())
    assert doc.pop("blake3") == weights_checksum(doc)


@pytest.mark.parametrize("change, message", [
    ({"combine": "mean"}, "combine must be one of prob, logit, geometric, vote"),
    ({"method": "../x"}, "method must be one of uniform"),
    ({"models": ["a", "../b"]}, "b"),
])
def test_fields_are_validated(change, message):
    with pytest.raises((ValueError, EnsembleError), match=message):
        validate_weights({**_doc(), **change})


def test_weights_must_be_finite_non_negative_and_not_all_zero():
    check_weights(np.array([0.0, 2.0]), "w")
    for bad in ([np.nan, 1.0], [-1.0, 2.0], [0.0, 0.0]):
        with pytest.raises(EnsembleError, match=r"^w: "):
            check_weights(np.array(bad), "w")


def test_a_saved_file_loads_back_equal_and_an_edited_one_is_refused(tmp_path):
    w = Weights("acc", ("a", "b"), np.array([0.25, 0.75]), "prob", ("x", "y"))
    path = w.save(tmp_path / "w.json")
    back = Weights.load(path)
    np.testing.assert_array_equal(back.weights, w.weights)
    assert back.models == w.models
    path.write_text(path.read_text().replace("0.25", "0.35"))
    with pytest.raises(EnsembleError, match=r"w.json"):
        Weights.load(path)
