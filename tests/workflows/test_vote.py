"""`ensemble vote` end to end from cached logits: alignment, weights files, submissions, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble.cli.main import main
from ensemble.inference.cache import OutputCache

from ..conftest import edit_config


def _permute_labels(folder, order):
    """Reorder a checkpoint's classes: head rows and id2label move together, predictions by
    class name stay the same."""
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    sd = load_file(str(path))
    for k in ("classifier.weight", "classifier.bias"):
        sd[k] = sd[k][list(order)].contiguous()
    save_file(sd, str(path), metadata={"format": "pt"})
    cfg = json.loads((folder / "config.json").read_text())
    labels = [cfg["id2label"][str(i)] for i in order]
    edit_config(folder, id2label={str(i): c for i, c in enumerate(labels)}, label2id={c: i for i, c in enumerate(labels)})


@pytest.fixture(scope="module")
def project(runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("vote")
    shutil.copytree(runs.tok / "checkpoint-18", root / "bert")
    shutil.copytree(runs.tok / "checkpoint-18", root / "perm")
    _permute_labels(root / "perm", [2, 0, 1])
    shutil.copytree(runs.tok / "checkpoint-9", root / "early")
    texts, labels = runs.valid_texts, runs.valid_labels
    pd.DataFrame({"id": [f"v{i}" for i in range(40)], "text": texts[:40], "label": labels[:40]}).to_csv(root / "valid.csv", index=False)
    pd.DataFrame({"id": [f"t{i}" for i in range(24)], "text": texts[40:]}).to_csv(root / "test.csv", index=False)
    cache = root / "cache"
    result = CliRunner().invoke(main, ["predict", "--model", f"bert={root / 'bert'}", "--model", f"perm={root / 'perm'}",
                                       "--model", f"early={root / 'early'}", "--data", f"valid={root / 'valid.csv'}",
                                       "--data", f"test={root / 'test.csv'}", "--cache-dir", str(cache), "-q"])
    assert result.exit_code == 0, result.output
    return root


def _vote(project, tmp_path, *args, models=("bert", "perm"), catch=False):
    argv = ["vote", *[x for m in models for x in ("--model", f"{m}={project / m}")],
            "--data", f"valid={project / 'valid.csv'}", "--data", f"test={project / 'test.csv'}",
            "--cache-dir", str(project / "cache"), *map(str, args)]
    cwd = Path(tempfile.mkdtemp(dir=tmp_path))
    here = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, argv, catch_exceptions=catch)
    finally:
        os.chdir(here)
    files = {str(p.relative_to(cwd)): p.read_text() for p in sorted(cwd.rglob("*")) if p.is_file()}
    return result, files


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_label_permuted_copy_votes_like_the_model_itself(project, tmp_path):
    result, files = _vote(project, tmp_path, "--proba")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "submissions/ensemble-uniform.csv"
    sub = pd.read_csv(pd.io.common.StringIO(files["submissions/ensemble-uniform.csv"]), dtype=str)
    entry = next(e for e in OutputCache(project / "cache").entries()
                 if e.metadata["model"] == "bert" and e.metadata["split"] == "test")
    bert = OutputCache(project / "cache").get(entry.key)
    p = _softmax(bert.values.astype(np.float64))
    assert sub["id"].tolist() == bert.ids.tolist()
    assert sub["label"].tolist() == [bert.labels[i] for i in p.argmax(1)]
    for j, c in enumerate(bert.labels):
        np.testing.assert_allclose(sub[c].astype(float), p[:, j], atol=1e-6)
    side = json.loads(files["submissions/ensemble-uniform.csv.json"])
    assert side["method"] == "uniform" and side["models"]["perm"]["cache_keys"]["test"]
    assert side["test"]["rows"] == 24 and len(side["test"]["data_digest"]) == 64


def test_weights_file_is_written_reused_and_checked(project, tmp_path):
    result, files = _vote(project, tmp_path, "--weights", "acc", models=("bert", "early"))
    assert result.exit_code == 0, result.output
    saved = json.loads(files["weights/ensemble-acc.json"])
    assert saved["method"] == "acc" and [m["name"] for m in saved["models"]] == ["bert", "early"]
    assert saved["meta"]["valid"]["rows"] == 40 and saved["apparent"]["accuracy"] > 0
    assert all(m["model_digest"] and m["cache_keys"]["valid"] for m in saved["models"])
    assert "Weights(method='acc'" in result.stdout and "in-sample" in result.stdout

    wfile = tmp_path / "acc.json"
    wfile.write_text(files["weights/ensemble-acc.json"])
    again, files2 = _vote(project, tmp_path, "--weights", wfile, models=("bert", "early"))
    assert again.exit_code == 0, again.output
    out = "submissions/ensemble-acc.csv"
    assert files2[out] == files[out]
    assert json.loads(files2[out + ".json"])["weights_file"] == str(wfile)

    wrong, _ = _vote(project, tmp_path, "--weights", wfile, models=("early", "bert"))
    assert wrong.exit_code == 1 and "weights are for models bert, early but early, bert are given" in wrong.stderr

    from ensemble.io.weightsfile import weights_checksum as _checksum

    def rewrite(doc):  # an old weights file: consistent, with its own checksum
        doc.pop("blake3", None)
        wfile.write_text(json.dumps({**doc, "blake3": _checksum(doc)}))

    stale = json.loads(wfile.read_text())
    stale["meta"]["valid"]["data_digest"] = "0" * 64
    rewrite(stale)
    bad, files3 = _vote(project, tmp_path, "--weights", wfile, models=("bert", "early"))
    assert bad.exit_code == 1 and "stale: the validation data" in bad.stderr and not files3
    stale["meta"]["valid"]["data_digest"] = saved["meta"]["valid"]["data_digest"]
    stale["models"][1]["model_digest"] = "f" * 64
    rewrite(stale)
    bad, _ = _vote(project, tmp_path, "--weights", wfile, models=("bert", "early"))
    assert bad.exit_code == 1 and "stale: model early" in bad.stderr


def test_sample_submission_order_and_integer_labels(project, tmp_path):
    sample = tmp_path / "sample.csv"
    ids = [f"t{i}" for i in range(24)][::-1]
    pd.DataFrame({"ID": ids, "target": [0] * 24}).to_csv(sample, index=False)
    # bert and perm number their classes differently: the indices must not follow whichever is listed first
    result, files = _vote(project, tmp_path, "--sample-submission", sample, "--weights", "optimize")
    assert result.exit_code == 1 and not files
    assert "holds class indices, but the members number their classes differently (bert: " in result.stderr
    assert "pass --class-order " in result.stderr
    order = "offensive,hate,none"
    subs = []
    for models in (("bert", "perm"), ("perm", "bert")):
        result, files = _vote(project, tmp_path, "--sample-submission", sample, "--class-order", order, models=models)
        assert result.exit_code == 0, result.output
        subs.append(pd.read_csv(pd.io.common.StringIO(files["submissions/ensemble-uniform.csv"]), dtype=str))
    sub = subs[0]
    assert list(sub.columns) == ["ID", "target"] and sub["ID"].tolist() == ids
    assert subs[0].equals(subs[1])  # the order of --model does not matter
    named, _ = _vote(project, tmp_path, "--proba", models=("bert", "perm"))
    by_name = pd.read_csv(pd.io.common.StringIO(_["submissions/ensemble-uniform.csv"]), dtype=str).set_index("id")
    assert [order.split(",")[int(i)] for i in sub["target"]] == by_name.loc[ids, "label"].tolist()
    # members that agree need no order: theirs is used
    agreed, files = _vote(project, tmp_path, "--sample-submission", sample, models=("bert", "early"))
    assert agreed.exit_code == 0, agreed.output
    named, files = _vote(project, tmp_path, "--out", "named.csv")
    assert named.exit_code == 0
    pd.DataFrame({"ID": ids[:-1] + ["x9"], "target": [0] * 24}).to_csv(sample, index=False)
    bad, files = _vote(project, tmp_path, "--sample-submission", sample)
    assert bad.exit_code == 1 and "id 'x9' is not in the test data" in bad.stderr and not files


@pytest.mark.parametrize("args, models, message", [
    (["--weights", "1,-1"], ("bert", "perm"), "weights must not be negative"),
    (["--weights", "nan,1"], ("bert", "perm"), "weights must be finite numbers"),
    (["--weights", "0,0"], ("bert", "perm"), "weights sum to zero"),
    (["--weights", "1"], ("bert", "perm"), "got 1 weights, 2 models (bert, perm)"),
    (["--weights", "bogus"], ("bert", "perm"), "--weights must be auto, one of uniform, acc, optimize, select, stack, "
                                                "best, score, best<K> (best3), a weights .json file or numbers "
                                                "w1,w2,...; got 'bogus'"),
    (["--weights", "acc", "--label", "text", "--text", "id"], ("bert", "perm"), "no cached logits"),
    (["--models", "bert,nope"], ("bert", "perm"), "--models: 'nope' is not a --model name"),
])
def test_bad_input_is_one_line_and_writes_nothing(project, tmp_path, args, models, message):
    result, files = _vote(project, tmp_path, *args, models=models)
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert message in result.stderr and "Traceback" not in result.output
    assert not files


def test_missing_cache_entry_names_the_predict_command(project, tmp_path):
    shutil.copytree(project / "bert", tmp_path / "fresh")
    with open(tmp_path / "fresh" / "model.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(np.float32(1.5).tobytes())
    argv = ["vote", "--model", f"bert={project / 'bert'}", "--model", f"fresh={tmp_path / 'fresh'}",
            "--data", f"test={project / 'test.csv'}", "--cache-dir", str(project / "cache")]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 1
    assert f"model fresh has no cached logits for {project / 'test.csv'}" in result.stderr
    assert f"run: ensemble predict --model fresh={tmp_path / 'fresh'} --data test={project / 'test.csv'}" in result.stderr


def test_unlabelled_validation_for_a_fitted_method(project, tmp_path):
    unlabelled = tmp_path / "valid.csv"
    pd.read_csv(project / "valid.csv").drop(columns="label").to_csv(unlabelled, index=False)
    argv = ["vote", "--model", f"bert={project / 'bert'}", "--data", f"valid={unlabelled}",
            "--data", f"test={project / 'test.csv'}", "--cache-dir", str(project / "cache"), "--weights", "acc"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 1
    # the unlabelled file has other content (no label column does not change ids and texts,
    # so the cached logits are found) and the error is about the labels
    assert ("no label column 'label' (columns: id, text); --weights acc is fitted on validation labels (or use "
            "--weights uniform): pass --label") in result.stderr


def test_vote_imports_neither_torch_nor_transformers(project, tmp_path):
    code = (
        "import sys\n"
        "from ensemble.cli import main\n"
        f"args = ['vote', '--model', 'bert={project / 'bert'}', '--model', 'perm={project / 'perm'}',"
        f" '--data', 'valid={project / 'valid.csv'}', '--data', 'test={project / 'test.csv'}',"
        f" '--cache-dir', '{project / 'cache'}', '--weights', 'optimize', '--out', '{tmp_path / 's.csv'}', '-q']\n"
        "try:\n    main(args)\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'accelerate', 'sklearn') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout and (tmp_path / "s.csv").is_file()


def test_adjust_prior_shifts_by_the_log_ratio_and_is_saved_with_the_weights(project, tmp_path):
    valid = pd.read_csv(project / "valid.csv")
    classes = sorted(valid["label"].unique())
    train = tmp_path / "train.csv"  # a training file with another class balance
    counts = {c: 5 + 10 * i for i, c in enumerate(classes)}
    pd.DataFrame({"text": [f"t{i}" for i in range(sum(counts.values()))],
                  "label": [c for c, n in counts.items() for _ in range(n)]}).to_csv(train, index=False)
    plain, files0 = _vote(project, tmp_path, "--weights", "acc", "--proba")
    assert plain.exit_code == 0, plain.output
    result, files = _vote(project, tmp_path, "--weights", "acc", "--adjust", "prior", "--prior", train, "--proba")
    assert result.exit_code == 0, result.output
    out = "submissions/ensemble-acc-prior.csv"
    sub0 = pd.read_csv(pd.io.common.StringIO(files0["submissions/ensemble-acc.csv"]))
    sub = pd.read_csv(pd.io.common.StringIO(files[out]))
    pi_t = np.array([counts[c] for c in classes], float) / sum(counts.values())
    pi_v = valid["label"].value_counts(normalize=True).reindex(classes).to_numpy()
    expect = _softmax(np.log(sub0[classes].to_numpy()) + np.log(pi_t) - np.log(pi_v))
    np.testing.assert_allclose(sub[classes].to_numpy(), expect, atol=1e-6)
    assert sub["label"].tolist() == [classes[i] for i in expect.argmax(1)]
    saved = json.loads(files["weights/ensemble-acc-prior.json"])
    assert saved["adjustment"]["kind"] == "prior"
    np.testing.assert_allclose(saved["adjustment"]["target_prior"], pi_t)
    assert json.loads(files[out + ".json"])["adjustment"]["kind"] == "prior"
    # the weights file carries its adjustment: reused, it gives the same submission
    wfile = tmp_path / "adj.json"
    wfile.write_text(files["weights/ensemble-acc-prior.json"])
    again, files2 = _vote(project, tmp_path, "--weights", wfile, "--proba", "--out", "sub.csv")
    assert again.exit_code == 0, again.output
    assert files2["sub.csv"] == files[out]
    refused, files3 = _vote(project, tmp_path, "--weights", wfile, "--adjust", "fit")
    assert refused.exit_code == 1 and "keeps the adjustment it was fitted with" in refused.stderr and not files3
    missing, files4 = _vote(project, tmp_path, "--weights", "acc", "--adjust", "prior")
    assert missing.exit_code == 1 and "adjust prior needs a target prior; pass --prior FILE" in missing.stderr and not files4
    assert len(missing.stderr.strip().splitlines()) == 1


def test_adjust_auto_records_its_estimate(project, tmp_path):
    result, files = _vote(project, tmp_path, "--weights", "uniform", "--adjust", "auto", "--adjust-metric", "macro_f1")
    assert result.exit_code == 0, result.output
    assert "adjust auto -> " in result.stdout
    side = json.loads(next(v for k, v in files.items() if k.endswith(".csv.json")))
    auto = side["adjust_auto"]
    assert auto["chosen"] in ("none", "fit") and set(auto["candidates"]) == {"fit"}
    lo, hi = auto["candidates"]["fit"]["interval"]["macro_f1"]
    assert (auto["chosen"] == "fit") == (lo > 0)


def test_label_flag_with_an_unlabelled_test_split(project, tmp_path):
    """--label names the validation labels; the test file has no label column, the normal case."""
    data = ["--data", f"valid={project / 'valid.csv'}", "--data", f"test={project / 'test.csv'}",
            "--cache-dir", str(project / "cache"), "--label", "label"]
    pred = CliRunner().invoke(main, ["predict", "--model", f"bert={project / 'bert'}", *data])
    assert pred.exit_code == 0, pred.output
    assert "no label column" not in pred.output
    result, files = _vote(project, tmp_path, "--weights", "acc", "--label", "label", models=("bert", "early"))
    assert result.exit_code == 0, result.output
    assert json.loads(files["weights/ensemble-acc.json"])["apparent"]["accuracy"] > 0
    # a label column that no file has is an error where labels are needed, naming the columns
    result, files = _vote(project, tmp_path, "--weights", "acc", "--label", "gold", models=("bert", "early"))
    assert result.exit_code == 1 and not files
    assert result.stderr.strip() == (f"error: {project / 'valid.csv'}: no label column 'gold' (columns: id, text, "
                                     "label); --weights acc is fitted on validation labels (or use --weights uniform): "
                                     "pass --label COLUMN with the column of true labels")


def test_gather_returns_what_vote_fits_on(project):
    """ensemble.gather: the members' aligned validation logits and y, as vote reads them; the
    label-permuted copy comes back in the first member's class order."""
    from ensemble import fit_weights, gather

    al = gather({"bert": project / "bert", "perm": project / "perm"}, {"valid": project / "valid.csv"},
                cache_dir=project / "cache")
    assert al.models == ("bert", "perm") and len(al.y) == 40 and al.ids[0] == "v0"
    np.testing.assert_allclose(al.arrays[0], al.arrays[1], atol=1e-5)
    labels = pd.read_csv(project / "valid.csv")["label"].tolist()
    assert [al.labels[i] for i in al.y] == labels
    w = fit_weights(al.logits, al.y, "acc")
    assert w.weights == pytest.approx([0.5, 0.5]) and w.labels == al.labels


