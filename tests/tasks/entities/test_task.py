"""The entities task as the workflows see it: registered and found by name and head, rows put in
the split's order, gold spans checked against the members' types, its weights file checked; and,
end to end on real token classifiers trained with ``Trainer``, ``ensemble predict``, ``vote`` and
``report`` from the command line, their figures against the notebook functions and seqeval."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from seqeval.metrics import f1_score as seqeval_f1

from ensemble.cli.main import main
from ensemble.core.errors import EnsembleError
from ensemble.core.outputs import Ragged
from ensemble.io.modelfiles import head_of
from ensemble.tasks import TASKS, task_for_head, task_named
from ensemble.tasks.entities.fitting import Fit
from ensemble.tasks.entities.spans import tags_from_spans
from ensemble.tasks.entities.task import ENTITIES, reorder_rows
from ensemble.tasks.entities.vote import entity_spans

from tests.tasks.test_contract import _TextSplit

TAGS = ("O", "B-LC", "I-LC", "B-PS", "I-PS")


def test_registered_and_found_by_name_and_head():
    assert TASKS["entities"] is ENTITIES and task_named("ner") is ENTITIES
    assert task_for_head(head_of({"architectures": ["BertForTokenClassification"], "model_type": "bert"})) is ENTITIES
    assert task_for_head(head_of({"architectures": ["BertForSequenceClassification"], "model_type": "bert"})) \
        is not ENTITIES


def test_rows_follow_the_split_and_a_missing_row_is_named():
    rng = np.random.default_rng(0)
    lengths = np.array([3, 0, 5, 2])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = rng.dirichlet(np.ones(5), size=offsets[-1])
    al = ENTITIES.align([Ragged(np.array(["a", "b", "c", "d"]), values, offsets, TAGS, "m")])
    moved = reorder_rows(al, ["c", "a", "d", "b"])
    np.testing.assert_array_equal(np.diff(moved.offsets), [5, 3, 2, 0])
    np.testing.assert_array_equal(moved.values[0][:5], values[3:8])
    np.testing.assert_array_equal(moved.values[0][5:8], values[0:3])
    with pytest.raises(EnsembleError, match="'e'"):
        reorder_rows(al, ["a", "b", "c", "e"])


def test_gold_types_must_be_the_members_and_the_truth_parses():
    split = _TextSplit(["seoul is big", "kim"], [[(0, 5, "LC")], [(0, 3, "OG")]])
    split.label_column = "entities"
    with pytest.raises(EnsembleError) as e:
        ENTITIES.check_labels(split, TAGS, "m0")
    assert "OG" in str(e.value) and "synthetic.csv" in str(e.value) and "\n" not in str(e.value)
    y = ENTITIES.truth(_TextSplit(["seoul is big"], [[(0, 5, "LC")]]), TAGS, "m0", None)
    assert y.spans == [[(0, 5, "LC")]] and list(y.offsets) == [0, 12]


def test_the_weights_file_round_trips_and_an_edit_is_refused(tmp_path):
    fit = Fit("optimize", np.array([0.5, 0.25]), {"LC": 0.9}, ("a", "b"), "f5", TAGS, {"f5": 0.7},
              {"models": {"a": {"model_digest": "x"}}})
    path = tmp_path / "w.json"
    fit.save(path)
    back = Fit.load(path)
    assert back.models == ("a", "b") and back.labels == TAGS and back.thresholds == {"LC": 0.9}
    np.testing.assert_array_equal(back.weights, fit.weights)
    doc = json.loads(path.read_text())
    doc["weights"] = [0.1, 0.9]
    path.write_text(json.dumps(doc))
    with pytest.raises(EnsembleError, match="checksum"):
        Fit.load(path)


# ---------------------------------------------------------------------- the command line, end to end


@pytest.fixture(scope="module")
def cli_run(taggers, tmp_path_factory):
    """The trained taggers' 60 held-out sentences: 40 labelled validation rows, 20 test rows;
    ``ensemble predict`` over both, then ``vote`` (uniform and auto) and ``report`` as a user
    types them."""
    root = tmp_path_factory.mktemp("entities-cli")
    ids = [f"klue-{i}" for i in range(len(taggers.texts))]
    ents = [json.dumps([list(s) for s in g], ensure_ascii=False) for g in taggers.gold]
    pd.DataFrame({"id": ids[:40], "text": taggers.texts[:40], "entities": ents[:40]}).to_csv(root / "valid.csv",
                                                                                            index=False)
    pd.DataFrame({"id": ids[40:], "text": taggers.texts[40:]}).to_csv(root / "test.csv", index=False)
    models = [f"--model={n}={p}" for n, p in taggers.members.items() if n != "pieces-reordered"]
    common = [*models, f"--data=valid={root / 'valid.csv'}", f"--data=test={root / 'test.csv'}",
              "--label=entities", f"--cache-dir={root / 'cache'}", "--batch-size=8"]
    runner = CliRunner()
    ran = {}
    with contextlib.chdir(root):  # submissions/ and weights/ are written here
        for name, args in (("predict", ["predict", *common, "--device=cpu"]),
                           ("uniform", ["vote", *common, "--weights=uniform", "--proba"]),
                           ("auto", ["vote", *common]),
                           ("optimize", ["vote", *common, "--weights=optimize"]),
                           ("report", ["report", *common, "--json", f"--html={root / 'report.html'}"])):
            ran[name] = runner.invoke(main, args, catch_exceptions=False)
            assert ran[name].exit_code == 0, (name, ran[name].output[-2000:].replace("\n", " | "))
    return root, ran, taggers


def test_the_cli_vote_writes_what_the_notebook_functions_decode(cli_run):
    """``ensemble vote --weights uniform`` writes each test row's spans as entity_spans decodes the
    members' cached outputs, and ``--proba`` their per-character mean beside it."""
    from ensemble.data.splits import load_split
    from ensemble.workflows.predict import predict_forward

    root, ran, taggers = cli_run
    written = pd.read_csv(root / "submissions" / "ensemble-uniform.csv")
    test = load_split(root / "test.csv")
    outputs = [predict_forward(taggers.members[n], test, "tokens", device="cpu", progress=False,
                               cache=root / "cache", name=n, batch_size=8) for n in ("chars", "pieces")]
    expected = entity_spans(outputs, taggers.texts[40:])
    assert written["id"].tolist() == list(test.ids)
    assert [[tuple(s) for s in json.loads(c)] for c in written["entities"]] == [list(map(tuple, e)) for e in expected]
    proba = pd.read_parquet(root / "submissions" / "ensemble-uniform.proba.parquet")
    assert len(proba) == sum(len(t) for t in taggers.texts[40:])
    assert proba["id"].iloc[0] == test.ids[0] and {"O", "B-PS", "I-PS"} <= set(proba.columns)
    sidecar = json.loads((root / "submissions" / "ensemble-uniform.csv.json").read_text())
    assert sidecar["task"] == "entities" and sidecar["proba"].endswith(".proba.parquet")


