"""The summarization task: registered, its members' generations aligned by row id, its
references read (one column or several), and what it refuses in one line."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble.cli.main import main
from ensemble.core.errors import EnsembleError
from ensemble.core.outputs import Texts
from ensemble.data.splits import load_split
from ensemble.tasks import TASKS, task_named
from ensemble.tasks.summarization.task import SUMMARIZATION, align_texts, summary_submission

from tests.tasks.summarization.conftest import cli_args


def test_registered_with_its_hooks():
    assert TASKS["summarization"] is SUMMARIZATION and task_named("summarization") is SUMMARIZATION
    assert SUMMARIZATION.forward == "generation" and SUMMARIZATION.payload == "texts"
    assert SUMMARIZATION.primary == "rouge"


def test_generations_align_by_row_id_and_refuse_other_rows():
    ids = np.array(["a", "b", "c"], dtype=object)
    first = Texts(ids, [["x"], ["y"], ["z"]], np.zeros(3), None, "m0")
    second = Texts(ids[::-1], [["z2"], ["y2"], ["x2"]], np.zeros(3), None, "m1")
    al = align_texts([first, second])
    assert al.texts[1] == (("x2",), ("y2",), ("z2",)) and al.top(0) == ["x", "y", "z"]
    other = Texts(np.array(["a", "b", "d"], dtype=object), [["x"], ["y"], ["w"]], np.zeros(3), None, "m2")
    with pytest.raises(EnsembleError, match=r"m2: its generations lack row 'c' of the split"):
        align_texts([first, other])


def test_several_reference_columns_and_an_empty_one(tmp_path):
    path = tmp_path / "valid.csv"
    pd.DataFrame({"fname": ["a", "b"], "dialogue": ["x y", "z"], "s1": ["one", "two"], "s2": ["uno", ""]}).to_csv(
        path, index=False)
    split = load_split(path, id="fname", text="dialogue", label=["s1", "s2"], rouge_tokenizer="whitespace")
    with pytest.raises(EnsembleError, match=r"valid.csv: row 2 \(id b\): column s2 is an empty reference summary"):
        SUMMARIZATION.truth(split, (), "m", None)
    pd.DataFrame({"fname": ["a", "b"], "dialogue": ["x y", "z"], "s1": ["one", "two"], "s2": ["uno", "dos"]}).to_csv(
        path, index=False)
    y = SUMMARIZATION.truth(load_split(path, id="fname", text="dialogue", label=["s1", "s2"],
                                       rouge_tokenizer="whitespace", rouge_aggregate="max"), (), "m", None)
    assert y.references == [("one", "uno"), ("two", "dos")] and (y.tokenizer, y.aggregate) == ("whitespace", "max")
    assert SUMMARIZATION.metric_value("rouge1", ["uno", "two"], y) == pytest.approx(1.0)  # max: the best reference


def test_an_empty_dialogue_and_another_tasks_settings_are_refused(tmp_path):
    path = tmp_path / "test.csv"
    pd.DataFrame({"fname": ["a", "b"], "dialogue": ["x", " "]}).to_csv(path, index=False)
    with pytest.raises(EnsembleError, match=r"test.csv: row 2 \(id b\): an empty dialogue"):
        SUMMARIZATION.check_texts(load_split(path, id="fname", text="dialogue"))
    split = load_split(path, id="fname", text="dialogue", rouge_tokenizer="characters")
    with pytest.raises(EnsembleError, match="rouge_tokenizer = 'characters' is a setting of the tasks that read it"):
        TASKS["classification"].check_split_settings(split)
    SUMMARIZATION.check_split_settings(split)
    with pytest.raises(EnsembleError, match="rouge_tokenizer must be one of morphemes"):
        load_split(path, id="fname", text="dialogue", rouge_tokenizer="bpe")


def test_the_submission_follows_the_sample_or_writes_fname_summary(tmp_path):
    frame = summary_submission(["t1", "t0"], ["b", "a"])
    assert list(frame.columns) == ["fname", "summary"] and frame["summary"].tolist() == ["b", "a"]
    sample = tmp_path / "sample.csv"
    pd.DataFrame({"fname": ["t0", "t1"], "summary": ["", ""], "extra": [1, 2]}).to_csv(sample, index=False)
    with pytest.raises(EnsembleError, match="a summarization sample submission has two"):
        summary_submission(["t1", "t0"], ["b", "a"], sample_submission=sample)


def test_a_classifier_given_as_a_summarization_member_is_refused(runs, summaries, tmp_path):
    """--task summarization over a sequence classifier: one line naming its config, before any model runs."""
    with contextlib.chdir(tmp_path):
        ran = CliRunner().invoke(main, ["predict", *cli_args({"clf": runs.tok / "checkpoint-18"}, summaries.data, tmp_path / "c"),
                                        "--task=summarization"])
    assert ran.exit_code == 1 and len(ran.output.strip().splitlines()) == 1, ran.output
    assert "config.json" in ran.output and "generation" in ran.output
    assert not (tmp_path / "c").exists()


def test_accelerate_processes_split_the_generation_and_match_one_process(summaries, tmp_path):
    """Two processes (accelerate launch, on CPU here as on GPUs) share the batches of a generation
    member: the same candidates and scores as one process, and one cache entry either finds."""
    from ensemble.inference.cache import OutputCache
    from tests.workflows.test_predict import _accelerate

    args = ["predict", "--model", f"bart0={summaries.models['bart0']}", "--data", f"valid={summaries.data['valid']}",
            "--id=fname", "--text=dialogue", "--label=summary", "--quoting=csv", "--batch-size=3",
            "--generate=num_beams=2", "--generate=num_return_sequences=2"]
    run = _accelerate([*args, f"--cache-dir={tmp_path / 'dist'}", "-q"])
    assert run.returncode == 0, run.stderr[-3000:]
    one = CliRunner().invoke(main, [*args, f"--cache-dir={tmp_path / 'one'}", "--device=cpu", "-q"])
    assert one.exit_code == 0, one.output
    dist, single = (OutputCache(tmp_path / c).entries() for c in ("dist", "one"))
    assert len(dist) == len(single) == 1 and dist[0].key == single[0].key
    a, b = OutputCache(tmp_path / "dist").get(dist[0].key), OutputCache(tmp_path / "one").get(single[0].key)
    assert a.ids.tolist() == b.ids.tolist() and a.texts == b.texts and all(len(r) == 2 for r in a.texts)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4, rtol=0)
