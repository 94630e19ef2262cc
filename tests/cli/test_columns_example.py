"""`ensemble example --task regression` and `--task multi_label`, then `ensemble run`, as a new
user types them: the examples' tiny Trainer runs averaged, predicted, voted and reported, the
headline first, the submission in the sample's format, and a second run up to date."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from ensemble.cli.main import main


@pytest.mark.parametrize("task, metric, columns", [
    ("regression", "mcrmse", ["id", "similarity", "agreement"]),
    ("multi_label", "f1_micro", ["id", "weather", "nature", "animal", "home"]),
])
def test_the_example_runs(tmp_path, task, metric, columns):
    folder = tmp_path / task
    made = CliRunner().invoke(main, ["example", str(folder), "--task", task])
    assert made.exit_code == 0, made.output
    text = (folder / "ensemble.toml").read_text()
    assert f'task = "{task}"' in text
    run = CliRunner().invoke(main, ["run", "--project", str(folder / "ensemble.toml")])
    assert run.exit_code == 0, run.output
    out = run.stdout
    lines = out.splitlines()
    submission = folder / lines[-1].strip() if not lines[-1].startswith("/") else None
    submission = submission or __import__("pathlib").Path(lines[-1].strip())
    headline = next(line for line in lines if line.startswith("submission "))
    assert f", {metric} " in headline and "on unseen data" in headline
    assert out.count("\nauto -> ") <= 1 and out.count(headline) == 1  # each said once
    with open(submission, encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == columns and len(rows) == 151
    if task == "multi_label":
        assert {v for r in rows[1:] for v in r[1:]} <= {"0", "1"}
    else:
        assert len({r[1] for r in rows[1:]}) > 10  # values, not one constant
    again = CliRunner().invoke(main, ["run", "--project", str(folder / "ensemble.toml")])
    assert again.exit_code == 0 and "vote: up to date" in again.output
    # a second example folder must be new
    refused = CliRunner().invoke(main, ["example", str(folder), "--task", task])
    assert refused.exit_code == 1 and "exists and is not empty" in refused.output
