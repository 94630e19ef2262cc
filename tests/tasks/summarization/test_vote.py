"""The summarization vote from the CLI, against the notebook functions on the same cached
generations, and its refusals: one line, exit 1, nothing written."""

from __future__ import annotations

import contextlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble.cli.main import main
from ensemble.tasks.summarization.rouge import competition_score
from ensemble.tasks.summarization.vote import estimate_summaries, fit_summaries, mbr_summaries
from ensemble.workflows.gather import gather

from tests.tasks.summarization.conftest import cli_args


def _texts(s, split):
    return gather(s.models, s.data, split, columns=s.columns, cache_dir=s.cache_dir, inference={"batch_size": 8}).logits


def _vote(s, tmp_path, *args, **extra):
    with contextlib.chdir(tmp_path):
        return CliRunner().invoke(main, ["vote", *cli_args(s.models, s.data, s.cache_dir, **extra), *args])


def test_uniform_writes_the_mbr_choice_of_every_row(summaries, tmp_path):
    ran = _vote(summaries, tmp_path, "--weights=uniform")
    assert ran.exit_code == 0, ran.output
    sub = pd.read_csv(tmp_path / "submissions" / "ensemble-uniform.csv", keep_default_na=False)
    assert list(sub.columns) == ["fname", "summary"]
    test = _texts(summaries, "test")
    assert sub["fname"].tolist() == [f"t{i}" for i in range(12)]
    assert sub["summary"].tolist() == mbr_summaries(test)
    # the estimate is the competition's score of the same choice on the validation rows (no fit to cross-validate)
    valid = _texts(summaries, "valid")
    side = json.loads((tmp_path / "submissions" / "ensemble-uniform.csv.json").read_text())
    assert side["headline"]["estimate"] == pytest.approx(competition_score(mbr_summaries(valid), summaries.references))
    assert side["task"] == "summarization" and side["procedure"]["rouge_tokenizer"] == "morphemes"


def test_a_fitted_rule_is_estimated_out_of_fold_and_applied_as_fitted(summaries, tmp_path):
    ran = _vote(summaries, tmp_path, "--weights=optimize")
    assert ran.exit_code == 0, ran.output
    valid, test = _texts(summaries, "valid"), _texts(summaries, "test")
    side = json.loads((tmp_path / "submissions" / "ensemble-optimize.csv.json").read_text())
    est = estimate_summaries(valid, summaries.references, methods=["optimize"])["optimize"]
    assert side["headline"]["estimate"] == pytest.approx(est.score)
    assert side["headline"]["of"] == "cross-validated"
    fit = fit_summaries(valid, summaries.references, "optimize")
    assert side["weights"] == pytest.approx(dict(zip(fit.members, fit.weights)))
    sub = pd.read_csv(tmp_path / "submissions" / "ensemble-optimize.csv", keep_default_na=False)
    assert sub["summary"].tolist() == mbr_summaries(test, fit)


def test_a_weights_file_is_reused_as_fitted_and_refused_when_stale(summaries, tmp_path):
    """--weights optimize writes weights/ensemble-optimize.json; given back, it writes the same
    summaries without refitting; under another ROUGE tokenizer, or edited, it is refused."""
    assert _vote(summaries, tmp_path, "--weights=optimize").exit_code == 0
    path = tmp_path / "weights" / "ensemble-optimize.json"
    first = pd.read_csv(tmp_path / "submissions" / "ensemble-optimize.csv", keep_default_na=False)
    ran = _vote(summaries, tmp_path, f"--weights={path}", f"--out={tmp_path / 'again.csv'}")
    assert ran.exit_code == 0, ran.output
    again = pd.read_csv(tmp_path / "again.csv", keep_default_na=False)
    assert again["summary"].tolist() == first["summary"].tolist()
    ran = _vote(summaries, tmp_path, f"--weights={path}", f"--out={tmp_path / 'x.csv'}", rouge_tokenizer="whitespace")
    assert ran.exit_code == 1 and "fitted with tokenizer 'morphemes', this vote asks for 'whitespace'" in ran.output
    doc = json.loads(path.read_text())
    doc["weights"][0] += 0.1
    path.write_text(json.dumps(doc))
    ran = _vote(summaries, tmp_path, f"--weights={path}", f"--out={tmp_path / 'y.csv'}")
    assert ran.exit_code == 1 and "checksum does not match" in ran.output, ran.output
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()


def test_auto_keeps_uniform_unless_a_fitted_gain_is_sure(summaries, tmp_path):
    ran = _vote(summaries, tmp_path)
    assert ran.exit_code == 0, ran.output
    side = json.loads(next((tmp_path / "submissions").glob("ensemble-*.csv.json")).read_text())
    auto = side["auto"]
    sure = {m: c["gain_interval"][0] > 0 for m, c in auto["candidates"].items() if m != "uniform"}
    assert set(auto["candidates"]) == {"uniform", "score", "select", "optimize"}
    assert (auto["chosen"] == "uniform") == (not any(sure.values()))


