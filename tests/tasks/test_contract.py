"""The task contract: every task registered in ``ensemble.tasks.TASKS`` goes through the same
checks, in the spirit of scikit-learn's ``parametrize_with_checks``. A task added to ``TASKS`` is
tested here without editing this file; it only needs synthetic members
(``tests/synthetic_members.make_task_members``) and a reference for each metric it names
(:data:`REFERENCES`), and the test says so when either is missing.

The checks: its workflow parts are bound; members whose outputs name their classes (targets,
labels) in another order align by name; the uniform combination is the mean of the members'
outputs in the space the task averages; every metric equals an independent reference
(scikit-learn, scipy); a fitted method is cross-validated (its estimate is not its in-sample
score); a vote follows the sample submission's rows and columns; a label column that does not fit
the task is refused in one line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import (accuracy_score, cohen_kappa_score, f1_score, log_loss, mean_absolute_error,
                             mean_squared_error, roc_auc_score)

from ensemble.core.errors import EnsembleError
from ensemble.core.outputs import Logits, Ragged
from ensemble.tasks import TASKS
from ensemble.tasks.base import Task

from tests.synthetic_members import make_task_members

TASK_LIST = list(TASKS.values())
IDS = list(TASKS)


def _rmse(p, y):
    return float(np.sqrt(mean_squared_error(y, p)))


def _seqeval_f1(p, y):
    """seqeval's entity F1 of each character's most probable tag (its own BIO decoding: an I-
    after O starts an entity), against the gold spans as character tags."""
    from seqeval.metrics import f1_score as seqeval_f1

    from ensemble.tasks.entities.spans import tags_from_spans

    tags = np.asarray(y.tags)
    pred = [list(tags[p[a:b].argmax(axis=1)]) for a, b in zip(y.offsets[:-1], y.offsets[1:])]
    true = [tags_from_spans(s, len(t)) for s, t in zip(y.spans, y.texts)]
    return float(seqeval_f1(true, pred))


# metric name -> reference(pred or proba, y) from scikit-learn or scipy; the task's own value must equal it
REFERENCES = {
    "accuracy": lambda p, y: accuracy_score(y, p.argmax(axis=1)),
    "macro_f1": lambda p, y: f1_score(y, p.argmax(axis=1), average="macro", labels=range(p.shape[1]),
                                      zero_division=0),
    "log_loss": lambda p, y: log_loss(y, p, labels=range(p.shape[1])),
    "roc_auc": lambda p, y: roc_auc_score(y, p, multi_class="ovr") if p.shape[1] > 2 else roc_auc_score(y, p[:, 1]),
    "qwk": lambda p, y: cohen_kappa_score(y, p.argmax(axis=1), weights="quadratic", labels=range(p.shape[1])),
    "pearson": lambda p, y: float(np.mean([pearsonr(p[:, j], y[:, j])[0] for j in range(y.shape[1])])),
    "spearman": lambda p, y: float(np.mean([spearmanr(p[:, j], y[:, j])[0] for j in range(y.shape[1])])),
    "rmse": lambda p, y: _rmse(p, y),  # over every value
    "mcrmse": lambda p, y: float(np.mean([_rmse(p[:, j], y[:, j]) for j in range(y.shape[1])])),
    "mae": lambda p, y: float(np.mean([mean_absolute_error(y[:, j], p[:, j]) for j in range(y.shape[1])])),
    "f1_micro": lambda p, y: f1_score(y, p >= 0.5, average="micro", zero_division=0),
    "f1_macro": lambda p, y: f1_score(y, p >= 0.5, average="macro", zero_division=0),
    "f1_samples": lambda p, y: f1_score(y, p >= 0.5, average="samples", zero_division=0),
    "f1": _seqeval_f1,  # entities: entity-level micro F1, exact span and type
    # summarization: rouge-score's F1 per row, averaged over the row's references, then over rows
    "rouge": lambda p, y: sum(_rouge_score(t, p, y) for t in ("rouge1", "rouge2", "rougeL")),
    **{t: (lambda t: lambda p, y: _rouge_score(t, p, y))(t) for t in ("rouge1", "rouge2", "rougeL", "rougeLsum")},
}


def _rouge_score(kind: str, predictions, y) -> float:
    """``rouge-score``'s F1 of ``kind``, each row's averaged over its references, then over rows."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer([kind], use_stemmer=False)
    return float(np.mean([np.mean([scorer.score(r, p)[kind].fmeasure for r in refs])
                          for p, refs in zip(predictions, y.references)]))