def test_the_cli_report_scores_members_as_seqeval_and_estimates_out_of_fold(cli_run):
    """Each member's entity F1 in the report equals seqeval's on its own argmax tags; the
    auto rule's headline figure is cross-validated, not its apparent score; the text output starts
    with the headline."""
    from ensemble.data.splits import load_split
    from ensemble.workflows.predict import predict_forward

    root, ran, taggers = cli_run
    rep = json.loads(ran["report"].stdout)
    valid = load_split(root / "valid.csv", label="entities")
    tags_of = {}
    for n in ("chars", "pieces"):
        out = predict_forward(taggers.members[n], valid, "tokens", device="cpu", progress=False, cache=root / "cache",
                              name=n, batch_size=8)
        spans = entity_spans([out], taggers.texts[:40])
        pred = [tags_from_spans(s, len(t)) for s, t in zip(spans, taggers.texts[:40])]
        true = [tags_from_spans(g, len(t)) for g, t in zip(taggers.gold[:40], taggers.texts[:40])]
        tags_of[n] = pred
        assert rep["members"][n]["f"] == pytest.approx(seqeval_f1(true, pred), abs=1e-12)
    head = rep["headline"]
    assert head["of"] == "cross-validated" and head["method"] in rep["estimates"]
    assert "submission: " in (root / "report.html").read_text()
    assert set(rep["estimates"]) >= {"uniform", "f1", "select", "optimize"}
    for e in rep["estimates"].values():
        assert e["interval"][0] <= e["cross_validated"] <= e["interval"][1]


