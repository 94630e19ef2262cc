"""One inputs object for vote, report and gather: what they read, apart from how they fit."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble import Inputs, gather, report, vote
from ensemble.core.errors import EnsembleError

from .test_vote import project as project  # noqa: F401  (the fixture: three members, cached logits)


def test_inputs_of_keeps_an_inputs_and_replaces_what_is_given():
    base = Inputs({"a": "x"}, {"valid": "v.csv"}, columns={"text": "t"})
    assert Inputs.of(base) is base
    assert Inputs.of(base, cache_dir="c").cache_dir == "c" and Inputs.of(base, cache_dir="c").columns == {"text": "t"}
    assert Inputs.of(base, {"test": "t.csv"}).data == {"test": "t.csv"}
    assert Inputs.of({"a": "x"}, {"valid": "v.csv"}, refit=None).refit == {}
    with pytest.raises(EnsembleError, match=r"not an input: weights; inputs are cache_dir, class_order"):
        Inputs.of(base, weights="acc")
    with pytest.raises(EnsembleError, match=r"data must map split names to data files"):
        Inputs({"a": "x"}, "valid.csv")


def test_vote_report_and_gather_read_an_inputs_as_their_arguments(project, tmp_path):
    root = project
    members = {m: root / m for m in ("bert", "perm", "early")}
    data = {"valid": root / "valid.csv", "test": root / "test.csv"}
    inputs = Inputs(members, data, cache_dir=root / "cache")
    by_args = vote(members, data, "acc", cache_dir=root / "cache", out=tmp_path / "a.csv")
    by_inputs = vote(inputs, weights="acc", out=tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    np.testing.assert_array_equal(by_args.attrs["weights"].weights, by_inputs.attrs["weights"].weights)
    a = report(members, data, cache_dir=root / "cache", adjust="none", methods=["acc"], cv=3)
    b = report(inputs, adjust="none", methods=["acc"], cv=3)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() == report(inputs, adjust="none", methods=["acc"], folds=3).to_dict()  # the older spelling
    g = gather(inputs, "test")
    assert g.y is None and list(g.ids) == list(gather(members, data, "test", cache_dir=root / "cache").ids)


def test_a_procedure_is_the_fitting_settings_as_one_object(project, tmp_path):
    from ensemble.tasks.classification.procedure import Procedure

    root = project
    members = {m: root / m for m in ("bert", "perm")}
    inputs = Inputs(members, {"valid": root / "valid.csv", "test": root / "test.csv"}, cache_dir=root / "cache")
    by_args = vote(inputs, weights="optimize", temperature=True, adjust="fit", out=tmp_path / "a.csv")
    by_procedure = vote(inputs, weights=Procedure.of("optimize", temperature=True, adjust="fit"), out=tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert by_args.attrs["weights"].adjustment == by_procedure.attrs["weights"].adjustment
    with pytest.raises(EnsembleError, match=r"the procedure's option 'folds' is not one vote takes"):
        vote(inputs, weights=Procedure.of("stack", folds=3), out=tmp_path / "c.csv")
