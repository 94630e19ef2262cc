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
    if task == "regression":
        _names_decide(folder, submission)
    # a second example folder must be new
    refused = CliRunner().invoke(main, ["example", str(folder), "--task", task])
    assert refused.exit_code == 1 and "exists and is not empty" in refused.output


def _names_decide(folder, submission):
    """sts-b's head does not name its targets: its mapping is said once (outputs =), so listing
    the label columns in another order moves no output to another target; without it, run stops
    before it votes and names the key."""
    import pandas as pd

    toml = folder / "ensemble.toml"
    text = toml.read_text()
    first = pd.read_csv(submission)
    toml.write_text(text.replace('label = ["similarity", "agreement"]', 'label = ["agreement", "similarity"]'))
    moved = CliRunner().invoke(main, ["run", "--project", str(toml)])
    assert moved.exit_code == 0, moved.output
    again = pd.read_csv(folder / moved.stdout.splitlines()[-1].strip())
    pd.testing.assert_frame_equal(again[first.columns], first, atol=1e-9)
    toml.write_text(text.replace(', outputs = ["similarity", "agreement"]', ""))
    refused = CliRunner().invoke(main, ["run", "--project", str(toml)])
    assert refused.exit_code == 1, refused.output
    assert 'sts-b does not name its outputs' in refused.output
    assert 'set outputs = ["<column of LABEL_0>", "<column of LABEL_1>"] in its [models] or [runs] entry' in refused.output