def test_a_weights_file_fitted_on_other_labels_is_refused(cli_run, tmp_path):
    """The optimize vote's weights file is reused with the same members and data (its figures
    not estimated again), and refused in one line, nothing written, once the validation labels
    changed."""
    root, ran, taggers = cli_run
    weights = root / "weights" / "ensemble-optimize.json"
    models = [f"--model={n}={p}" for n, p in taggers.members.items() if n != "pieces-reordered"]

    def vote(valid, subs):
        return CliRunner().invoke(main, ["vote", *models, f"--data=valid={valid}", f"--data=test={root / 'test.csv'}",
                                         "--label=entities", f"--cache-dir={root / 'cache'}", "--batch-size=8", f"--weights={weights}",
                                         f"--out={subs / 'sub.csv'}"])

    same = vote(root / "valid.csv", tmp_path / "same")
    assert same.exit_code == 0, same.output[-1000:]
    assert pd.read_csv(tmp_path / "same" / "sub.csv").equals(
        pd.read_csv(root / "submissions" / "ensemble-optimize.csv"))
    valid = pd.read_csv(root / "valid.csv")
    valid.loc[0, "entities"] = "[]"
    valid.to_csv(tmp_path / "valid.csv", index=False)
    ran = vote(tmp_path / "valid.csv", tmp_path / "subs")
    assert ran.exit_code == 1 and "stale" in ran.output and str(weights) in ran.output
    assert not (tmp_path / "subs").exists()


# ---------------------------------------------------------------------- the vote's options, on synthetic members


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from tests.synthetic_members import make_task_members

    root = tmp_path_factory.mktemp("entities-synthetic")
    return make_task_members("entities", root, valid_rows=120, test_rows=30)


def _cached(models, data, cache_dir, split):
    from ensemble.workflows.gather import gather

    return gather(models, data, split=split, cache_dir=cache_dir, columns={"label": "entities"})


@pytest.mark.parametrize("weights,threshold", [("1,0,0", None), ("2,1,1", 0.9), ("uniform", "0.5")])
def test_fixed_weights_and_a_given_threshold_are_applied(synthetic, tmp_path, weights, threshold):
    """What the vote writes is entity_spans of the members' outputs with those weights and that O
    threshold, decoded on the test texts."""
    from ensemble import vote

    models, data, cache_dir, columns, _ = synthetic
    sub = vote(models, data, weights, columns=columns, cache_dir=cache_dir, threshold=threshold,
               out=tmp_path / "sub.csv", weights_dir=tmp_path / "w")
    al = _cached(models, data, cache_dir, "test")
    texts = pd.read_csv(data["test"])["text"].tolist()
    w = None if weights == "uniform" else [float(v) for v in weights.split(",")]
    expected = entity_spans(al.logits, texts, w, None if threshold is None else float(threshold))
    assert [[tuple(s) for s in json.loads(c)] for c in pd.read_csv(tmp_path / "sub.csv")["entities"]] == \
        [list(map(tuple, e)) for e in expected]
    assert sub.attrs["weights"].thresholds == (None if threshold is None else
                                               {"LC": float(threshold), "PS": float(threshold)})


def test_per_type_thresholds_are_fitted_and_estimated_inside_the_folds(synthetic, tmp_path):
    from ensemble import vote
    from ensemble.tasks.entities.fitting import GRID

    models, data, cache_dir, columns, _ = synthetic
    sub = vote(models, data, "optimize", columns=columns, cache_dir=cache_dir, threshold="per_label",
               out=tmp_path / "sub.csv", weights_dir=tmp_path / "w")
    fit = sub.attrs["weights"]
    assert set(fit.thresholds) <= {"LC", "PS"} and all(v in GRID for v in fit.thresholds.values())
    head = sub.attrs["headline"]
    assert head["of"] == "cross-validated" and head["low"] <= head["estimate"] <= head["high"]
    assert fit.apparent["f1"] >= head["estimate"] - 0.05  # the apparent figure is the fitted rows' own


