"""load_split: formats, columns, encodings, and the errors for bad files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.data.splits import load_split

from ..conftest import load_korean

ROWS = [("a7", "첫 번째 문장", "none"), ("007", "NA", "hate"), ("x", "세 번째, \"따옴표\"", "offensive")]


def _frame():
    return pd.DataFrame(ROWS, columns=["id", "text", "label"])


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet", ".csv.gz"])
def test_every_format_reads_the_same_split(tmp_path, suffix):
    path = tmp_path / f"valid{suffix}"
    df = _frame()
    if suffix.startswith(".csv"):
        df.to_csv(path, index=False)
    elif suffix == ".tsv":
        df.to_csv(path, sep="\t", index=False)
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        df.to_parquet(path)
    s = load_split(path)
    assert s.name == "valid" and len(s) == 3
    assert s.ids.tolist() == ["a7", "007", "x"]  # kept as text: 007 is not 7
    assert s.texts == ([r[1] for r in ROWS],)  # "NA" is a text, not a missing value
    assert s.labels.tolist() == ["none", "hate", "offensive"]
    assert s.digest == load_split(path).digest


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_word_lists_are_read_as_json_lists(tmp_path, suffix):
    """A column of pre-split words or of entities (JSONL lists, Parquet arrays) is read as one JSON
    list per row, as a CSV would hold it, so that every format reads alike."""
    words = [["경찰은", "또", "\n\n"], [], ["7", "\"x\""]]
    entities = [[{"start": 0, "end": 2, "label": "OG"}, {"start": 4, "end": 5, "label": "PS"}], [],
                [{"start": 0, "end": 1, "label": "QT"}]]  # objects: Parquet holds no mixed lists
    path = tmp_path / f"words{suffix}"
    df = pd.DataFrame({"id": ["a", "b", "c"], "tokens": words, "entities": entities})
    df.to_json(path, orient="records", lines=True, force_ascii=False) if suffix == ".jsonl" else df.to_parquet(path)
    split = load_split(path, text="tokens", label="entities")
    got = split.texts[0]
    assert [json.loads(t) for t in got] == words and got[0] == '["경찰은", "또", "\\n\\n"]'
    assert [json.loads(t) for t in split.labels] == entities  # nested lists, numbers kept


def test_digest_follows_ids_and_texts_only(tmp_path):
    df = _frame()
    df.to_csv(tmp_path / "a.csv", index=False)
    df.assign(label="hate").to_csv(tmp_path / "b.csv", index=False)
    df.assign(text=["첫 번째 문장!", *df.text[1:]]).to_csv(tmp_path / "c.csv", index=False)
    a, b, c = (load_split(tmp_path / f"{n}.csv") for n in "abc")
    assert a.digest == b.digest  # labels do not change logits
    assert a.digest != c.digest


def test_text_pairs_row_numbers_and_named_columns(tmp_path, caplog):
    path = tmp_path / "pairs.csv"
    pd.DataFrame({"s1": ["가", "나"], "s2": ["다", "라"], "y": [1, 0]}).to_csv(path, index=False)
    with caplog.at_level("INFO", logger="ensemble"):
        s = load_split(path, text=["s1", "s2"], label="y")
    assert s.texts == (["가", "나"], ["다", "라"])
    assert s.ids.tolist() == ["0", "1"] and s.id_column is None
    assert "identified by their number" in caplog.text
    # integer labels are class indices when the class names are not integers
    assert s.label_indices(("neg", "pos")).tolist() == [1, 0]
    # ... and names when they are
    assert s.label_indices(("1", "0")).tolist() == [0, 1]


def test_real_korean_tsv_reads_whole(tmp_path):
    (texts, labels), _ = load_korean(50, 1)
    path = tmp_path / "train.tsv"
    pd.DataFrame({"comments": texts, "hate": labels}).to_csv(path, sep="\t", index=False)
    s = load_split(path, text="comments", label="hate")
    assert s.texts[0] == texts and s.labels.tolist() == labels


@pytest.mark.parametrize("encoding, text, message", [
    ("cp949", "안녕하세요 반갑습니다", r"valid.csv: is not UTF-8; it looks like cp949 .*pass encoding=cp949"),
    ("utf-16", "안녕", r"valid.csv: is not UTF-8; it is UTF-16; pass encoding=utf-16"),
])
def test_non_utf8_file_names_encoding_and_then_reads(tmp_path, encoding, text, message):
    path = tmp_path / "valid.csv"
    path.write_bytes(f"id,text\n1,{text}\n".encode(encoding))
    with pytest.raises(EnsembleError, match=message):
        load_split(path)
    assert load_split(path, encoding=encoding).texts == ([text],)


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "valid.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "id,text\n1,안녕\n".encode())
    assert load_split(path).id_column == "id"


@pytest.mark.parametrize("content, kwargs, message", [
    ("", {}, r"is empty"),
    ("id,text,label\n", {}, r"has a header but no rows"),
    ("id,comment\n1,a\n", {}, r"no text column 'text' \(columns: id, comment\); pass text=COLUMN with one of them"),
    ("id,text\n1,a\n", {"label": "y"}, r"no label column 'y' \(columns: id, text\); pass label=COLUMN"),
    ("id,text\n1,a\n", {"id": "ID"}, r"no id column 'ID' \(columns: id, text\); pass id=COLUMN"),
    ("id,text\n1,a\n2,b\n1,c\n", {}, r"id '1' appears in rows 1 and 3; ids must be unique"),
    ("id,text\n1,a\n", {"require_label": True}, r"no label column 'label'"),
])
def test_bad_files_are_one_line_errors(tmp_path, content, kwargs, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(EnsembleError, match=message) as e:
        load_split(path, **kwargs)
    assert str(e.value).startswith(str(path))


def test_missing_text_in_jsonl_and_unknown_format(tmp_path):
    path = tmp_path / "v.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [{"id": 1, "text": "a"}, {"id": 2, "text": None}]) + "\n")
    with pytest.raises(EnsembleError, match=r"column 'text' is empty in row 2"):
        load_split(path)
    (tmp_path / "v.xlsx").write_bytes(b"x")
    with pytest.raises(EnsembleError, match=r"unknown data format; use .csv, .tsv, .jsonl or .parquet"):
        load_split(tmp_path / "v.xlsx")
    with pytest.raises(EnsembleError, match=r"not found"):
        load_split(tmp_path / "nope.csv")


def test_unknown_label_names_the_label_and_the_classes(tmp_path):
    path = tmp_path / "v.csv"
    pd.DataFrame({"id": [1, 2], "text": ["a", "b"], "label": ["hate", "spam"]}).to_csv(path, index=False)
    s = load_split(path)
    with pytest.raises(EnsembleError, match=r"label 'spam' \(row 2\) is not a class of M \(classes: none, hate\)"):
        s.label_indices(("none", "hate"), model="M")
    assert np.array_equal(load_split(path).label_indices(("spam", "hate")), [1, 0])


def test_a_stray_quote_in_a_tsv_is_an_error_and_quoting_none_reads_it(tmp_path):
    """Raw TSVs (NSMC) hold quotes as text: pandas' default quoting swallowed three lines into
    one text and read 2 rows instead of 4, silently."""
    path = tmp_path / "raw.tsv"
    path.write_text('id\ttext\tlabel\n1\t"정말 재밌다\t1\n2\t별로\t0\n3\t그냥" 그래\t0\n4\t최고\t1\n', encoding="utf-8")
    with pytest.raises(EnsembleError, match=r"raw.tsv: 4 lines of data but 2 rows; row 1 \(line 2\) spans 3 lines: a "
                                            r"double quote inside a text opens a quoted field.*pass quoting=none if "
                                            r"quotes are part of the texts"):
        load_split(path)
    split = load_split(path, quoting="none")
    assert len(split) == 4 and split.texts[0][0] == '"정말 재밌다' and split.texts[0][2] == '그냥" 그래'
    assert split.labels.tolist() == ["1", "0", "0", "1"]


def test_quoted_texts_spanning_lines_in_a_csv_are_read_with_a_warning(tmp_path, caplog):
    path = tmp_path / "multi.csv"
    path.write_text('id,text\n1,"first line\nsecond line"\n2,plain\n', encoding="utf-8")
    with caplog.at_level("WARNING", logger="ensemble"):
        split = load_split(path)
    assert len(split) == 2 and split.texts[0][0] == "first line\nsecond line"
    assert "3 lines of data but 2 rows; row 1 (line 2) spans 2 lines" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="ensemble"):
        assert len(load_split(path, quoting="csv")) == 2
    assert caplog.text == ""


def test_a_short_row_names_its_fields(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("id,text,label\n1,a,x\n2,b,y\n3,c,x\n4,d,y\n5,e,x\n6,f\n", encoding="utf-8")
    with pytest.raises(EnsembleError, match=r"short.csv: row 6 \(line 7\) has 2 fields, expected 3 \(id, text, label\); "
                                            "fix or drop that row"):
        load_split(path)


def test_a_split_of_words_says_so_and_its_rows_keep_it(tmp_path):
    """``words`` ("first" or "mean") is kept with the split and with a subset of its rows (a
    fold's); another value is refused naming the file."""
    import pandas as pd
    import pytest

    from ensemble.core.errors import EnsembleError
    from ensemble.data.splits import load_split

    pd.DataFrame({"id": ["a", "b"], "tokens": [["x", "y"], ["z"]]}).to_json(tmp_path / "w.jsonl", orient="records",
                                                                             lines=True)
    split = load_split(tmp_path / "w.jsonl", text="tokens", words="mean")
    assert split.words == "mean" and split.subset([1]).words == "mean"
    assert load_split(tmp_path / "w.jsonl", text="tokens").words is None
    with pytest.raises(EnsembleError, match="words must be first or mean"):
        load_split(tmp_path / "w.jsonl", text="tokens", words="last")


def test_how_words_are_read_is_part_of_the_digest(tmp_path):
    """Outputs and fits over a split's words are of other units than over its characters: the
    digest says words (and which reading); a split of texts keeps the digest it always had."""
    import pandas as pd

    from ensemble.data.splits import load_split

    pd.DataFrame({"id": ["a"], "tokens": [["x", "y"]]}).to_json(tmp_path / "w.jsonl", orient="records", lines=True)
    digests = {w: load_split(tmp_path / "w.jsonl", text="tokens", words=w).digest for w in (None, "first", "mean")}
    assert len(set(digests.values())) == 3


def test_word_lists_read_json_and_python_lists_once(tmp_path):
    """One reader of pre-split words for the forward and the task: JSON lists, and the Python
    lists pandas writes to a CSV; anything else names the file, row and column."""
    import pandas as pd
    import pytest

    from ensemble.core.errors import EnsembleError
    from ensemble.data.splits import load_split

    pd.DataFrame({"id": ["a", "b"], "tokens": [["x", "y"], ["z"]]}).to_csv(tmp_path / "w.csv", index=False)
    split = load_split(tmp_path / "w.csv", text="tokens", words="first")  # pandas wrote "['x', 'y']"
    assert split.word_lists() == [["x", "y"], ["z"]] and split.word_lists() is split.word_lists()
    assert split.subset([1]).word_lists() == [["z"]]
    (tmp_path / "bad.csv").write_text('id,tokens\na,"[""x""]"\nb,plain text\n', encoding="utf-8")
    with pytest.raises(EnsembleError, match=r"bad\.csv: row 2: column 'tokens' holds 'plain text', not a list of words"):
        load_split(tmp_path / "bad.csv", text="tokens", words="first").word_lists()
