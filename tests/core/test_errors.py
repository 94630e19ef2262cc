"""Messages name the fix for the face the user is in: a flag on the command line, a keyword in
a notebook, a key of ensemble.toml under ``ensemble run``."""

from __future__ import annotations

from ensemble.core import errors
from ensemble.core.errors import cli_messages, data_fix, flag, folds_fix, named, option, project_scope


def test_each_helper_in_each_face(tmp_path):
    toml = tmp_path / "ensemble.toml"
    library = (flag("max_length", 14), option("prior", "data/train.csv"), named("combine"), data_fix("valid"),
               folds_fix())
    assert library == ("max_length=14", "pass prior=data/train.csv", "combine", "pass data={'valid': PATH}",
                       "pass folds=FILE and data={'train': PATH, ...}")
    with cli_messages():
        cli = (flag("max_length", 14), option("prior", "data/train.csv"), named("combine"), data_fix("valid"),
               folds_fix())
    assert cli == ("--max-length 14", "pass --prior data/train.csv", "--combine", "pass --data valid=PATH",
                   "pass --folds FILE and --data train=PATH")
    with project_scope(toml, members=["a", "b"]):
        project = (option("prior", "data/train.csv"), named("combine"), data_fix("valid"), folds_fix(),
                   option("device", "cpu"))
        assert errors.project_members() == frozenset({"a", "b"})
    assert project == (f'set prior = "data/train.csv" in [vote] of {toml}', f"[vote] combine of {toml}",
                       f'set valid = "PATH" in [data] of {toml}', f'set folds = "FILE" and train = "PATH" in [data] of {toml}',
                       f'set device = "cpu" in [predict] of {toml}')
    assert errors.project_members() is None  # the scope is undone


def test_a_library_call_is_told_its_keywords(tmp_path):
    """Through a real call: average_checkpoints in a notebook names k and holdout, the CLI the flags."""
    import pytest

    from ensemble import average_checkpoints
    from ensemble.core.errors import EnsembleError

    with pytest.raises(EnsembleError, match=r"^k=auto needs holdout: a labelled data file"):
        average_checkpoints(tmp_path, k="auto")
    with cli_messages(), pytest.raises(EnsembleError, match=r"^--k auto needs --holdout: a labelled data file"):
        average_checkpoints(tmp_path, k="auto")