@pytest.mark.parametrize("option,value", [("metric", "f1_micro"), ("threshold", "1.5"), ("combine", "logit"),
                                          ("adjust", "fit"), ("clip", True), ("acc_power", 2.0),
                                          ("adjust_metric", "macro_f1")])
def test_an_option_that_does_not_apply_is_refused_before_anything_is_written(synthetic, tmp_path, option, value):
    from ensemble import vote

    models, data, cache_dir, columns, _ = synthetic
    with pytest.raises(EnsembleError) as e:
        vote(models, data, "uniform", columns=columns, cache_dir=cache_dir, out=tmp_path / "sub.csv",
             **{option: value})
    assert option in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "sub.csv").exists()


@pytest.mark.parametrize("weights", ["stack", "best3"])
def test_a_rule_of_another_task_is_refused(synthetic, weights):
    from ensemble import vote

    models, data, cache_dir, columns, _ = synthetic
    with pytest.raises(EnsembleError, match=weights):
        vote(models, data, weights, columns=columns, cache_dir=cache_dir)


def test_f5_is_the_metric_fitted_and_reported(synthetic):
    """metric="f5" (PII Data Detection) is what the report estimates: its member figures are F5."""
    from ensemble import report
    from ensemble.tasks.entities.spans import entity_scores

    models, data, cache_dir, columns, _ = synthetic
    rep = report(models, data, columns=columns, cache_dir=cache_dir, metric="f5", methods=["acc"])
    al = _cached(models, data, cache_dir, "valid")
    texts = pd.read_csv(data["valid"])["text"].tolist()
    spans = entity_spans(al.logits[:1], texts)
    assert rep.members["m0"]["f"] == pytest.approx(entity_scores(al.y.spans, spans, beta=5.0)["f"])
    assert rep.headline["metric"] == "f5"


def test_ensemble_run_reads_a_project_of_entities_members(tmp_path):
    """``task = "entities"`` in the project file: ``ensemble run`` votes (auto), writes the
    submission and the report, whose headline names the file submitted."""
    from tests.synthetic_members import make_entity_members

    make_entity_members(tmp_path, valid_rows=60, test_rows=20, models=2)
    (tmp_path / "ensemble.toml").write_text('[data]\nvalid = "data/valid.csv"\ntest = "data/test.csv"\n'
                                            'label = "entities"\ntask = "entities"\n\n[models]\nm0 = "models/m0"\n'
                                            'm1 = "models/m1"\n')
    with contextlib.chdir(tmp_path):
        ran = CliRunner().invoke(main, ["run"], catch_exceptions=False)
    assert ran.exit_code == 0, ran.output[-2000:]
    latest = json.loads((tmp_path / "submissions" / "latest.json").read_text())
    written = pd.read_csv(tmp_path / "submissions" / latest["submission"])
    assert list(written.columns) == ["id", "entities"] and len(written) == 20
    page = (tmp_path / "report.html").read_text()
    assert f"submission submissions/{latest['submission']}: {latest['headline']['method']}, f1 " in page


# ---------------------------------------------------------------------- fold groups and refits


@pytest.fixture(scope="module")
def folded(tmp_path_factory):
    from tests.synthetic_members import make_entity_fold_members

    return make_entity_fold_members(tmp_path_factory.mktemp("entities-folds"))


