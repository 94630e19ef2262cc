"""The headline's words: what its figure is of, and a holdout that is not untouched said so."""

from __future__ import annotations

from ensemble.estimates.headline import headline_line, headline_of, holdout_note


def test_the_line_names_the_file_the_figure_its_interval_and_what_it_is_of():
    h = headline_of({"metric": "pearson", "estimate": 0.81234, "low": 0.8, "high": 0.83, "of": "out-of-fold"},
                    "submissions/ensemble-stack.csv", "stack")
    assert h["submission"] == "ensemble-stack.csv" and h["method"] == "stack"
    assert headline_line(h) == ("submission ensemble-stack.csv: stack, pearson 0.8123 [0.8000, 0.8300] on unseen "
                                "data (out of fold: one fold model's rows)")


def test_a_holdout_shared_with_training_rows_is_not_called_untouched():
    note = holdout_note({"overlap": 3})
    assert note == "the holdout is NOT untouched: 3 of its rows are also training rows"
    assert holdout_note({"used_by": ["bert"]}).endswith("checkpoints of bert")
    assert holdout_note({}) is None
    line = headline_line({"submission": None, "method": "uniform", "metric": "accuracy", "estimate": 0.8,
                          "of": "holdout", "note": note})
    assert "untouched by every fit" not in line and line.endswith(note)
    clean = headline_line({"submission": None, "method": "uniform", "metric": "accuracy", "estimate": 0.8,
                           "of": "holdout"})
    assert "(on the holdout, untouched by every fit)" in clean