def test_a_class_missing_from_validation_is_left_alone_and_said(project, tmp_path):
    """With no validation row of one class, --adjust prior used to fit a huge offset for it and send
    every test row there: now its offset is 0, a warning names it, and the test predictions are
    not all that class."""
    valid = pd.read_csv(project / "valid.csv")
    missing = valid["label"].value_counts().index[-1]  # the rarest class
    other = valid["label"].value_counts().index[0]
    shifted = tmp_path / "valid.csv"
    valid.assign(label=valid["label"].replace(missing, other)).to_csv(shifted, index=False)  # same ids and texts
    argv = ["vote", "--model", f"bert={project / 'bert'}", "--model", f"early={project / 'early'}",
            "--data", f"valid={shifted}", "--data", f"test={project / 'test.csv'}", "--cache-dir", str(project / "cache"),
            "--weights", "acc", "--adjust", "prior", "--prior", str(project / "valid.csv"), "--proba",
            "--out", str(tmp_path / "sub.csv")]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    assert f"no validation row of class {missing}: fitted weights never see it" in result.stderr
    side = json.loads((tmp_path / "sub.csv.json").read_text())
    adj = side["adjustment"]
    offsets = dict(zip(adj["labels"], adj["offsets"]))
    assert offsets[missing] == 0.0 and all(abs(v) < 5 for v in offsets.values())
    sub = pd.read_csv(tmp_path / "sub.csv")
    assert (sub["label"] == missing).mean() < 0.9