def test_the_rouge_tokenizer_is_applied_to_the_estimate(summaries, tmp_path):
    ran = _vote(summaries, tmp_path, "--weights=uniform", rouge_tokenizer="whitespace")
    assert ran.exit_code == 0, ran.output
    side = json.loads((tmp_path / "submissions" / "ensemble-uniform.csv.json").read_text())
    valid = _texts(summaries, "valid")
    chosen = mbr_summaries(valid, tokenizer="whitespace")
    spaced = competition_score(chosen, summaries.references, tokenizer="whitespace")
    assert side["headline"]["estimate"] == pytest.approx(spaced)
    assert spaced != pytest.approx(competition_score(chosen, summaries.references))  # morphemes count otherwise


def test_the_sample_submission_orders_the_rows(summaries, tmp_path):
    ids = [f"t{i}" for i in np.random.default_rng(0).permutation(12)]
    pd.DataFrame({"fname": ids, "summary": "..."}).to_csv(tmp_path / "sample.csv", index=False)
    ran = _vote(summaries, tmp_path, "--weights=uniform", f"--sample-submission={tmp_path / 'sample.csv'}")
    assert ran.exit_code == 0, ran.output
    sub = pd.read_csv(tmp_path / "submissions" / "ensemble-uniform.csv", keep_default_na=False)
    assert sub["fname"].tolist() == ids
    by_id = dict(zip([f"t{i}" for i in range(12)], mbr_summaries(_texts(summaries, "test"))))
    assert sub["summary"].tolist() == [by_id[i] for i in ids]


@pytest.mark.parametrize("args,says", [
    (["--threshold=0.5"], "--threshold"),
    (["--proba"], "--proba"),
    (["--combine=logit"], "--combine"),
    (["--weights=stack"], "not a rule of the summarization task"),
    (["--metric=f1"], "metric must be one of rouge"),
])
def test_options_of_other_tasks_are_refused_in_one_line(summaries, tmp_path, args, says):
    ran = _vote(summaries, tmp_path, *args)
    assert ran.exit_code == 1 and says in ran.output and len(ran.output.strip().splitlines()) == 1, ran.output
    assert not (tmp_path / "submissions").exists()


def test_generate_settings_on_the_cli_give_n_best_lists_that_the_vote_pools(summaries, tmp_path):
    """--generate on predict and vote: 2 candidates per member and row under 2 beams, pooled by the
    vote; a vote asking for other settings names the entry it found."""
    gen = {"num_beams": 2, "num_return_sequences": 2}
    args = [f"--generate={k}={v}" for k, v in gen.items()]
    with contextlib.chdir(tmp_path):
        ran = CliRunner().invoke(main, ["predict", *cli_args(summaries.models, summaries.data, summaries.cache_dir),
                                        *args, "--device=cpu"])
    assert ran.exit_code == 0, ran.output
    test = gather(summaries.models, summaries.data, "test", columns={**summaries.columns, "generate": gen},
                  cache_dir=summaries.cache_dir, inference={"batch_size": 8}).logits
    assert all(len(row) == 2 for out in test for row in out.texts)
    ran = _vote(summaries, tmp_path, "--weights=uniform", *args)
    assert ran.exit_code == 0, ran.output
    sub = pd.read_csv(tmp_path / "submissions" / "ensemble-uniform.csv", keep_default_na=False)
    assert sub["summary"].tolist() == mbr_summaries(test)
    ran = _vote(summaries, tmp_path, "--weights=uniform", "--generate=num_beams=3")
    assert ran.exit_code == 1 and "with these generate settings (it has an entry of num_beams" in ran.output, ran.output


def test_an_edited_generation_config_is_another_cache_entry(summaries, tmp_path):
    """The cached generations were made under the folder's generation_config.json: edited, the vote
    finds none (never the old ones) and says which predict to run."""
    folder = tmp_path / "edited"
    shutil.copytree(summaries.models["bart0"], folder)
    config = json.loads((folder / "generation_config.json").read_text())
    (folder / "generation_config.json").write_text(json.dumps({**config, "num_beams": 1}))
    models = {"bart0": folder, "bart1": summaries.models["bart1"]}
    with contextlib.chdir(tmp_path):
        ran = CliRunner().invoke(main, ["vote", *cli_args(models, summaries.data, summaries.cache_dir)])
    assert ran.exit_code == 1 and "no cached generations" in ran.output, ran.output


@pytest.fixture(scope="module")
def folded(tmp_path_factory):
    from tests.synthetic_members import make_summary_fold_members

    return make_summary_fold_members(tmp_path_factory.mktemp("summary-folds"))


