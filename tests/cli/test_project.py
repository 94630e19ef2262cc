"""ensemble.toml: parsing and its errors, commands with no other argument, and ensemble run."""

from __future__ import annotations

import shutil
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble.cli.main import main
from ensemble.cli.project import find_project, load_project
from ensemble.core.errors import EnsembleError


def test_project_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "ensemble.toml").write_text(
        '[data]\nvalid = "data/valid.csv"\ntest = "data/test.csv"\ntext = ["s1", "s2"]\n\n'
        '[models]\na = "weights/a"\nb = { path = "/abs/b", trained_on_valid = true }\n\n'
        '[runs]\nr = { path = "runs/r", k = 2, tokenizer = "base" }\n', encoding="utf-8")
    assert find_project(tmp_path / "sub") == tmp_path / "ensemble.toml"
    p = load_project(tmp_path / "ensemble.toml")
    assert p.data["valid"] == tmp_path / "data" / "valid.csv" and p.columns["text"] == ["s1", "s2"]
    assert p.models["b"].path.as_posix() == "/abs/b" and p.trained_on_valid == ["b"]
    assert p.model_paths() == {"r": tmp_path / "weights" / "r-top2", "a": tmp_path / "weights" / "a",
                               "b": p.models["b"].path}
    assert p.runs["r"].tokenizer == tmp_path / "base" and p.cache_dir == tmp_path / ".ensemble" / "cache"


def test_summarization_settings_of_the_project_reach_its_splits(tmp_path):
    """[generate] and rouge_tokenizer travel with the data to every split a command reads."""
    (tmp_path / "ensemble.toml").write_text(
        '[data]\ntask = "summarization"\nvalid = "v.csv"\nrouge_tokenizer = "whitespace"\n'
        '[generate]\nnum_beams = 4\nprompt = "S: {text}"\n', encoding="utf-8")
    p = load_project(tmp_path / "ensemble.toml")
    assert p.columns["generate"] == {"num_beams": 4, "prompt": "S: {text}"}
    assert p.columns["rouge_tokenizer"] == "whitespace" and p.task == "summarization"


@pytest.mark.parametrize("text, message", [
    ('[data]\nvalid = "v.csv"\nvaild = "x"\n', r"ensemble.toml:3: \[data\] vaild: unknown key; expected one of"),
    ('[data]\nvalid = 3\n', r"ensemble.toml:2: \[data\] valid: must be a path \(a string\), got 3"),
    ('[models]\n\na = { path = "x", trained_on_valid = "yes" }\n',
     r"ensemble.toml:3: \[models\] a: trained_on_valid must be true or false"),
    ('[models]\na = { trained_on_valid = true }\n', r"ensemble.toml:2: \[models\] a: needs a path"),
    ('[runs]\nr = { path = "x", k = 0 }\n', r"ensemble.toml:2: \[runs\] r: k must be a positive integer"),
    ('[model]\na = "x"\n', r"ensemble.toml:1: unknown table \[model\]"),
    ('[data\nvalid = "x"\n', r"ensemble.toml: not valid TOML \(.*line 1"),
    ('[data]\ntest = "t.csv"\nfolds = "f.csv"\n', r"ensemble.toml:3: \[data\] folds: splits the training file: add train"),
    ('[models]\na = "a-fold{fold}"\nb = { path = "b", refit_of = "c" }\n',
     r"ensemble.toml:3: \[models\] b: refit_of must name a fold group of \[models\] or \[runs\]; got 'c'"),
    ('[models]\na = ["a0"]\n', r"ensemble.toml:2: \[models\] a: a list is a fold group's model folders"),
    ('[runs]\nr = { path = "r", refit_of = 3 }\n', r"ensemble.toml:2: \[runs\] r: refit_of must name a fold group"),
    ('[generate]\nnum_beams = 0\n', r"ensemble.toml:2: \[generate\] num_beams: num_beams must be an integer >= 1"),
    ('[generate]\nbeams = 2\n', r"ensemble.toml:2: \[generate\] beams: unknown key; expected one of do_sample"),
    ('[data]\nrouge_tokenizer = "bpe"\n', r"ensemble.toml:2: \[data\] rouge_tokenizer: must be one of morphemes"),
])
def test_project_errors_name_the_line_and_key(tmp_path, text, message):
    (tmp_path / "ensemble.toml").write_text(text, encoding="utf-8")
    with pytest.raises(EnsembleError, match=message):
        load_project(tmp_path / "ensemble.toml")