def test_fold_groups_are_fitted_out_of_fold_and_refits_submitted(folded, tmp_path):
    """Weights fitted on the groups' out-of-fold training rows, estimated on the training folds
    (said so, with the refit's note); the test spans are those of the refit in its group's place,
    with the group's weight, and of the other group's fold mean."""
    from ensemble import vote
    from ensemble.workflows.gather import gather

    groups, refit, data, folds, cache = folded
    columns = {"label": "entities"}
    sub = vote({**groups, "full": refit}, data, "optimize", cache_dir=cache, columns=columns, folds=folds,
               refit={"full": "g0"}, out=tmp_path / "s.csv", weights_dir=tmp_path / "w")
    head, fit = sub.attrs["headline"], sub.attrs["weights"]
    assert head["of"] == "out-of-fold" and "refits (full for g0)" in head["note"] and "holdout" not in head["note"]
    assert fit.models == ("g0", "g1") and fit.meta["fitted_on"]["kind"] == "out-of-fold"
    test = gather({"full": refit, "g1": groups["g1"]}, data, split="test", cache_dir=cache, columns=columns,
                  folds=folds)
    texts = pd.read_csv(data["test"])["text"].tolist()
    expected = entity_spans(test.logits, texts, fit.weights)
    assert [[tuple(s) for s in json.loads(c)] for c in pd.read_csv(tmp_path / "s.csv")["entities"]] == \
        [list(map(tuple, e)) for e in expected]


def test_the_out_of_fold_estimate_uses_the_training_folds(folded):
    """The report's folds are the folds file's: its uniform figure equals the uniform spans'
    entity F1 over the out-of-fold rows (nothing fitted, so no fold changes it), and its headline
    says out of fold."""
    from ensemble import report
    from ensemble.tasks.entities.spans import entity_scores
    from ensemble.workflows.gather import gather

    groups, refit, data, folds, cache = folded
    columns = {"label": "entities"}
    rep = report(groups, data, cache_dir=cache, columns=columns, folds=folds, methods=["acc"])
    assert rep.headline["of"] == "out-of-fold"
    oof = gather(groups, data, split="train", cache_dir=cache, columns=columns, folds=folds)
    spans = entity_spans(oof.logits, pd.read_csv(data["train"])["text"].tolist())
    assert rep.estimates["uniform"].f == pytest.approx(entity_scores(oof.y.spans, spans)["f"])


def test_a_holdout_beside_fold_groups_is_refused_not_ignored(folded, tmp_path):
    from ensemble import report, vote

    groups, refit, data, folds, cache = folded
    beside = {**data, "valid": data["train"]}
    for call in (lambda: vote(groups, beside, "uniform", cache_dir=cache, columns={"label": "entities"}, folds=folds,
                              out=tmp_path / "s.csv"),
                 lambda: report(groups, beside, cache_dir=cache, columns={"label": "entities"}, folds=folds)):
        with pytest.raises(EnsembleError, match="holdout, which the entities task does not read yet"):
            call()
    assert not (tmp_path / "s.csv").exists()


# ---------------------------------------------------------------------- pre-split words from the command line


@pytest.fixture(scope="module")
def words_cli(taggers, tmp_path_factory):
    """The held-out sentences as pre-split words (JSONL lists, the PII Data Detection shape), each
    word tagged with its first character's tag: 40 labelled validation rows, 20 test rows;
    ``ensemble predict --words first``, a vote in PII's row format and a report."""
    from ensemble.tasks.entities.spans import normalise_tags

    root = tmp_path_factory.mktemp("entities-words")
    rows, tags = [], []
    for text, spans in zip(taggers.texts, taggers.gold):
        chars, at, row_tags = tags_from_spans(spans, len(text)), 0, []
        for w in text.split():
            at = text.index(w, at)
            row_tags.append(chars[at])
            at += len(w)
        rows.append(text.split())
        tags.append(normalise_tags(row_tags))
    ids = [f"d{i}" for i in range(len(rows))]
    pd.DataFrame({"id": ids[:40], "tokens": rows[:40], "labels": tags[:40]}).to_json(
        root / "valid.jsonl", orient="records", lines=True, force_ascii=False)
    pd.DataFrame({"id": ids[40:], "tokens": rows[40:]}).to_json(root / "test.jsonl", orient="records", lines=True,
                                                               force_ascii=False)
    pd.DataFrame({"row_id": [0], "document": [ids[40]], "token": [0], "label": ["B-PS"]}).to_csv(
        root / "sample.csv", index=False)
    models = [f"--model={n}={p}" for n, p in taggers.members.items() if n != "pieces-reordered"]
    common = [*models, f"--data=valid={root / 'valid.jsonl'}", f"--data=test={root / 'test.jsonl'}", "--text=tokens",
              "--label=labels", "--words=first", f"--cache-dir={root / 'cache'}", "--batch-size=8"]
    ran = {}
    with contextlib.chdir(root):
        for name, args in (("predict", ["predict", *common, "--device=cpu"]),
                           ("vote", ["vote", *common, "--weights=uniform", f"--sample-submission={root / 'sample.csv'}",
                                     f"--out={root / 'sub.csv'}"]),
                           ("report", ["report", *common, "--json"])):
            ran[name] = CliRunner().invoke(main, args, catch_exceptions=False)
            assert ran[name].exit_code == 0, (name, ran[name].output[-2000:].replace("\n", " | "))
    return root, ran, rows, tags


