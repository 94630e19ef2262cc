"""Members: names checked, fold groups from a {fold} path or a list, K agreed across groups."""

from __future__ import annotations

from pathlib import Path

import pytest

from ensemble.core.errors import EnsembleError
from ensemble.workflows.members import Member, fold_path, is_fold_template, resolve_members


def _folds(root: Path, name: str, k: int) -> str:
    for i in range(k):
        (root / f"{name}-fold{i}").mkdir(parents=True)
    return str(root / f"{name}-fold{{fold}}")


def test_plain_members_and_fold_groups(tmp_path):
    members = resolve_members({"a": tmp_path / "a", "g": _folds(tmp_path, "g", 3)}, k=3)
    assert [m.name for m in members] == ["a", "g"]
    assert not members[0].is_fold_group and members[1].is_fold_group
    assert [p.name for p in members[1].parts] == ["g-fold0", "g-fold1", "g-fold2"]
    assert resolve_members(members) == members  # resolved once, kept as they are
    assert is_fold_template("runs/x-fold{fold}") and not is_fold_template("runs/x")
    assert fold_path("runs/x-fold{fold}", 2) == Path("runs/x-fold2")


def test_a_fold_group_without_k_names_the_fix():
    with pytest.raises(EnsembleError, match=r"member g \(runs/g-fold\{fold\}\) is a fold group; pass folds=FILE"):
        resolve_members({"g": "runs/g-fold{fold}"})


@pytest.mark.parametrize("members, message", [
    ({"../x": "m"}, r"member name '\.\./x' must be letters"),
    ([Member("a", Path("m")), Member("a", Path("n"))], r"member name 'a' is given twice"),
    (["m"], r"members must be a mapping of names to model folders"),
])
def test_bad_members(members, message):
    with pytest.raises(EnsembleError, match=message):
        resolve_members(members)


def test_fold_groups_of_different_k_are_an_error(tmp_path):
    a = resolve_members({"a": _folds(tmp_path, "a", 3)}, k=3)
    b = resolve_members({"b": _folds(tmp_path, "b", 2)}, k=2)
    with pytest.raises(EnsembleError, match=r"fold groups a \(3 folds\) and b \(2 folds\) differ in K"):
        resolve_members(a + b)