def _mean_space(task: Task, a: np.ndarray) -> np.ndarray:
    """One member's outputs in the space the task's default rule averages: probabilities of a
    softmax, raw values, or a sigmoid per label (what the uniform vote is the mean of)."""
    return task.mean_space(np.asarray(a, dtype=np.float64))


def _outputs(task: Task, rng, n: int = 40, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(combined outputs in the task's space, truth) for the metric checks."""
    if task.payload == "texts":  # one summary per row, two references each, scored on rouge-score's tokens
        from tests.synthetic_members import draw_summaries, noisy_summary

        refs = draw_summaries(2 * n, rng)
        references = [(refs[2 * i], refs[2 * i + 1]) for i in range(n)]
        predictions = [noisy_summary(r[0], 0.6, rng) for r in references]
        y = task.truth(_ReferenceSplit(references), (), "member", None)
        y.tokenizer = "rouge_score"
        return predictions, y
    if task.payload == "ragged":  # per-character tag probabilities of texts without spaces, and their gold spans
        from tests.synthetic_members import ENTITY_TAGS, draw_entities

        texts, gold = draw_entities(n, rng)
        texts = [t.replace(" ", "x") for t in texts]  # no whitespace: nothing trimmed, as seqeval trims nothing
        offsets = np.concatenate([[0], np.cumsum([len(t) for t in texts])])
        p = task.mean_space(rng.dirichlet(np.ones(len(ENTITY_TAGS)) * 0.5, size=offsets[-1]))
        return p, task.truth(_TextSplit(texts, gold), ENTITY_TAGS, "member", None)
    z = rng.normal(size=(n, k))
    p = task.mean_space(z)
    if task.name == "classification":
        return p, rng.integers(0, k, size=n)
    if task.thresholded:
        return p, (rng.random((n, k)) < 0.4).astype(float)
    return p, p + rng.normal(scale=0.5, size=(n, k))


class _TextSplit:
    """A labelled split of texts and their gold spans, as ``Task.truth`` reads one."""

    def __init__(self, texts, gold):
        import json
        from pathlib import Path

        self.texts, self.text_columns, self.path = (list(texts),), ("text",), Path("synthetic.csv")
        self.labels = np.array([json.dumps([list(s) for s in g]) for g in gold])


class _ReferenceSplit:
    """A labelled split of two reference columns, as ``Task.truth`` reads one."""

    def __init__(self, references):
        from pathlib import Path

        self.labels, self.path = np.array(references, dtype=object), Path("synthetic.csv")
        self.label_columns, self.label_column, self.ids = ("a", "b"), "a", np.arange(len(references)).astype(str)


def _two_members(task: Task, rng):
    """Two members' outputs over the same rows and names, the second's rows shuffled and its
    names in another order: Logits (n, 3), or per-unit tag probabilities."""
    ids = np.array([f"r{i}" for i in range(12)])
    perm_rows = rng.permutation(12)
    if task.payload == "texts":  # two candidates per row, the second member's rows shuffled
        from ensemble.core.outputs import Texts
        from tests.synthetic_members import draw_summaries

        texts = [draw_summaries(2, rng) for _ in range(12)]
        scores = rng.normal(size=24)
        second = Texts(ids[perm_rows], [texts[r] for r in perm_rows],
                       np.concatenate([scores[2 * r:2 * r + 2] for r in perm_rows]), None, "second")
        return Texts(ids, texts, scores, None, "first"), second, ()
    if task.payload == "ragged":
        names = ("O", "B-X", "I-X")
        lengths = rng.integers(0, 6, size=12)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        values = rng.dirichlet(np.ones(3), size=offsets[-1]).astype(np.float32)
        units = np.concatenate([np.arange(offsets[r], offsets[r + 1]) for r in perm_rows])
        order = [2, 0, 1]
        second = Ragged(ids[perm_rows], values[units][:, order],
                        np.concatenate([[0], np.cumsum(lengths[perm_rows])]), tuple(names[i] for i in order), "second")
        return Ragged(ids, values, offsets, names, "first"), second, names
    names = ("a", "b", "c")
    values = rng.normal(size=(12, 3)).astype(np.float32)
    first = Logits(ids, values, names, "first")
    order = [2, 0, 1]
    second = Logits(ids[perm_rows], values[perm_rows][:, order], tuple(names[i] for i in order), "second")
    return first, second, names


@pytest.fixture(scope="module", params=IDS)
def members(request, tmp_path_factory):
    """Each task's synthetic members: (task, members, data, cache_dir, columns, names, root)."""
    root = tmp_path_factory.mktemp(f"contract-{request.param}")
    made = make_task_members(request.param, root)
    return (TASKS[request.param], *made, root)


@pytest.mark.parametrize("task", TASK_LIST, ids=IDS)
def test_every_hook_is_bound(task):
    assert set(task.HOOKS) <= set(task.parts), f"{task.name}: bind every hook in its package's __init__"
    assert task.metrics and task.primary == task.metrics[0]
    assert task.combine_rules and task.weights_formats
    for m in task.metrics:
        assert isinstance(task.greater_is_better(m), bool)


@pytest.mark.parametrize("task", TASK_LIST, ids=IDS)
def test_members_align_by_name_whatever_their_order(task):
    first, second, names = _two_members(task, np.random.default_rng(0))
    al = task.align([first, second])
    assert tuple(al.labels) == names
    np.testing.assert_array_equal(al.arrays[0], al.arrays[1])


@pytest.mark.parametrize("task", TASK_LIST, ids=IDS)
def test_uniform_combination_is_the_mean_of_members(task):
    rng = np.random.default_rng(1)
    if task.payload == "texts":  # generations have no mean: uniform is MBR over the pooled candidates
        _uniform_is_mbr_by_brute_force(task, rng)
        return
    arrays = [rng.normal(size=(30, 4)) for _ in range(3)]
    combined = task.combine(arrays, None)
    reference = np.mean([_mean_space(task, a) for a in arrays], axis=0)
    np.testing.assert_allclose(combined, reference, rtol=1e-10, atol=1e-12)


def _uniform_is_mbr_by_brute_force(task: Task, rng) -> None:
    """Each row's choice is the pooled candidate with the highest mean ROUGE (R1 + R2 + RL F1, on
    morphemes) against every candidate, itself included, each member's weight shared among its
    candidates."""
    from tests.synthetic_members import draw_summaries

    from ensemble.tasks.summarization.rouge import Rouge

    arrays = [[tuple(draw_summaries(k, rng)) for _ in range(15)] for k in (1, 2, 3)]
    chosen = task.combine(arrays, None)
    rouge = Rouge("morphemes")
    for i, got in enumerate(chosen):
        pool = [(t, 1.0 / len(a[i])) for a in arrays for t in a[i]]
        best, best_u = None, -1.0
        for a, (text, _) in enumerate(pool):
            every = [(w, sum(f for _, _, f in rouge.pair(text, t2).values())) for t2, w in pool]
            u = sum(w * v for w, v in every) / sum(w for w, _ in every)
            if u > best_u + 1e-12:
                best, best_u = text, u
        assert got == best, i


@pytest.mark.parametrize("task,metric", [(t, m) for t in TASK_LIST for m in t.metrics],
                         ids=[f"{t.name}-{m}" for t in TASK_LIST for m in t.metrics])
def test_every_metric_equals_its_reference(task, metric):
    assert metric in REFERENCES, f"{task.name}'s metric {metric!r} has no reference in tests/tasks/test_contract.py"
    rng = np.random.default_rng(2)
    p, y = _outputs(task, rng)
    assert task.metric_value(metric, p, y) == pytest.approx(REFERENCES[metric](p, y), rel=1e-9, abs=1e-12)


def test_a_fitted_method_is_cross_validated(members):
    """The report estimates optimize out of fold: its cross-validated figure is not its apparent
    one, and the headline says what its figure is of."""
    from ensemble import report

    task, models, data, cache_dir, columns, names, root = members
    rep = report(models, data, columns=columns, cache_dir=cache_dir, methods=["optimize"])
    head = rep.headline
    assert head["of"] == "cross-validated" and head["estimate"] is not None
    d = rep.to_dict()
    assert "optimize" in str(d)
    e = rep.estimates["optimize"]
    fitted_on_all = e.apparent if hasattr(e, "apparent") else None
    cross_validated = e.cross_validated
    assert fitted_on_all != cross_validated


# a label cell of each task's sample submission, where it is not a class name or a number
SAMPLE_CELL = {"entities": "[]", "summarization": "a summary"}


def test_a_vote_follows_the_sample_submission(members, tmp_path):
    """Rows in the sample's order (shuffled here), the sample's columns, each test id once."""
    from ensemble import vote

    task, models, data, cache_dir, columns, names, root = members
    test = pd.read_csv(data["test"])
    ids = test["id"].sample(frac=1.0, random_state=0).tolist()
    sample = pd.DataFrame({"id": ids})
    if task.name == "classification":
        sample["label"] = names[0]
    else:
        for c in names:
            sample[c] = SAMPLE_CELL.get(task.name, 0)
    path = tmp_path / "sample.csv"
    sample.to_csv(path, index=False)
    sub = vote(models, data, "optimize", columns=columns, cache_dir=cache_dir, sample_submission=path,
               submissions_dir=tmp_path / "subs", weights_dir=tmp_path / "w")
    written = pd.read_csv(sub.attrs["path"])
    assert list(written.columns) == list(sample.columns)
    assert written["id"].tolist() == ids
    assert sub.attrs["headline"]["method"] == "optimize"


def test_a_label_column_that_does_not_fit_is_refused(members, tmp_path):
    from ensemble import report

    task, models, data, cache_dir, columns, names, root = members
    bad = pd.read_csv(data["valid"])
    label_columns = columns.get("label", ["label"])
    label_columns = [label_columns] if isinstance(label_columns, str) else label_columns
    bad[label_columns[0]] = "not-a-" + bad[label_columns[0]].astype(str)  # text where a class / number / 0-1 is
    if task.payload == "texts":  # any text is a summary: an empty one is what does not fit
        bad.loc[3, label_columns[0]] = ""
    bad_path = tmp_path / "valid.csv"
    bad.to_csv(bad_path, index=False)
    with pytest.raises(EnsembleError) as e:
        report(models, {**data, "valid": bad_path}, columns=columns, cache_dir=cache_dir)
    assert "\n" not in str(e.value) and str(bad_path) in str(e.value)


def test_the_report_says_its_headline_first_and_shows_every_row(members):
    """The text starts with the headline; the page holds the headline's words and a table row for
    every member and every method estimated; the JSON holds the same headline."""
    import html
    from html.parser import HTMLParser

    from ensemble import report
    from ensemble.estimates.headline import headline_line

    task, models, data, cache_dir, columns, names, root = members
    rep = report(models, data, columns=columns, cache_dir=cache_dir, methods=["optimize", "select"])
    line = headline_line(rep.headline)
    assert str(rep).splitlines()[0] == line
    assert rep.to_dict()["headline"] == rep.headline

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.heads, self._in = [], False

        def handle_starttag(self, tag, attrs):
            self._in = tag == "th"

        def handle_data(self, data):
            if self._in and data.strip():
                self.heads.append(data.strip())

        def handle_endtag(self, tag):
            self._in = False

    page = rep.to_html(figures=False)
    assert html.escape(line) in page
    parsed = Rows()
    parsed.feed(page)
    for row in [*models, "uniform", "optimize", "select"]:
        assert row in parsed.heads, (row, parsed.heads[:40])


# options each task refuses (the vote's keyword: a value), and the defaults every task accepts
OTHER_TASKS_OPTIONS = {"clip": True, "threshold": 0.3, "adjust": "fit", "temperature": True, "calibrate": True,
                       "metric": "pearson", "prior": "0.5,0.5"}
DEFAULTS = {"clip": False, "threshold": None, "adjust": "none", "temperature": False, "calibrate": False,
            "metric": None, "adjust_metric": "accuracy"}


# the options each task applies; every other one in OTHER_TASKS_OPTIONS is refused
APPLIED = {"classification": {"adjust", "prior", "temperature", "calibrate"}, "regression": {"clip", "metric"},
           "multi_label": {"threshold", "metric"}, "entities": {"threshold", "metric"}, "summarization": {"metric"}}


@pytest.mark.parametrize("task", TASK_LIST, ids=IDS)
def test_every_option_is_applied_or_refused_before_any_output_is_read(task):
    """An option is never recorded and ignored: with the defaults every task's check passes; each
    option that a task does not apply is refused by its check, in one line naming the option."""
    task.check_options(dict(DEFAULTS), kind="method")
    task.check_options({**DEFAULTS, "threshold": "global"}, kind="method")
    applied = APPLIED.get(task.name)
    assert applied is not None, f"say which vote options {task.name} applies"
    for option, value in OTHER_TASKS_OPTIONS.items():
        if option in applied:
            continue
        with pytest.raises(EnsembleError) as e:
            task.check_options({**DEFAULTS, option: value}, kind="method")
        assert "\n" not in str(e.value) and option in str(e.value), (task.name, option, str(e.value))


@pytest.mark.parametrize("task", TASK_LIST, ids=IDS)
def test_every_metric_of_a_task_is_taken_and_every_other_refused_up_front(task):
    """``metric`` sets the primary metric for every task: each of its own metrics passes its
    check; another task's metric is refused in one line naming it ("accuracy", the report's
    default, stands for the task's own default metric in the regression and multi-label tasks)."""
    for metric in task.metrics:
        task.check_options({**DEFAULTS, "metric": metric}, kind="method")
    others = sorted({m for t in TASK_LIST for m in t.metrics} - set(task.metrics) - {"accuracy"})
    assert others, task.name
    for metric in others:
        with pytest.raises(EnsembleError) as e:
            task.check_options({**DEFAULTS, "metric": metric}, kind="method")
        assert "\n" not in str(e.value) and metric in str(e.value), (task.name, metric, str(e.value))


# the options report() takes that are some task's alone: (keyword, value the report is given)
REPORT_OPTIONS = {"adjust": "fit", "prior": "0.5,0.5", "threshold": 0.3, "clip": True}


def test_the_report_refuses_an_option_its_task_does_not_apply(members):
    """report() runs the task's check of the options as vote() does: an option its task does not
    apply is an error naming it, never a page that looks as if it had been applied."""
    from ensemble import report

    task, models, data, cache_dir, columns, names, root = members
    refused = [o for o in REPORT_OPTIONS if o not in APPLIED[task.name]]
    assert refused, task.name
    for option in refused:
        with pytest.raises(EnsembleError) as e:
            report(models, data, columns=columns, cache_dir=cache_dir, methods=["acc"], **{option: REPORT_OPTIONS[option]})
        assert "\n" not in str(e.value) and option in str(e.value), (task.name, option, str(e.value))
