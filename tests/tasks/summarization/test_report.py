"""The summarization report: each member, every rule out of fold, the per-row oracle, the rows
where members disagree and the note on a run's logged ROUGE, against independent computations."""

from __future__ import annotations

import json
import shutil

import pytest

from ensemble import report
from ensemble.tasks.summarization.rouge import Rouge, competition_score
from ensemble.tasks.summarization.vote import estimate_summaries
from ensemble.workflows.gather import gather

INFERENCE = {"batch_size": 8}


@pytest.fixture(scope="module")
def made(summaries):
    rep = report(summaries.models, summaries.data, columns=summaries.columns, cache_dir=summaries.cache_dir,
                 inference=INFERENCE)
    valid = gather(summaries.models, summaries.data, "valid", columns=summaries.columns,
                   cache_dir=summaries.cache_dir, inference=INFERENCE)
    return rep, valid


def test_members_rules_and_the_oracle_are_what_they_say(summaries, made):
    rep, valid = made
    refs = summaries.references
    for m, name in enumerate(valid.members):  # a member on its own submits its first candidate
        assert rep.members[name]["score"] == pytest.approx(competition_score(valid.top(m), refs))
    by_hand = estimate_summaries(valid.logits, refs, methods=["uniform", "score", "best", "select", "optimize"])
    for rule, e in rep.estimates.items():
        assert e.score == pytest.approx(by_hand[rule].score)
    rouge = Rouge("morphemes")
    pooled = [[t for m in range(2) for t in valid.texts[m][i]] for i in range(len(refs))]
    oracle = sum(max(sum(v[2] for v in rouge.row(t, [r]).values()) for t in pool)
                 for pool, r in zip(pooled, refs)) / len(refs)
    assert rep.oracle == pytest.approx(oracle)
    assert rep.oracle >= max(e.score for e in rep.estimates.values())
    text = str(rep)
    assert text.splitlines()[0].startswith("submission") and "upper bound" in text
    d = rep.to_dict()
    assert d["task"] == "summarization" and d["rouge"] == {"tokenizer": "morphemes", "aggregate": "mean"}
    page = rep.to_html()
    for row in [*valid.members, "uniform", "optimize", "oracle"]:
        assert row in page


def test_a_cv_other_than_k_folds_is_refused_not_replaced(summaries):
    """The report cross-validates over K folds of the rows: a fold number per row is refused in one
    line (it was replaced by 5 folds, unsaid)."""
    from ensemble.core.errors import EnsembleError

    with pytest.raises(EnsembleError, match="the summarization report cross-validates over K folds of the rows"):
        report(summaries.models, summaries.data, columns=summaries.columns, cache_dir=summaries.cache_dir,
               inference=INFERENCE, cv=[i % 3 for i in range(len(summaries.references))])


def test_the_rows_where_members_disagree_come_first(made):
    rep, valid = made
    rows = rep.disagreements
    assert rows and [r["agreement"] for r in rows] == sorted(r["agreement"] for r in rows)
    first = rows[0]
    i = list(valid.ids).index(first["id"])
    assert first["texts"] == {name: valid.texts[m][i][0] for m, name in enumerate(valid.members)}


def test_a_logged_rouge_far_from_this_one_is_explained(summaries, tmp_path):
    """A run that logged eval_rouge1 (as a percentage, as the HF example scripts do) far from
    ROUGE-1 here: the report says by how much, and the whitespace figure beside it."""
    folder = tmp_path / "checkpoint-39"
    shutil.copytree(summaries.models["bart0"], folder)
    state = json.loads((folder / "trainer_state.json").read_text())
    at_step = [e for e in state["log_history"] if e.get("step") == state["global_step"] and "eval_loss" in e]
    if not at_step:  # transformers 4.x evaluates at the eval steps only, not at the last one
        at_step = [{"step": state["global_step"], "eval_loss": 1.0}]
        state["log_history"].append(at_step[0])
    for entry in at_step:
        entry["eval_rouge1"] = 97.5
    (folder / "trainer_state.json").write_text(json.dumps(state))
    models = {"bart0": folder, "bart1": summaries.models["bart1"]}  # the same weights: the cache serves it
    rep = report(models, summaries.data, columns=summaries.columns, cache_dir=summaries.cache_dir,
                 inference=INFERENCE)
    note = rep.notes["bart0"]
    assert "logged eval_rouge1 0.9750" in note and "whitespace" in note
    assert "bart1" not in rep.notes
    assert note in str(rep)
