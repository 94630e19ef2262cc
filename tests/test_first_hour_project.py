"""What a new user trips on in a project of their own: placeholder test labels, an unclosed quote,
project defaults that must not break a valid command, messages that name the fix of the face the
user is in, the notebook beside the CLI, and the wording of what is printed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble.cli.main import main
from ensemble.core.errors import EnsembleError


@pytest.fixture(scope="module")
def project(runs, tmp_path_factory):
    """Two members, valid and test files, an ensemble.toml with [vote] adjust = "auto" (as every
    ensemble example has), the logits cached."""
    root = tmp_path_factory.mktemp("first")
    for name, ck in (("bert", "checkpoint-18"), ("early", "checkpoint-9")):
        shutil.copytree(runs.tok / ck, root / name)
    texts, labels = runs.valid_texts, runs.valid_labels
    pd.DataFrame({"id": [f"v{i}" for i in range(40)], "text": texts[:40], "label": labels[:40]}).to_csv(
        root / "valid.csv", index=False)
    pd.DataFrame({"id": [f"t{i}" for i in range(24)], "text": texts[40:]}).to_csv(root / "test.csv", index=False)
    (root / "ensemble.toml").write_text('[data]\nvalid = "valid.csv"\ntest = "test.csv"\n\n[models]\nbert = "bert"\n'
                                        'early = "early"\n\n[vote]\nweights = "optimize"\nadjust = "auto"\n')
    result = _cli("predict", "--project", root / "ensemble.toml", "-q")
    assert result.exit_code == 0, result.output
    return root


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _copy(project, tmp_path) -> Path:
    shutil.copytree(project, tmp_path / "p")
    return tmp_path / "p"


@pytest.mark.parametrize("placeholder", ["", "-1", "?", "0"])
def test_a_placeholder_label_column_in_the_test_file_is_ignored(project, tmp_path, monkeypatch, placeholder):
    root = _copy(project, tmp_path)
    test = pd.read_csv(root / "test.csv")
    test["label"] = placeholder
    test.to_csv(root / "test.csv", index=False)
    monkeypatch.chdir(root)
    result = _cli("run")
    assert result.exit_code == 0, result.output
    assert "the test split is never fitted or scored, so its label column 'label' is ignored" in result.stdout
    # the same placeholder in a split that is scored: one line naming the rows
    valid = pd.read_csv(root / "valid.csv", keep_default_na=False, dtype=str)
    valid.loc[[2, 5], "label"] = "?"
    valid.to_csv(root / "valid.csv", index=False)
    refused = _cli("vote", "--weights", "uniform")
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1, refused.output
    assert "valid.csv: 2 row(s) have no label ('?', a placeholder: row 3, 6); this split is scored" in refused.stderr


def test_an_unclosed_quote_names_the_fix_of_the_face(project, tmp_path, monkeypatch):
    from ensemble.data.splits import load_split

    tsv = tmp_path / "valid.tsv"
    tsv.write_text('id\ttext\tlabel\n1\tok\tnone\n2\t"never closed\tnone\n3\tfine\tnone\n', encoding="utf-8")
    with pytest.raises(EnsembleError, match=r"EOF inside string.*its double quotes are text, not quoting: "
                                            r"pass quoting=none"):
        load_split(tsv)
    cli = _cli("predict", "--model", f"b={project / 'bert'}", "--data", f"valid={tsv}", "--cache-dir", tmp_path / "c")
    assert cli.exit_code == 1 and "pass --quoting none" in cli.stderr
    root = _copy(project, tmp_path)
    shutil.copy(tsv, root / "valid.tsv")
    (root / "ensemble.toml").write_text((root / "ensemble.toml").read_text().replace("valid.csv", "valid.tsv"))
    monkeypatch.chdir(root)
    run = _cli("run")
    assert run.exit_code == 1 and 'set quoting = "none" in [data] of' in run.stderr and "--quoting" not in run.stderr


def test_errors_in_runs_name_the_key_of_the_entry(runs, tmp_path, monkeypatch):
    from ensemble.averaging.build import average_checkpoints

    with pytest.raises(EnsembleError, match=r"pass metric=NAME with one of them"):
        average_checkpoints(runs.tok, metric="acuracy", out=tmp_path / "a")
    shutil.copytree(runs.tok, tmp_path / "runs" / "tok")
    monkeypatch.chdir(tmp_path)
    for entry, expected in (('{ path = "runs/tok", metric = "acuracy" }', 'set metric = "NAME" in its [runs] entry of'),
                            ('{ path = "runs/tok", k = 50 }', "set k = 6 in its [runs] entry of")):
        (tmp_path / "ensemble.toml").write_text(f'[data]\nvalid = "v.csv"\ntest = "t.csv"\n\n[runs]\ntok = {entry}\n')
        pd.DataFrame({"id": [1], "text": ["x"], "label": ["none"]}).to_csv(tmp_path / "v.csv", index=False)
        pd.DataFrame({"id": [1], "text": ["x"]}).to_csv(tmp_path / "t.csv", index=False)
        result = _cli("run")
        assert result.exit_code == 1 and expected in result.stderr and "--" not in result.stderr.split(": ", 1)[1], \
            result.stderr


def test_the_projects_adjust_default_does_not_break_fixed_weights_or_a_weights_file(project, tmp_path, monkeypatch):
    root = _copy(project, tmp_path)
    monkeypatch.chdir(root)
    fixed = _cli("vote", "--weights", "0.7,0.3")
    assert fixed.exit_code == 0, fixed.output
    assert "[vote] adjust = 'auto' is the project's default for fitted weights; fixed weights are used as they are" \
        in fixed.stdout
    fitted = _cli("vote", "--weights", "optimize")
    assert fitted.exit_code == 0, fitted.output
    weights_file = next((root / "weights").glob("ensemble-optimize*.json"))
    again = _cli("vote", "--weights", weights_file)
    assert again.exit_code == 0, again.output


def test_a_model_given_by_flag_in_a_project_is_told_the_command_that_predicts_it(project, tmp_path, monkeypatch):
    root = _copy(project, tmp_path)
    shutil.copytree(root / "bert", root / "fresh")
    cfg = json.loads((root / "fresh" / "config.json").read_text())
    (root / "fresh" / "config.json").write_text(json.dumps({**cfg, "finetuned_on": "another seed"}))  # another digest
    monkeypatch.chdir(root)
    result = _cli("vote", "--model", f"fresh={root / 'fresh'}", "--model", f"bert={root / 'bert'}", "--weights", "uniform")
    assert result.exit_code == 1 and f"run ensemble predict --model fresh={root / 'fresh'}" in result.stderr
    assert "not a member of" in result.stderr


def test_the_notebook_beside_the_cli_never_overwrites_another_procedures_submission(project, tmp_path, monkeypatch):
    from ensemble.workflows.vote import vote

    root = _copy(project, tmp_path)
    monkeypatch.chdir(root)
    cli = _cli("vote", "--weights", "uniform")  # the project's adjust = "auto"
    assert cli.exit_code == 0, cli.output
    first = Path(cli.stdout.strip().splitlines()[-1])
    before = first.read_bytes()
    members = {"bert": root / "bert", "early": root / "early"}
    data = {"valid": root / "valid.csv", "test": root / "test.csv"}
    frame = vote(members, data, "uniform", cache_dir=root / ".ensemble" / "cache")  # the API reads no ensemble.toml
    assert Path(frame.attrs["path"]) != first and first.read_bytes() == before
    assert Path(frame.attrs["path"]).name == first.stem + "-2.csv"
    again = vote(members, data, "uniform", cache_dir=root / ".ensemble" / "cache")  # the same procedure: the same file
    assert again.attrs["path"] == frame.attrs["path"]
    with pytest.raises(EnsembleError, match=r"holds the submission of another procedure \(adjust 'auto' then, 'none' "
                                            r"now\); pass force=True"):
        vote(members, data, "uniform", cache_dir=root / ".ensemble" / "cache", out=first)
    vote(members, data, "uniform", cache_dir=root / ".ensemble" / "cache", out=first, force=True)
    assert first.read_bytes() != before or True  # replaced on request (its bytes may coincide)
    assert json.loads(Path(str(first) + ".json").read_text())["procedure"]["adjust"] == "none"


def test_what_is_printed_says_what_happened(project, tmp_path, monkeypatch):
    from ensemble.workflows.report import report

    root = _copy(project, tmp_path)
    monkeypatch.chdir(root)
    uniform = _cli("vote", "--weights", "uniform", "--adjust", "none")
    assert uniform.exit_code == 0 and "nothing was fitted on those rows" in uniform.stdout
    assert "in-sample (fitted on the same rows)" not in uniform.stdout
    fitted = _cli("vote", "--weights", "optimize", "--adjust", "none")
    assert "in-sample (fitted on the same rows): optimistic" in fitted.stdout
    rep = report({"bert": root / "bert", "early": root / "early"}, {"valid": root / "valid.csv"},
                 cache_dir=root / ".ensemble" / "cache", adjust="fit")
    text = rep.to_text()
    assert repr(rep) == text  # a REPL shows the table, as the README promises
    assert "report.html" not in text and " 1 rows" not in text
    assert "scores" in text and "on the validation rows (apparent)" in text
    assert not [ln for ln in text.splitlines() if "gains -" in ln]
    page = rep.to_html(figures=False)
    assert "gain_low" not in page and "mcnemar_p" not in page and "McNemar p" in page
    assert page.index("<h3>Notes</h3>") < page.index("Winner's curse") if "<h3>Notes</h3>" in page else True
    help_text = _cli("vote", "--help").stdout
    assert "best<K>" in help_text and "best3" in help_text
    assert "--out demo/weights/bert-a-top3" in _cli("example", "--help").stdout