def test_words_from_the_cli_are_the_notebook_functions_per_word(taggers, words_cli):
    """``--words first``: the submission (a row per word in an entity, PII's format) is what
    entity_spans decodes from the members' per-word outputs; the report scores each member by
    seqeval on its word tags."""
    from ensemble.data.splits import load_split
    from ensemble.workflows.predict import predict_forward

    root, ran, rows, tags = words_cli
    test = load_split(root / "test.jsonl", text="tokens", words="first")
    outs = [predict_forward(taggers.members[n], test, "tokens", device="cpu", progress=False, cache=root / "cache",
                            name=n, batch_size=8) for n in ("chars", "pieces")]
    spans = entity_spans(outs, rows[40:])
    expected = [(d, k, t) for d, row, sp in zip(test.ids, rows[40:], spans)
                for k, t in enumerate(tags_from_spans(sp, len(row))) if t != "O"]
    written = pd.read_csv(root / "sub.csv")
    assert list(written.columns) == ["row_id", "document", "token", "label"]
    assert list(zip(written["document"], written["token"], written["label"])) == expected
    rep = json.loads(ran["report"].stdout)
    valid = load_split(root / "valid.jsonl", text="tokens", label="labels", words="first")
    out = predict_forward(taggers.members["chars"], valid, "tokens", device="cpu", progress=False,
                          cache=root / "cache", name="chars", batch_size=8)
    pred = [tags_from_spans(s, len(r)) for s, r in zip(entity_spans([out], rows[:40]), rows[:40])]
    assert rep["members"]["chars"]["f"] == pytest.approx(seqeval_f1(tags[:40], pred), abs=1e-12)


def test_the_per_type_table_is_the_chosen_rules_out_of_fold_spans(synthetic):
    """The report's per-type table is of the rule its headline names, decoded on each row by the
    rule fitted on the other folds: its micro row is that rule's cross-validated figure, and each
    rule's char macro F1 is of the same out-of-fold spans."""
    from ensemble import report
    from ensemble.tasks.entities.spans import char_macro_f1

    models, data, cache_dir, columns, _ = synthetic
    rep = report(models, data, columns=columns, cache_dir=cache_dir, methods=["acc", "optimize"])
    d = rep.to_dict()
    micro = next(r for r in d["per_type"] if r["type"] == "all")
    assert micro["f"] == pytest.approx(rep.estimates[rep.headline["method"]].f)
    al = _cached(models, data, cache_dir, "valid")
    e = rep.estimates["optimize"]
    gold = [tags_from_spans(g, len(t)) for g, t in zip(al.y.spans, al.y.texts)]
    pred = [tags_from_spans(p, len(t)) for p, t in zip(e.spans, al.y.texts)]
    assert d["estimates"]["optimize"]["char_macro_f1"] == pytest.approx(char_macro_f1(gold, pred, list(al.tags)))


