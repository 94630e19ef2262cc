"""The entities submission: spans as JSON or tags per character, read back by the gold reader and
the tag decoder; the sample's order, columns and format followed; the per-unit probabilities
written to Parquet whole or not at all."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.gold import read_entities
from ensemble.tasks.entities.spans import spans_from_tags
from ensemble.tasks.entities.submission import entity_submission, unit_probabilities, write_unit_probabilities

IDS = ["a", "b", "c"]
TEXTS = ["경찰은 서울에서", "", "KLUE 2020년"]
SPANS = [[(4, 6, "LC")], [], [(0, 4, "OG"), (5, 10, "DT")]]


def test_spans_and_tags_read_back_as_the_spans():
    frame = entity_submission(IDS, SPANS, TEXTS)
    assert list(frame.columns) == ["id", "entities"] and frame["id"].tolist() == IDS
    assert "서울" not in frame["entities"][0] and read_entities(TEXTS, frame["entities"], path="x") == SPANS
    tags = entity_submission(IDS, SPANS, TEXTS, format="tags")
    assert tags["entities"][0] == "O O O O B-LC I-LC O O"
    assert [spans_from_tags(c.split(" ")) if c else [] for c in tags["entities"]] == SPANS


@pytest.mark.parametrize("cell,fmt", [("[]", "spans"), ("O O O O O O O O", "tags")])
def test_the_sample_gives_order_columns_and_format(tmp_path, cell, fmt):
    sample = tmp_path / "sample.csv"
    # the first non-empty cell decides: row a's (tags: one per character of a's text)
    pd.DataFrame({"guid": ["c", "a", "b"], "pred": ["", cell, ""]}).to_csv(sample, index=False)
    frame = entity_submission(IDS, SPANS, TEXTS, sample_submission=sample)
    assert list(frame.columns) == ["guid", "pred"] and frame["guid"].tolist() == ["c", "a", "b"]
    assert frame.attrs["format"] == fmt
    assert frame["pred"][1] == entity_submission(IDS, SPANS, TEXTS, format=fmt)["entities"][0]


def test_rows_give_each_word_in_an_entity_its_tag(tmp_path):
    """PII Data Detection's format: a row per word in an entity, its BIO tag, documents in order;
    a sample of four columns gives the names (its few rows are for show) and the format."""
    words = [["Nathalie", "Sylla", "wrote", "\n\n"], ["hi"], ["Ana", "at", "https://x.y"]]
    spans = [[(0, 2, "NAME_STUDENT")], [], [(0, 1, "NAME_STUDENT"), (2, 3, "URL_PERSONAL")]]
    frame = entity_submission(["7", "9", "12"], spans, words, format="rows")
    assert list(frame.columns) == ["row_id", "document", "token", "label"]
    assert frame.to_numpy().tolist() == [[0, "7", 0, "B-NAME_STUDENT"], [1, "7", 1, "I-NAME_STUDENT"],
                                         [2, "12", 0, "B-NAME_STUDENT"], [3, "12", 2, "B-URL_PERSONAL"]]
    sample = tmp_path / "sample.csv"
    pd.DataFrame({"row_id": [0], "document": ["7"], "token": [9], "label": ["B-NAME_STUDENT"]}).to_csv(sample, index=False)
    got = entity_submission(["7", "9", "12"], spans, words, sample_submission=sample)
    assert got.attrs["format"] == "rows" and got.equals(frame)
    two = tmp_path / "two.csv"
    pd.DataFrame({"id": ["7", "9", "12"], "entities": ["", "", ""]}).to_csv(two, index=False)
    with pytest.raises(EnsembleError, match=r"two.csv: the rows format needs a sample of four columns .* it has 2"):
        entity_submission(["7", "9", "12"], spans, words, sample_submission=two, format="rows")
    with pytest.raises(EnsembleError, match=r"row '12'.*outside"):
        entity_submission(["7", "9", "12"], [[], [], [(2, 4, "URL_PERSONAL")]], words, format="rows")


def test_bad_submissions_are_refused(tmp_path):
    sample = tmp_path / "sample.csv"
    pd.DataFrame({"id": ["a", "b", "d"], "entities": ["x", "", ""]}).to_csv(sample, index=False)
    with pytest.raises(EnsembleError, match=r"id 'd' is not in the test data"):
        entity_submission(IDS, SPANS, TEXTS, sample_submission=sample)
    pd.DataFrame({"id": IDS, "entities": ["x", "", ""]}).to_csv(sample, index=False)
    with pytest.raises(EnsembleError, match=r"column 'entities' holds neither JSON span lists nor one tag per character"):
        entity_submission(IDS, SPANS, TEXTS, sample_submission=sample)
    with pytest.raises(EnsembleError, match=r"format must be one of spans, tags, rows; got 'pii'"):
        entity_submission(IDS, SPANS, TEXTS, format="pii")
    with pytest.raises(EnsembleError, match=r"row 'c'.*outside"):
        entity_submission(IDS, [SPANS[0], [], [(5, 12, "DT")]], TEXTS)
    with pytest.raises(EnsembleError, match=r"got 3 ids, 2 rows of spans and 3 texts"):
        entity_submission(IDS, SPANS[:2], TEXTS)


def test_unit_probabilities_written_whole_or_not_at_all(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    lengths = [len(t) for t in TEXTS]
    values = rng.dirichlet(np.ones(3), size=sum(lengths))
    values[3] = np.nan
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    frame = unit_probabilities(IDS, values, offsets, ["O", "B-X", "I-X"])
    path = write_unit_probabilities(tmp_path / "sub.proba.parquet", frame)
    back = pd.read_parquet(path)
    assert back["id"].tolist() == ["a"] * 8 + ["c"] * 10 and back["position"].tolist()[:9] == [*range(8), 0]
    np.testing.assert_allclose(back[["O", "B-X", "I-X"]].to_numpy(), values, rtol=1e-6)  # NaN where values is
    with pytest.raises(EnsembleError, match=r"offsets must be n \+ 1 long"):
        unit_probabilities(IDS[:2], values, offsets, ["O", "B-X", "I-X"])

    def crash(self, p, **kw):
        p.write_bytes(b"PAR1")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)
    with pytest.raises(OSError):
        write_unit_probabilities(tmp_path / "new.parquet", frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub.proba.parquet"]


def test_the_rows_format_is_over_words_only():
    """PII's row per word in an entity, over character texts, would write a row per character:
    refused, saying to give words or a two-column sample."""
    import pytest

    from ensemble.core.errors import EnsembleError
    from ensemble.tasks.entities.submission import entity_submission

    with pytest.raises(EnsembleError, match="the rows format .* is over pre-split words"):
        entity_submission(["a"], [[(4, 9, "PS")]], ["met alice now"], format="rows")