@pytest.fixture
def project(runs, tmp_path):
    """A project over the fixtures: two Trainer runs to average (one without tokenizer files)
    and one checkpoint as a ready model."""
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    for name in ("tok", "notok"):
        shutil.copytree(getattr(runs, name), root / "runs" / name)
    shutil.copytree(runs.base, root / "base")
    shutil.copytree(runs.tok / "checkpoint-9", root / "ckpt9")
    ids = [f"v{i}" for i in range(len(runs.valid_texts))]
    pd.DataFrame({"id": ids, "text": runs.valid_texts, "label": runs.valid_labels}).to_csv(root / "data" / "valid.csv", index=False)
    pd.DataFrame({"id": [f"t{i}" for i in range(20)], "text": runs.valid_texts[:20]}).to_csv(root / "data" / "test.csv", index=False)
    pd.DataFrame({"id": [f"t{i}" for i in range(20)][::-1], "label": ["none"] * 20}).to_csv(
        root / "data" / "sample_submission.csv", index=False)
    (root / "ensemble.toml").write_text(
        '[data]\nvalid = "data/valid.csv"\ntest = "data/test.csv"\nsample_submission = "data/sample_submission.csv"\n'
        'label = "label"\n\n[runs]\ntok = { path = "runs/tok", k = 3 }\n'
        'notok = { path = "runs/notok", k = 2, tokenizer = "base" }\n\n[models]\nckpt9 = "ckpt9"\n\n'
        '[vote]\nweights = "acc"\n', encoding="utf-8")
    return root


def test_run_then_everything_cached_and_commands_without_arguments(project, monkeypatch):
    from ensemble.workflows.vote import vote

    monkeypatch.chdir(project)
    t0 = time.perf_counter()
    first = CliRunner().invoke(main, ["run"])
    t_first = time.perf_counter() - t0
    assert first.exit_code == 0, first.output
    submission = project / "submissions" / "ensemble-acc.csv"
    assert first.stdout.strip().splitlines()[-1] == str(submission)
    assert "predict: 6 computed" in first.stdout and (project / "report.html").is_file()

    from ensemble.tasks.classification import procedure

    estimated = []  # nothing may be cross-validated again: every estimate is stored, every step up to date
    with monkeypatch.context() as m:
        m.setattr(procedure.Procedure, "out_of_fold", lambda *a, **k: estimated.append(1))
        t0 = time.perf_counter()
        second = CliRunner().invoke(main, ["run"])
        t_second = time.perf_counter() - t0
    assert second.exit_code == 0, second.output
    for line in ("average tok: up to date", "average notok: up to date", "predict: all 6 (model, split) logits up to date",
                 "vote: up to date", "report: up to date"):
        assert line in second.stdout
    assert estimated == []
    assert t_second < min(2.0, t_first / 2), (t_first, t_second)

    # the submission equals the vote API's, with the same members and data
    members = {"tok": project / "weights" / "tok-top3", "notok": project / "weights" / "notok-top2",
               "ckpt9": project / "ckpt9"}
    frame = vote(members, {"valid": project / "data" / "valid.csv", "test": project / "data" / "test.csv"}, "acc",
                 cache_dir=project / ".ensemble" / "cache", sample_submission=project / "data" / "sample_submission.csv",
                 out=project / "api.csv", columns={"label": "label", "label_if_present": True})
    written = pd.read_csv(submission, dtype=str)
    assert written.equals(frame.astype(str).reset_index(drop=True))
    assert written["id"].tolist() == [f"t{i}" for i in range(20)][::-1]  # the sample's order

    # predict, vote and report read ensemble.toml with no other argument
    assert "0 computed, 6 from the cache" in CliRunner().invoke(main, ["predict"]).stdout
    voted = CliRunner().invoke(main, ["vote"])
    assert voted.exit_code == 0 and "Weights(method='acc'" in voted.stdout
    rep = CliRunner().invoke(main, ["report", "--methods", "acc", "--repeats", "1"])
    assert rep.exit_code == 0 and "auto -> " in rep.stdout

    # a changed member is redone, and only it
    toml = project / "ensemble.toml"
    toml.write_text(toml.read_text().replace("k = 2", "k = 3"))
    third = CliRunner().invoke(main, ["run"])
    assert third.exit_code == 0, third.output
    assert "average tok: up to date" in third.stdout and "average notok: up to date" not in third.stdout
    assert (project / "weights" / "notok-top3" / "model.safetensors").is_file()
    assert "predict: 2 computed, 4 up to date" in third.stdout and "vote: up to date" not in third.stdout