def test_outputs_are_written_as_a_set_csv_first_sidecar_last(project, tmp_path, monkeypatch):
    """The CSV first, then the weights file, the sidecar last; when the sidecar cannot be written,
    the CSV and weights file this vote created are removed again."""
    import ensemble.workflows.submission as submission

    order = []
    real = submission.atomic_write

    def recording(path, write):
        order.append(Path(path).name)
        if Path(path).name.endswith(".csv.json"):
            raise OSError(28, "No space left on device", str(path))
        return real(path, write)

    import ensemble.tasks.classification.weighting as weighting

    monkeypatch.setattr(submission, "atomic_write", recording)
    saved = weighting.Weights.save

    def save(self, path):
        order.append(Path(path).name)
        return saved(self, path)

    monkeypatch.setattr(weighting.Weights, "save", save)
    result, files = _vote(project, tmp_path, "--weights", "acc", models=("bert", "early"))
    assert result.exit_code == 1 and "free some disk space" in result.stderr
    assert order == ["ensemble-acc.csv", "ensemble-acc.json", "ensemble-acc.csv.json"]
    assert files == {}  # nothing this vote created is left


def test_run_reports_a_sidecar_that_does_not_describe_its_submission(project, tmp_path, monkeypatch):
    """A kill between the CSV and its sidecar, or an edited sidecar: ensemble run says so and votes again."""
    import shutil as sh

    from ensemble.workflows.submission import sidecar_matches

    root = tmp_path / "p"
    root.mkdir()
    for name in ("bert", "early"):
        sh.copytree(project / name, root / name)
    for name in ("valid.csv", "test.csv"):
        sh.copy(project / name, root / name)
    sh.copytree(project / "cache", root / ".ensemble" / "cache")
    (root / "ensemble.toml").write_text('[data]\nvalid = "valid.csv"\ntest = "test.csv"\n\n[models]\nbert = "bert"\n'
                                        'early = "early"\n\n[vote]\nweights = "acc"\n', encoding="utf-8")
    monkeypatch.chdir(root)
    first = CliRunner().invoke(main, ["run", "-q"])
    assert first.exit_code == 0, first.output
    out = Path(first.stdout.strip().splitlines()[-1])
    assert sidecar_matches(out)
    side = out.with_name(out.name + ".json")
    doc = json.loads(side.read_text())
    side.write_text(json.dumps({**doc, "blake3": "0" * 64}))
    again = CliRunner().invoke(main, ["run"])
    assert again.exit_code == 0, again.output
    assert f"{side} does not describe {out}" in again.stderr and "vote: up to date" not in again.stdout
    assert sidecar_matches(out)