def test_fold_groups_are_fitted_out_of_fold_and_refits_submitted(folded, tmp_path):
    """A fold group's training rows are each its held-out fold model's candidates; its test rows
    pool every fold model's; a refit takes its group's place on test, said in the headline."""
    from ensemble import report, vote
    from ensemble.data.splits import load_split
    from ensemble.workflows.foldgroups import open_training_folds

    groups, refit, data, folds, cache = folded
    columns = {"label": "summary", "rouge_tokenizer": "whitespace"}
    oof = gather(groups, data, "train", cache_dir=cache, columns=columns, folds=folds)
    training = open_training_folds(load_split(data["train"], name="train", label="summary"), folds)
    for k in range(3):
        for r in training.rows(k)[:3]:
            assert len(oof.texts[0][r]) == 2  # its own fold model's two candidates
    test = gather(groups, data, "test", cache_dir=cache, columns=columns, folds=folds)
    assert all(len(row) == 2 for out in test.texts for row in out)  # as many as one fold model gives out of fold
    from ensemble.tasks.summarization.mbr import expected_utility, rouge_utility

    utility = rouge_utility()
    # the two its three fold models agree on most, by MBR over their six pooled candidates
    parts = [gather({f"g1-fold{k}": groups["g1"].format(fold=k)}, data, "test", cache_dir=cache,
                    columns=columns).texts[0] for k in range(3)]
    for i in range(3):
        pool = list(dict.fromkeys(t for p in parts for t in p[i]))
        mass = np.array([sum(p[i].count(t) / 2 for p in parts) for t in pool])
        eu = expected_utility(np.array([[utility(x, y) for y in pool] for x in pool]), mass / mass.sum())
        assert list(test.texts[1][i]) == [pool[j] for j in np.argsort(-eu, kind="stable")[:2]]
    sub = vote({**groups, "full": refit}, data, "optimize", cache_dir=cache, columns=columns, folds=folds,
               refit={"full": "g0"}, out=tmp_path / "s.csv", weights_dir=tmp_path / "w")
    head, fit = sub.attrs["headline"], sub.attrs["weights"]
    assert head["of"] == "out-of-fold" and "refits (full for g0)" in head["note"]
    est = estimate_summaries(oof.logits, [r[0] for r in oof.y.references], methods=["optimize"],
                             folds=training.folds.fold, tokenizer="whitespace")["optimize"]
    assert head["estimate"] == pytest.approx(est.score)
    refitted = gather({"full": refit, "g1": groups["g1"]}, data, "test", cache_dir=cache, columns=columns,
                      folds=folds).logits
    written = pd.read_csv(tmp_path / "s.csv", keep_default_na=False)["summary"].tolist()
    assert written == mbr_summaries(refitted, fit.weights, tokenizer="whitespace")
    rep = report(groups, data, cache_dir=cache, columns=columns, folds=folds, methods=["score"])
    assert rep.headline["of"] == "out-of-fold"
    assert rep.estimates["uniform"].score == pytest.approx(
        estimate_summaries(oof.logits, [r[0] for r in oof.y.references], methods=["uniform"],
                           folds=training.folds.fold, tokenizer="whitespace")["uniform"].score)
    with pytest.raises(Exception, match="a validation split beside fold groups is a holdout"):
        report(groups, {**data, "valid": data["train"]}, cache_dir=cache, columns=columns, folds=folds)


def test_a_weights_file_fitted_on_other_generations_is_stale(tmp_path):
    """The weights were fitted on the candidates of the members' generation configs: a member
    whose generation_config.json changed (its candidates generated again) makes them stale."""
    from ensemble import vote
    from ensemble.core.outputs import Texts
    from ensemble.data.splits import load_split
    from tests.synthetic_members import cache_texts_split, make_summary_members

    members, data, cache = make_summary_members(tmp_path / "m", valid_rows=30, test_rows=6, models=2)
    columns = {"label": "summary", "rouge_tokenizer": "whitespace"}
    sub = vote(members, data, "optimize", cache_dir=cache, columns=columns, out=tmp_path / "a.csv",
               weights_dir=tmp_path / "w")
    path = tmp_path / "w" / "ensemble-optimize.json"
    assert path.is_file() and sub.attrs["weights"].method == "optimize"
    again = vote(members, data, path, cache_dir=cache, columns=columns, out=tmp_path / "b.csv")
    assert again["summary"].tolist() == sub["summary"].tolist()
    folder = members["m0"]
    (folder / "generation_config.json").write_text(json.dumps({"num_beams": 4, "max_length": 16}))
    for name in ("valid", "test"):
        split = load_split(data[name], name=name, label={"valid": "summary"}.get(name))
        rows = [[f"regenerated {i}"] for i in range(len(split))]
        cache_texts_split(folder, "m0", Texts(np.asarray(split.ids), rows, np.zeros(len(rows)), None, "m0", name),
                          split, cache)
    with pytest.raises(Exception, match="stale: m0's generations on the validation rows are not the ones"):
        vote(members, data, path, cache_dir=cache, columns=columns, out=tmp_path / "c.csv")
    assert not (tmp_path / "c.csv").exists()
