"""What was written is kept: a vote never takes away the weights file that an earlier
submission's sidecar names (that submission could no longer be reproduced), and ensemble run
replaces only the submission it wrote itself, never one that a manual vote wrote under the same
name."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble.cli import main

from tests.synthetic_members import make_task_members
from tests.tasks.test_contract import IDS

from .test_vote import project as project  # noqa: F401  (the fixture: three members, cached logits)


@pytest.mark.parametrize("task", IDS)
def test_a_vote_keeps_the_weights_file_another_submission_names(task, tmp_path):
    from ensemble import vote

    members, data, cache_dir, columns, names = make_task_members(task, tmp_path)
    where = dict(columns=columns, cache_dir=cache_dir, weights_dir=tmp_path / "weights",
                 submissions_dir=tmp_path / "submissions")
    first = vote(members, data, "optimize", **where)
    side = json.loads((tmp_path / "submissions" / "ensemble-optimize.csv.json").read_text())
    named = side["weights_file"]
    before = (tmp_path / "weights" / "ensemble-optimize.json").read_text()
    # another procedure (two members of three) written by hand elsewhere, with the same method
    two = dict(list(members.items())[:2])
    other = vote(two, data, "optimize", out=tmp_path / "other.csv", **where)
    other_side = json.loads((tmp_path / "other.csv.json").read_text())
    assert other_side["weights_file"] != named and (tmp_path / "weights" / "ensemble-optimize.json").read_text() == before
    # the first submission is reproduced from the weights file its sidecar names
    again = vote(members, data, named, out=tmp_path / "again.csv", **where)
    pd.testing.assert_frame_equal(pd.read_csv(first.attrs["path"]), again.reset_index(drop=True), check_dtype=False)
    assert len(other) == len(first)


def test_run_keeps_a_submission_a_manual_vote_wrote_under_its_name(project, tmp_path, monkeypatch):
    root = project
    proj = tmp_path / "proj"
    for name in ("bert", "early", "valid.csv", "test.csv"):
        (shutil.copytree if (root / name).is_dir() else shutil.copy)(root / name, proj / name)
    (proj / "ensemble.toml").write_text('[data]\nvalid = "valid.csv"\ntest = "test.csv"\n\n[models]\nbert = "bert"\n'
                                        'early = "early"\n\n[vote]\nweights = "acc"\n', encoding="utf-8")
    monkeypatch.chdir(proj)
    assert CliRunner().invoke(main, ["predict"]).exit_code == 0
    manual = CliRunner().invoke(main, ["vote", "--combine", "logit"])  # the project's members, another rule
    assert manual.exit_code == 0, manual.output
    mine = proj / "submissions" / "ensemble-acc.csv"
    kept = mine.read_bytes(), (proj / "submissions" / "ensemble-acc.csv.json").read_bytes()
    ran = CliRunner().invoke(main, ["run"])
    assert ran.exit_code == 0, ran.output
    assert (mine.read_bytes(), (proj / "submissions" / "ensemble-acc.csv.json").read_bytes()) == kept
    written = proj / ran.stdout.strip().splitlines()[-1]
    assert written.name == "ensemble-acc-2.csv"
    # run replaces its own submission when its inputs change
    (proj / "ensemble.toml").write_text((proj / "ensemble.toml").read_text().replace('"acc"', '"acc"\ncombine = "geometric"'))
    again = CliRunner().invoke(main, ["run"])
    assert again.exit_code == 0, again.output
    assert (proj / again.stdout.strip().splitlines()[-1]).name == "ensemble-acc-2.csv"
    assert json.loads((proj / "submissions" / "ensemble-acc-2.csv.json").read_text())["procedure"]["combine"] == "geometric"
    assert (mine.read_bytes(), (proj / "submissions" / "ensemble-acc.csv.json").read_bytes()) == kept
    # the pointer follows the last headline: a manual vote's, then an up-to-date run's again
    from ensemble.workflows.submission import latest_submission

    assert latest_submission(proj / "submissions").name == "ensemble-acc-2.csv"
    assert CliRunner().invoke(main, ["vote", "--combine", "logit"]).exit_code == 0
    assert latest_submission(proj / "submissions").name == "ensemble-acc.csv"
    up = CliRunner().invoke(main, ["run"])
    assert "vote: up to date" in up.output and latest_submission(proj / "submissions").name == "ensemble-acc-2.csv"


@pytest.mark.parametrize("task", IDS)
def test_latest_json_points_at_the_file_the_last_headline_names(task, tmp_path, caplog):
    """Repeated votes of other procedures pile up ensemble-uniform-2.csv...; latest.json beside
    them names the one the last vote wrote (checked when read), and "replaced" is said only of a
    submission of another procedure."""
    import logging

    from ensemble import vote
    from ensemble.core.errors import EnsembleError
    from ensemble.workflows.submission import latest_submission

    members, data, cache_dir, columns, names = make_task_members(task, tmp_path)
    subs = tmp_path / "submissions"
    where = dict(columns=columns, cache_dir=cache_dir, weights_dir=tmp_path / "weights", submissions_dir=subs)
    two = dict(list(members.items())[:2])
    caplog.set_level(logging.INFO, logger="ensemble")
    first = vote(members, data, "uniform", **where)
    assert latest_submission(subs) == subs / "ensemble-uniform.csv" == __import__("pathlib").Path(first.attrs["path"])
    second = vote(two, data, "uniform", **where)  # another procedure: beside it, and the pointer follows
    assert second.attrs["path"].endswith("ensemble-uniform-2.csv") and latest_submission(subs).name == "ensemble-uniform-2.csv"
    pointer = json.loads((subs / "latest.json").read_text())
    assert pointer["headline"] == json.loads((subs / "ensemble-uniform-2.csv.json").read_text())["headline"]
    caplog.clear()
    vote(members, data, "uniform", **where)  # the first procedure again: its own file, rewritten
    assert latest_submission(subs).name == "ensemble-uniform.csv"
    assert not any("replaced" in r.getMessage() for r in caplog.records)
    vote(two, data, "uniform", force=True, **where)  # forced over the first procedure's file
    assert any("replaced" in r.getMessage() and "another procedure" in r.getMessage() for r in caplog.records)
    (subs / "ensemble-uniform.csv").write_text("id,label\n")  # edited since: the pointer says so
    with pytest.raises(EnsembleError, match="latest.json: points at ensemble-uniform.csv, which is missing or changed"):
        latest_submission(subs)
    vote(members, data, "uniform", out=tmp_path / "by-hand.csv", **where)  # an out by hand: no pointer beside it
    assert not (tmp_path / "latest.json").exists()
    # an out given in the submissions folder: the pointer follows it (never names an older file)
    vote(two, data, "uniform", out=subs / "mine.csv", **where)
    assert latest_submission(subs).name == "mine.csv"
    # a file no vote wrote (no sidecar), replaced: said
    (tmp_path / "foreign.csv").write_text("id,label\nx,1\n")
    caplog.clear()
    vote(members, data, "uniform", out=tmp_path / "foreign.csv", **where)
    assert any("replaced" in r.getMessage() and "no sidecar" in r.getMessage() for r in caplog.records)