def test_a_given_threshold_is_what_the_headline_estimates(synthetic, tmp_path):
    """An O threshold given as a number is applied to the submission and to every fit and score
    of the estimate: the headline is the notebook's estimate at that threshold, not at argmax; the
    report's estimates change with it too."""
    from ensemble import report, vote
    from ensemble.tasks.entities.vote import estimate_entities

    models, data, cache_dir, columns, _ = synthetic
    at = vote(models, data, "optimize", columns=columns, cache_dir=cache_dir, threshold=0.99, out=tmp_path / "a.csv",
              weights_dir=tmp_path / "w")
    plain = vote(models, data, "optimize", columns=columns, cache_dir=cache_dir, out=tmp_path / "b.csv",
                 weights_dir=tmp_path / "w")
    al = _cached(models, data, cache_dir, "valid")
    texts = pd.read_csv(data["valid"])["text"].tolist()
    expected = estimate_entities(al.logits, texts, al.y.spans, methods=["optimize"], thresholds=0.99)["optimize"]
    assert at.attrs["headline"]["estimate"] == pytest.approx(expected.f)
    assert at.attrs["headline"]["estimate"] != pytest.approx(plain.attrs["headline"]["estimate"])
    assert at.attrs["weights"].thresholds == {"LC": 0.99, "PS": 0.99}
    r_at = report(models, data, columns=columns, cache_dir=cache_dir, methods=["optimize"], threshold=0.99)
    assert r_at.estimates["optimize"].f == pytest.approx(expected.f)


def test_members_marked_optimistic_leave_the_reports_ensembles_as_the_votes(synthetic, tmp_path):
    """trained_on_valid: the member is scored but left out of every ensemble the report
    estimates, as the vote leaves it out of the submission: both are of the other members."""
    from ensemble import report, vote
    from ensemble.tasks.entities.vote import estimate_entities

    models, data, cache_dir, columns, _ = synthetic
    rep = report(models, data, columns=columns, cache_dir=cache_dir, methods=["acc"], trained_on_valid=["m2"])
    assert rep.excluded == ("m2",) and "excluded" in rep.members["m2"]
    al = _cached(models, data, cache_dir, "valid")
    texts = pd.read_csv(data["valid"])["text"].tolist()
    two = estimate_entities(al.logits[:2], texts, al.y.spans, methods=["uniform"])["uniform"]
    assert rep.estimates["uniform"].f == pytest.approx(two.f)
    sub = vote(models, data, "uniform", columns=columns, cache_dir=cache_dir, trained_on_valid=["m2"],
               out=tmp_path / "s.csv", weights_dir=tmp_path / "w")
    assert sub.attrs["weights"].models == ("m0", "m1")


def test_proba_is_not_left_behind_when_the_submission_cannot_be_written(synthetic, tmp_path, monkeypatch):
    """--proba's Parquet is written with the submission's set: a set that fails leaves none."""
    import ensemble.workflows.submission as submission
    from ensemble import vote

    models, data, cache_dir, columns, _ = synthetic

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(submission, "atomic_write", full)
    with pytest.raises(Exception):
        vote(models, data, "uniform", columns=columns, cache_dir=cache_dir, proba=True, out=tmp_path / "s.csv",
             weights_dir=tmp_path / "w")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_threshold_by_source_of_weights(synthetic, tmp_path):
    """--threshold across the sources of weights: per_label is fitted, so fixed weights refuse it;
    a weights file keeps the thresholds it was fitted with, so a threshold beside one is refused;
    a method and fixed weights apply a number (test_a_given_threshold..., test_fixed_weights...)."""
    from ensemble import vote

    models, data, cache_dir, columns, _ = synthetic
    with pytest.raises(EnsembleError, match="per_label is fitted on labelled validation rows with a method"):
        vote(models, data, "1,1,1", columns=columns, cache_dir=cache_dir, threshold="per_label",
             out=tmp_path / "a.csv")
    fitted = vote(models, data, "optimize", columns=columns, cache_dir=cache_dir, threshold="per_label",
                  out=tmp_path / "b.csv", weights_dir=tmp_path / "w")
    path = tmp_path / "w" / "ensemble-optimize.json"
    assert path.is_file()
    with pytest.raises(EnsembleError, match="keeps the O thresholds it was fitted with") as e:
        vote(models, data, str(path), columns=columns, cache_dir=cache_dir, threshold=0.9, out=tmp_path / "c.csv")
    assert "\n" not in str(e.value) and not (tmp_path / "c.csv").exists()
    again = vote(models, data, str(path), columns=columns, cache_dir=cache_dir, out=tmp_path / "d.csv")
    assert again.attrs["weights"].thresholds == fitted.attrs["weights"].thresholds
    assert pd.read_csv(tmp_path / "d.csv").equals(pd.read_csv(tmp_path / "b.csv"))
