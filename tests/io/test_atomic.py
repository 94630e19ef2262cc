"""Atomic writes leave the old file or the new one, never a part; the project file is found like
git finds .git."""

from __future__ import annotations

import pytest

from ensemble.io.atomic import atomic_write
from ensemble.io.projectfile import find_project


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out" / "f.txt"
    atomic_write(path, lambda tmp: tmp.write_text("old"))

    def half(tmp):
        tmp.write_text("par")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, half)
    assert path.read_text() == "old" and sorted(p.name for p in path.parent.iterdir()) == ["f.txt"]
    assert atomic_write(path, lambda tmp: tmp.write_text("new")) == path and path.read_text() == "new"


def test_the_nearest_project_file_up_from_a_folder(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert find_project(tmp_path / "a" / "b") is None or find_project(tmp_path / "a" / "b").parent not in (
        tmp_path, tmp_path / "a")
    (tmp_path / "a" / "ensemble.toml").write_text("")
    assert find_project(tmp_path / "a" / "b") == (tmp_path / "a" / "ensemble.toml").resolve()
    (tmp_path / "a" / "b" / "ensemble.toml").write_text("")
    assert find_project(tmp_path / "a" / "b") == (tmp_path / "a" / "b" / "ensemble.toml").resolve()
