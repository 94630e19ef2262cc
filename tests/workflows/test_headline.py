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
    assert text[1].startswith("leaderboard (best honest estimate first; optimism = apparent - honest)")
    board = rep.leaderboard()
    assert list(board["honest"]) == sorted(board["honest"], reverse=True)
    assert (board["optimism"] - (board["apparent"] - board["honest"])).abs().max() < 1e-12
    page = rep.to_html()
    assert page.index("class='headline'") < page.index("<h2>Leaderboard</h2>") < page.index("<h2>Details</h2>")
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