def test_no_project_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 1 and "no ensemble.toml here or in a parent folder" in result.stderr
    result = CliRunner().invoke(main, ["vote"])
    assert result.exit_code == 1 and "no model given; pass --model NAME=PATH" in result.stderr and "ensemble init" in result.stderr


def test_init_writes_a_project_from_what_it_finds(project):
    (project / "ensemble.toml").unlink()
    result = CliRunner().invoke(main, ["init", str(project)])
    assert result.exit_code == 0, result.output
    p = load_project(project / "ensemble.toml")
    assert p.data == {"valid": project / "data" / "valid.csv", "test": project / "data" / "test.csv"}
    assert p.sample_submission == project / "data" / "sample_submission.csv"
    assert set(p.runs) == {"tok", "notok"} and p.models["ckpt9"].path == project / "ckpt9"
    text = (project / "ensemble.toml").read_text()
    assert "columns: id, text, label" in text
    # the one base model folder here gives the run without tokenizer files its tokenizer
    assert ('notok = { path = "runs/notok", k = 4, tokenizer = "base" }   # head: single-label classification; no '
            "tokenizer files in the run: the base model folder base's") in text
    assert load_project(project / "ensemble.toml").runs["notok"].tokenizer == project / "base"
    assert 'tok = { path = "runs/tok", k = 4 }   # head: single-label classification\n' in text
    again = CliRunner().invoke(main, ["init", str(project)])
    assert again.exit_code == 1 and "already exists; edit it, or pass --force" in again.stderr


@pytest.mark.parametrize("command", [["avg-ckpt"], ["predict"], ["vote"], ["report"], ["run"], ["init"], ["example"], ["sweep", "ls"],
                                     ["cache", "ls"], ["cache", "prune"]])
