"""One headline everywhere: report (API, text, page, JSON), vote (its output and its sidecar) and
ensemble run say which file is submitted, which method, its estimate on unseen data with its
interval, and what the estimate is of."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ensemble.cli import main

from .test_vote import project as project  # noqa: F401  (the fixture: three members, cached logits)

KEYS = {"submission", "method", "metric", "estimate", "low", "high", "of"}


def test_report_vote_and_run_say_the_same_headline(project, tmp_path, monkeypatch):
    from ensemble import report

    root = project
    members = {m: root / m for m in ("bert", "early")}
    data = {"valid": root / "valid.csv", "test": root / "test.csv"}
    rep = report(members, data, cache_dir=root / "cache", adjust="none")
    h = rep.headline
    assert set(h) == KEYS and h["method"] == rep.choice and h["of"] == "cross-validated" and h["submission"] is None
    assert h["estimate"] == pytest.approx(rep.table.loc[rep.choice, "cv_accuracy"]) and h["low"] < h["estimate"] < h["high"]
    text = rep.to_text().splitlines()
    assert text[0].startswith(f"submission: {rep.choice}, accuracy {h['estimate']:.4f} [") and "cross-validated" in text[0]
    assert text[1].startswith("leaderboard (best honest estimate first; optimism = apparent - cross-validated on the "
                              "same rows")
    board = rep.leaderboard()
    assert list(board["honest"]) == sorted(board["honest"], reverse=True)
    cv = rep.table.loc[board.index, "cv_accuracy"]  # like from like: the same rows' cross-validated figure
    assert (board["optimism"] - (board["apparent"] - cv)).abs().max() < 1e-12
    assert board.loc["uniform", "auto"] == "candidate"
    page = rep.to_html()
    assert page.index("class='headline'") < page.index("<h2>Leaderboard</h2>") < page.index("<details>")
    args = [x for m, p in members.items() for x in ("--model", f"{m}={p}")] + [
        "--data", f"valid={root / 'valid.csv'}", "--data", f"test={root / 'test.csv'}", "--cache-dir", str(root / "cache")]
    doc = json.loads(CliRunner().invoke(main, ["report", *args, "--json", "--adjust", "none"]).stdout)
    assert doc["headline"] == {**h, "estimate": pytest.approx(h["estimate"])}
    voted = CliRunner().invoke(main, ["vote", *args, "--weights", "auto", "--out", str(tmp_path / "s.csv")])
    assert voted.exit_code == 0, voted.output
    side = json.loads((tmp_path / "s.csv.json").read_text())["headline"]
    assert side["submission"] == "s.csv" and side["method"] == rep.choice and side["of"] == "cross-validated"
    assert side["estimate"] == pytest.approx(h["estimate"]) and (side["low"], side["high"]) == pytest.approx((h["low"], h["high"]))
    assert voted.stdout.splitlines()[0].startswith(f"submission {tmp_path / 's.csv'}: {rep.choice}, accuracy "
                                                   f"{h['estimate']:.4f}")  # the first line, before auto's reason
    assert voted.stdout.splitlines()[1].startswith("auto -> ")
    import shutil

    proj = tmp_path / "proj"  # a copy: the fixture's folder is shared with other tests
    for name in ("bert", "early", "valid.csv", "test.csv"):
        (shutil.copytree if (root / name).is_dir() else shutil.copy)(root / name, proj / name)
    (proj / "ensemble.toml").write_text('[data]\nvalid = "valid.csv"\ntest = "test.csv"\n\n[models]\nbert = "bert"\n'
                                        'early = "early"\n\n[vote]\nweights = "auto"\n', encoding="utf-8")
    monkeypatch.chdir(proj)
    ran = CliRunner().invoke(main, ["run"])
    assert ran.exit_code == 0, ran.output
    submitted = ran.stdout.strip().splitlines()[-1]
    line = next(l for l in ran.stdout.splitlines() if l.startswith("submission "))
    assert line.startswith(f"submission submissions/{submitted.rsplit('/', 1)[-1]}: ") and "on unseen data" in line
    assert "class='headline'" in (proj / "report.html").read_text()


def test_the_headline_names_what_its_estimate_is(project):
    """A note on a cross-validated estimate keeps its words; a metric the table does not hold
    (a scikit-learn scorer) is not the label of an accuracy."""
    from ensemble import report
    from ensemble.estimates.headline import headline_line

    line = headline_line({"submission": None, "method": "acc", "metric": "accuracy", "estimate": 0.8, "low": 0.7,
                          "high": 0.9, "of": "cross-validated", "note": "the fit adjustment is not in this estimate"})
    assert line == ("submission: acc, accuracy 0.8000 [0.7000, 0.9000] on unseen data (cross-validated on the "
                    "validation rows); the fit adjustment is not in this estimate")
    root = project
    rep = report({m: root / m for m in ("bert", "early")}, {"valid": root / "valid.csv"}, cache_dir=root / "cache",
                 adjust="none", metric="balanced_accuracy", methods=["acc"])
    assert rep.headline["metric"] == "accuracy" and rep.headline["estimate"] == rep.table.loc[rep.choice, "cv_accuracy"]


def test_one_default_of_weights_and_the_run_headline_follows_the_vote(project, tmp_path, monkeypatch):
    """vote(), ensemble vote and ensemble run share one default ("auto"); auto with no labelled
    validation rows submits uniform and says so; after ``[vote] weights`` changes, ensemble run
    redoes the report, whose headline names the new file and the method submitted there."""
    import inspect
    import logging
    import shutil

    import pandas as pd

    from ensemble import report, vote
    from ensemble.core.options import DEFAULT_WEIGHTS
    from ensemble.estimates.headline import VOTE_LOGGER

    assert DEFAULT_WEIGHTS == "auto" and inspect.signature(vote).parameters["weights"].default == DEFAULT_WEIGHTS
    root = project
    members = {m: root / m for m in ("bert", "early")}
    rep = report(members, {"valid": root / "valid.csv"}, cache_dir=root / "cache", adjust="none")
    args = [x for m, p in members.items() for x in ("--model", f"{m}={p}")] + ["--cache-dir", str(root / "cache")]
    voted = CliRunner().invoke(main, ["vote", *args, "--data", f"valid={root / 'valid.csv'}", "--data",
                                      f"test={root / 'test.csv'}", "--adjust", "none", "--out", str(tmp_path / "d.csv")])
    assert voted.exit_code == 0, voted.output
    assert json.loads((tmp_path / "d.csv.json").read_text())["headline"]["method"] == rep.choice
    assert voted.stdout.splitlines()[1].startswith("auto -> ")
    unlabelled = tmp_path / "valid.csv"
    pd.read_csv(root / "valid.csv").drop(columns="label").to_csv(unlabelled, index=False)
    said = []

    class Said(logging.Handler):
        def emit(self, record):
            said.append(record.getMessage())

    vote_log = logging.getLogger(VOTE_LOGGER)  # the CLI's logging does not propagate to caplog's handler
    handler, level = Said(), vote_log.level
    vote_log.addHandler(handler)
    vote_log.setLevel(logging.INFO)
    try:
        sub = vote(members, {"valid": unlabelled, "test": root / "test.csv"}, cache_dir=root / "cache",
                   out=tmp_path / "u.csv", weights_dir=tmp_path / "w")
    finally:
        vote_log.removeHandler(handler)
        vote_log.setLevel(level)
    assert sub.attrs["headline"]["method"] == "uniform"
    assert any(m.startswith("auto -> uniform: no labelled validation rows") for m in said), said

    proj = tmp_path / "proj"
    for name in ("bert", "early", "valid.csv", "test.csv"):
        (shutil.copytree if (root / name).is_dir() else shutil.copy)(root / name, proj / name)
    config = '[data]\nvalid = "valid.csv"\ntest = "test.csv"\n\n[models]\nbert = "bert"\nearly = "early"\n\n'
    (proj / "ensemble.toml").write_text(config, encoding="utf-8")  # no [vote] weights: the default
    monkeypatch.chdir(proj)
    first = CliRunner().invoke(main, ["run"])
    assert first.exit_code == 0, first.output
    other = "acc" if rep.choice != "acc" else "uniform"
    (proj / "ensemble.toml").write_text(config + f'[vote]\nweights = "{other}"\n', encoding="utf-8")
    second = CliRunner().invoke(main, ["run"])
    assert second.exit_code == 0, second.output
    submitted = second.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]
    assert submitted == f"ensemble-{other}.csv"
    line = next(l for l in second.stdout.splitlines() if l.startswith("submission "))
    assert line.startswith(f"submission submissions/{submitted}: {other}, accuracy "), second.stdout
    page = (proj / "report.html").read_text()
    assert f"submissions/{submitted}" in page


@pytest.mark.parametrize("submitted,expected", [
    (None, "submission runs/s.csv: stack, accuracy 0.8000"),  # no vote yet: the report's own choice
    ({"submission": "s.csv", "method": "stack"}, "submission runs/s.csv: stack, accuracy 0.8000"),
    ({"submission": "s.csv", "method": "acc", "metric": "accuracy", "estimate": 0.7, "low": 0.6, "high": 0.8,
      "of": "cross-validated"}, "submission runs/s.csv: acc, accuracy 0.7000"),  # the vote's own figure
    ({"submission": "s.csv", "method": "select", "note": "fixed weights"},
     "submission runs/s.csv: select, accuracy 0.7500"),  # the report's honest figure of that method
    ({"submission": "s.csv", "method": "1,2", "note": "weights given, not fitted"},
     "submission runs/s.csv: 1,2, not estimated; weights given, not fitted"),
])
def test_the_headline_names_what_the_vote_submitted(submitted, expected):
    from ensemble.estimates.headline import headline_line, submitted_headline

    own = {"submission": "runs/s.csv", "method": "stack", "metric": "accuracy", "estimate": 0.8, "low": 0.7,
           "high": 0.9, "of": "cross-validated"}
    honest = {"select": {"metric": "accuracy", "estimate": 0.75, "low": 0.65, "high": 0.85, "of": "cross-validated"}}
    line = headline_line(submitted_headline(own, submitted, honest.get))
    assert line.startswith(expected), line
