"""The adversarial check: test rows that a classifier tells apart from the validation rows are
said in the headline's own line; rows drawn alike are not. Real texts: KLUE-STS sentence pairs and
Korean hate-speech comments (tests/data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ensemble.estimates.shift import adversarial_check, shift_note

from tests.conftest import load_korean

DATA = __import__("pathlib").Path(__file__).resolve().parents[1] / "data"


def _comments(n):
    (texts, _), _ = load_korean(n, 0)
    return texts


def test_rows_drawn_alike_are_not_flagged_and_other_sources_are():
    texts = _comments(256)
    alike = adversarial_check((texts[:128],), (texts[128:],))
    assert not alike.flagged and abs(alike.auc - 0.5) < 0.08 and shift_note(alike) is None
    assert len(alike.null) == 9 and all(0.35 < v < 0.65 for v in alike.null)  # permuted labels: chance
    sts = pd.read_csv(DATA / "klue-sts" / "sts-pairs.csv")
    other = adversarial_check((texts[:128],), (sts["sentence1"].tolist()[:128],))
    assert other.flagged and other.auc > 0.9 and other.p_value == pytest.approx(0.1)
    assert "do not look like the rows it is estimated on" in shift_note(other)
    assert shift_note(other.to_dict()) == shift_note(other)


def test_every_text_column_is_read_and_tiny_splits_are_not_checked():
    sts = pd.read_csv(DATA / "klue-sts" / "sts-pairs.csv")
    first, second = sts["sentence1"].tolist(), sts["sentence2"].tolist()
    # first sentences of one source on both sides, the second column from another source in the test
    comments = _comments(150)
    c = adversarial_check((first[:150], second[:150]), (first[150:300], comments))
    assert c.flagged
    assert adversarial_check((first[:4],), (first[4:8],)) is None


def test_the_report_headline_says_when_the_test_rows_differ(tmp_path):
    from ensemble import report
    from ensemble.estimates.headline import headline_line

    from tests.synthetic_members import make_task_members

    members, data, cache_dir, columns, names = make_task_members("regression", tmp_path, valid_rows=150, test_rows=60)
    rep = report(members, data, columns=columns, cache_dir=cache_dir, methods=["score"])
    assert rep.shift is not None and not rep.shift["flagged"] and "shift" not in rep.headline
    test = pd.read_csv(data["test"])
    test["text"] = _comments(60)  # the validation texts are all "x"
    test.to_csv(data["test"], index=False)
    rep = report(members, data, columns=columns, cache_dir=cache_dir, methods=["score"])
    assert rep.shift["flagged"] and "do not look like" in rep.headline["shift"]
    assert str(rep).splitlines()[0] == headline_line(rep.headline) and "do not look like" in str(rep).splitlines()[0]
    assert rep.to_dict()["shift"]["auc"] == pytest.approx(rep.shift["auc"])
    off = report(members, data, columns=columns, cache_dir=cache_dir, methods=["score"], check_shift=False)
    assert off.shift is None and "shift" not in off.headline
    np.testing.assert_allclose(off.headline["estimate"], rep.headline["estimate"])