def test_members_resolved_once_are_what_vote_and_gather_take(project, tmp_path):
    """A Member is a name and a model folder; vote and gather take a list of them like a mapping."""
    from ensemble.core.errors import EnsembleError
    from ensemble.workflows.gather import gather
    from ensemble.workflows.members import Member, resolve_members
    from ensemble.workflows.vote import vote

    mapping = {"bert": project / "bert", "perm": project / "perm"}
    members = resolve_members(mapping)
    assert members == [Member("bert", project / "bert"), Member("perm", project / "perm")]
    assert resolve_members(members) == members
    data = {"valid": project / "valid.csv", "test": project / "test.csv"}
    kw = dict(cache_dir=project / "cache", weights_dir=tmp_path / "w")
    a = vote(mapping, data, "acc", out=tmp_path / "a.csv", **kw)
    b = vote(members, data, "acc", out=tmp_path / "b.csv", **kw)
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert a.attrs["weights"].models == b.attrs["weights"].models == ("bert", "perm")
    np.testing.assert_array_equal(gather(members, data, cache_dir=project / "cache").y,
                                  gather(mapping, data, cache_dir=project / "cache").y)
    with pytest.raises(EnsembleError, match="member name 'bert' is given twice"):
        resolve_members(members + [Member("bert", project / "early")])
    with pytest.raises(EnsembleError, match="member name '../x' must be letters"):
        resolve_members([Member("../x", project / "bert")])