def test_every_command_has_help_with_an_example_and_quiet_verbose(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout and "--quiet" in result.stdout and "--verbose" in result.stdout
    usage = CliRunner().invoke(main, [*command, "--no-such-option"])
    assert usage.exit_code == 2  # usage errors are click's exit code 2


def test_run_trusts_content_and_survives_a_copy_of_the_project(project, tmp_path, monkeypatch):
    """Up to date means the recorded digests match, not that files exist; a copied project
    re-averages nothing and recomputes no logit, while a real change is still redone."""
    monkeypatch.chdir(project)
    first = CliRunner().invoke(main, ["run", "-q"])
    assert first.exit_code == 0, first.output
    submission = project / "submissions" / "ensemble-acc.csv"
    good = submission.read_text()
    # another command replaced the submission: the next run writes it again
    submission.write_text(good.replace("none", "hate", 1))
    (project / "report.html").write_text("<html>edited</html>")
    again = CliRunner().invoke(main, ["run"])
    assert again.exit_code == 0, again.output
    assert "vote: up to date" not in again.stdout and "report: up to date" not in again.stdout
    assert submission.read_text() == good and "edited" not in (project / "report.html").read_text()

    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(project, copy)
    monkeypatch.chdir(copy)
    moved = CliRunner().invoke(main, ["run"])
    assert moved.exit_code == 0, moved.output
    for line in ("average tok: up to date", "average notok: up to date",
                 "predict: all 6 (model, split) logits up to date", "vote: up to date", "report: up to date"):
        assert line in moved.stdout, moved.stdout
    assert moved.stdout.strip().splitlines()[-1] == str(copy / "submissions" / "ensemble-acc.csv")
    # a forced re-average of the same checkpoints writes the same bytes: still a cache hit
    CliRunner().invoke(main, ["avg-ckpt", "runs/tok", "--k", "3", "--out", "weights/tok-top3", "--force", "-q"])
    assert "predict: all 6 (model, split) logits up to date" in CliRunner().invoke(main, ["run"]).stdout
    # a real change is a miss: one checkpoint's weights changed in place
    from ensemble.averaging.checkpoints import rank_run

    best = rank_run(copy / "runs" / "tok").top(1)[0].path
    data = bytearray((best / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (best / "model.safetensors").write_bytes(bytes(data))
    changed = CliRunner().invoke(main, ["run"])
    assert changed.exit_code == 0, changed.output
    assert "average tok: up to date" not in changed.stdout and "predict: 2 computed, 4 up to date" in changed.stdout


def test_init_on_korean_tsv_files_writes_a_project_that_runs(runs, tmp_path, monkeypatch):
    """TSV files where only the test file has an id column, a Trainer run and its untrained base
    model: init writes only the columns every file has, leaves the base model out (saying why),
    and `ensemble run` then works; vote and report warn about a member at chance level."""
    root = tmp_path / "kor"
    (root / "data").mkdir(parents=True)
    shutil.copytree(runs.tok, root / "runs" / "tok")
    shutil.copytree(runs.base, root / "base")
    texts, labels = runs.valid_texts, runs.valid_labels
    pd.DataFrame({"comments": texts, "hate": labels}).to_csv(root / "data" / "dev.tsv", sep="\t", index=False)
    pd.DataFrame({"id": [f"k{i}" for i in range(20)], "comments": texts[:20]}).to_csv(
        root / "data" / "test.tsv", sep="\t", index=False)
    result = CliRunner().invoke(main, ["init", str(root)])
    assert result.exit_code == 0, result.output
    text = (root / "ensemble.toml").read_text()
    p = load_project(root / "ensemble.toml")
    assert "id" not in p.columns and p.columns["text"] == ["comments"] and p.columns["label"] == "hate"
    assert "# id = \"id\"   # only test has an id column" in text
    assert '# base = "base"   # left out: no trainer_state.json, training_args.bin or ensemble_manifest.json' in text
    assert list(p.models) == [] and list(p.runs) == ["tok"]
    monkeypatch.chdir(root)
    ran = CliRunner().invoke(main, ["run"])
    assert ran.exit_code == 0, ran.output
    sub = pd.read_csv(ran.stdout.strip().splitlines()[-1], dtype=str)
    assert sub.columns.tolist() == ["id", "hate"] and sub["id"].tolist() == [f"k{i}" for i in range(20)]

    # the base model, listed anyway, is at chance level: vote and report say so
    (root / "ensemble.toml").write_text(text.replace('# base = "base"', 'base = "base"'), encoding="utf-8")
    CliRunner().invoke(main, ["predict", "-q"])
    voted = CliRunner().invoke(main, ["vote", "--weights", "uniform"])
    assert voted.exit_code == 0, voted.output
    assert "warning: base: scores at chance level on validation" in voted.stderr
    rep = CliRunner().invoke(main, ["report", "--methods", "acc", "--repeats", "1", "--json"])
    assert "warning: base: scores at chance level" in rep.stderr


def test_project_errors_name_the_command_or_key_that_fixes_them(project, monkeypatch):
    """In a project, a missing cache names the command that computes every member (not one
    member's predict line), and `ensemble run` names a key of ensemble.toml, never a flag it lacks."""
    monkeypatch.chdir(project)
    voted = CliRunner().invoke(main, ["vote"])
    assert voted.exit_code == 1
    assert voted.stderr == (f"error: {project / 'weights' / 'tok-top3'}: [runs] tok of {project / 'ensemble.toml'} is "
                            "not averaged yet; run ensemble run (it averages every run, then predicts, votes and "
                            "reports)\n")
    assert CliRunner().invoke(main, ["run", "-q"]).exit_code == 0
    shutil.rmtree(project / ".ensemble" / "cache")
    voted = CliRunner().invoke(main, ["vote"])
    assert voted.exit_code == 1
    assert (f"run ensemble predict (it reads {project / 'ensemble.toml'} and computes what is missing) or "
            "ensemble run") in voted.stderr and "--model" not in voted.stderr
    toml = project / "ensemble.toml"
    toml.write_text(toml.read_text().replace('label = "label"', 'label = "label"\ntext = "comment"'))
    ran = CliRunner().invoke(main, ["run"])
    assert ran.exit_code == 1
    assert (f"no text column 'comment' (columns: id, text, label); set text = \"COLUMN\" in [data] of "
            f"{toml} with one of them") in ran.stderr
    assert "--text" not in ran.stderr
    # the library names the keyword argument
    from ensemble.data.splits import load_split

    with pytest.raises(EnsembleError, match=r"pass text=COLUMN with one of them"):
        load_split(project / "data" / "valid.csv", text="comment")


def test_run_redoes_the_vote_and_report_when_labels_or_the_weights_file_change(project, monkeypatch):
    """Up to date means every input unchanged: the validation labels (not only ids and texts) and
    the content of the weights file that [vote] weights names."""
    monkeypatch.chdir(project)
    assert CliRunner().invoke(main, ["run", "-q"]).exit_code == 0
    valid = project / "data" / "valid.csv"
    frame = pd.read_csv(valid)
    frame.loc[0, "label"] = next(c for c in frame["label"].unique() if c != frame.loc[0, "label"])
    frame.to_csv(valid, index=False)
    again = CliRunner().invoke(main, ["run"])
    assert again.exit_code == 0, again.output
    assert "predict: all 6 (model, split) logits up to date" in again.stdout  # labels do not change logits
    assert "vote: up to date" not in again.stdout and "report: up to date" not in again.stdout

    toml = project / "ensemble.toml"
    toml.write_text(toml.read_text().replace('weights = "acc"', 'weights = "weights/ensemble-acc.json"'))
    assert CliRunner().invoke(main, ["run", "-q"]).exit_code == 0
    assert "vote: up to date" in CliRunner().invoke(main, ["run"]).stdout
    # another file at that path (refitted with other weights): the vote is redone
    from ensemble.workflows.vote import vote

    members = {"tok": project / "weights" / "tok-top3", "notok": project / "weights" / "notok-top2",
               "ckpt9": project / "ckpt9"}
    vote(members, {"valid": valid, "test": project / "data" / "test.csv"}, "optimize",
         cache_dir=project / ".ensemble" / "cache", out=project / "other.csv", weights_dir=project / "w2",
         columns={"label": "label", "label_if_present": True})
    (project / "w2" / "ensemble-optimize.json").replace(project / "weights" / "ensemble-acc.json")
    third = CliRunner().invoke(main, ["run"])
    assert third.exit_code == 0, third.output
    assert "vote: up to date" not in third.stdout


def test_the_project_file_is_checked_whole_before_any_work(project, monkeypatch):
    """A bad [vote] combine or weights is reported with the file and line at once, before any
    average or prediction, not after minutes of work."""
    monkeypatch.chdir(project)
    toml = project / "ensemble.toml"
    good = toml.read_text()
    toml.write_text(good.replace('weights = "acc"', 'weights = "acc"\ncombine = "median"'))
    ran = CliRunner().invoke(main, ["run"])
    assert ran.exit_code == 1 and not (project / "weights").exists()
    line = toml.read_text().splitlines().index('combine = "median"') + 1
    assert ran.stderr == (f"error: {toml}:{line}: [vote] combine: must be one of prob, logit, geometric, vote, rank, "
                          "got 'median'\n")
    toml.write_text(good.replace('weights = "acc"', 'weights = "acc,uniform"'))
    ran = CliRunner().invoke(main, ["run"])
    assert ran.exit_code == 1 and "[vote] weights: must be auto, one of uniform" in ran.stderr
    # the task's own check of the vote's options, before any average: a metric of another task, a
    # rank average for a metric that is not ROC AUC
    for extra, said in (('metric = "pearson"', "a classifiers' ensemble is decided by one of accuracy"),
                        ('combine = "rank"', "averages the members' orders of the rows")):
        toml.write_text(good.replace('weights = "acc"', f'weights = "acc"\n{extra}'))
        ran = CliRunner().invoke(main, ["run"])
        assert ran.exit_code == 1 and not (project / "weights").exists(), ran.output
        assert ran.stderr.startswith(f"error: {toml}: [vote]: ") and said in ran.stderr and ran.stderr.count("\n") == 1
    # what run will vote with: the --weights given, not the file's [vote] weights (a weights file keeps
    # the adjustment it was fitted with)
    toml.write_text(good.replace('weights = "acc"', 'weights = "acc"\nadjust = "fit"'))
    ran = CliRunner().invoke(main, ["run", "--weights", "old/ensemble-acc.json"])
    assert ran.exit_code == 1 and not (project / "weights").exists(), ran.output
    assert ran.stderr.startswith(f"error: {toml}: [vote]: old/ensemble-acc.json: a weights file keeps the adjustment")


def test_a_project_adjustment_with_a_weights_file_names_both_fixes(project, monkeypatch):
    """adjust = "auto" in ensemble.toml and vote --weights FILE: the user passed no --adjust, so the
    project's default for fitted weights does not apply (said in the log) and the file is used as
    it is; an --adjust passed with a weights file is still refused, naming the flag."""
    monkeypatch.chdir(project)
    assert CliRunner().invoke(main, ["run", "-q"]).exit_code == 0
    toml = project / "ensemble.toml"
    toml.write_text(toml.read_text().replace('weights = "acc"', 'weights = "acc"\nadjust = "auto"'))
    voted = CliRunner().invoke(main, ["vote", "--weights", "weights/ensemble-acc.json"])
    assert voted.exit_code == 0, voted.output
    assert "is the project's default for fitted weights; a weights file's weights and adjustment are used" in voted.stdout
    refused = CliRunner().invoke(main, ["vote", "--weights", "weights/ensemble-acc.json", "--adjust", "fit"])
    assert refused.exit_code == 1
    assert "a weights file keeps the adjustment it was fitted with; pass --adjust none" in refused.stderr


def test_init_finds_dacon_and_ai_stages_id_columns_and_run_checks_the_sample_first(project, monkeypatch):
    """An id column named ID (Dacon) or fname (AI Stages) is found by init; a project whose test
    file's id column is not the one [data] names stops before any average or prediction, naming
    id = "..."; so does a [runs] entry whose checkpoints no task runs, naming its key, and runs of
    two tasks."""
    import json

    for name in ("valid", "test", "sample_submission"):
        path = project / "data" / f"{name}.csv"
        pd.read_csv(path).rename(columns={"id": "ID"}).to_csv(path, index=False)
    (project / "ensemble.toml").unlink()
    made = CliRunner().invoke(main, ["init", str(project)])
    assert made.exit_code == 0, made.output
    text = (project / "ensemble.toml").read_text()
    assert '\nid = "ID"\n' in text
    (project / "ensemble.toml").write_text(text.replace('\nid = "ID"\n', "\n"))
    monkeypatch.chdir(project)
    stopped = CliRunner().invoke(main, ["run"])
    assert stopped.exit_code == 1
    assert 'its ids (ID) are not the test file\'s (row numbers: no id column); set id = "ID" in [data]' in stopped.stderr
    assert not (project / "weights").exists() and not (project / ".ensemble" / "cache").exists()  # nothing ran
    (project / "ensemble.toml").write_text(text)
    assert "\n[runs]\n" in text
    for arch, says in (("BertForQuestionAnswering", "[runs] s2s: its checkpoints"),
                       ("BartForConditionalGeneration", "[runs] s2s is summarization and notok is classification")):
        seq2seq = project / "runs" / "s2s" / "checkpoint-5"
        seq2seq.mkdir(parents=True, exist_ok=True)
        (seq2seq / "config.json").write_text(json.dumps({"architectures": [arch], "model_type": arch[:4].lower()}))
        (project / "ensemble.toml").write_text(text.replace("\n[runs]\n",
                                                            '\n[runs]\ns2s = { path = "runs/s2s", k = 1 }\n'))
        refused = CliRunner().invoke(main, ["run"])
        assert refused.exit_code == 1 and says in refused.stderr, refused.output
        assert not (project / "weights").exists()
    assert "remove s2s from [runs]" not in refused.stderr


def test_the_id_hint_reads_the_test_files_columns_in_any_format(tmp_path):
    """The early id check names id = "..." for a TSV (or Parquet) test file as for a CSV."""
    from types import SimpleNamespace

    from ensemble.cli.run import _check_sample_ids
    from ensemble.data.splits import load_split

    (tmp_path / "test.tsv").write_text("ID\ttext\nt0\ta\nt1\tb\n", encoding="utf-8")
    (tmp_path / "sample.csv").write_text("ID,label\nt0,x\nt1,x\n", encoding="utf-8")
    test = load_split(tmp_path / "test.tsv", name="test")
    assert test.id_column is None  # no id column named id: rows are numbered
    project = SimpleNamespace(sample_submission=tmp_path / "sample.csv", path=tmp_path / "ensemble.toml")
    with pytest.raises(EnsembleError, match='set id = "ID" in \\[data\\]'):
        _check_sample_ids(project, test)
