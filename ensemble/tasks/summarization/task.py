"""The summarization task (:data:`SUMMARIZATION`): generation members (``*ForConditionalGeneration``
and ``*ForCausalLM`` heads), whose candidate texts (the generation forward's, cached as a texts
payload) are aligned by row id, pooled per row and combined by minimum-Bayes-risk selection
(:mod:`.mbr`), and scored by ROUGE against the reference summaries of the data's label column, or
of several reference columns (:mod:`.rouge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.base import Task
from ensemble.tasks.summarization.rouge import COMPETITION_TYPES, TYPES, Rouge

__all__ = ["AlignedTexts", "SummaryTruth", "Summarization", "SUMMARIZATION", "align_texts", "metric_types",
           "summary_submission", "METRICS"]

# "rouge": the competition's R1 + R2 + RL F1 (each averaged over a row's references); or one type's F1
METRICS = ("rouge", *TYPES)


def metric_types(metric: str) -> tuple[str, ...]:
    """The ROUGE types whose F1 ``metric`` sums (:data:`METRICS`)."""
    if metric == "rouge":
        return COMPETITION_TYPES
    if metric in TYPES:
        return (metric,)
    raise EnsembleError(f"metric must be one of {', '.join(METRICS)} for summarization (rouge: ROUGE-1 + ROUGE-2 + "
                        f"ROUGE-L F1, as AI Stages scores); got {metric!r}")


@dataclass
class SummaryTruth:
    """A labelled split's reference summaries (a tuple of one or more texts per row) and how ROUGE
    scores on it: the split's ``rouge_tokenizer`` and ``rouge_aggregate`` (morphemes, mean)."""

    references: list
    tokenizer: str = "morphemes"
    aggregate: str = "mean"

    def __len__(self) -> int:
        return len(self.references)


@dataclass
class AlignedTexts:
    """Members' candidates on one split, in one row order.

    Attributes
    ----------
    ids : ndarray of str, shape (n,)
    members : tuple of str
    texts : list of tuple of tuple of str
        ``texts[m][i]``: member m's candidates for row i, best first (its n-best list).
    scores : list of list of ndarray
        ``scores[m][i]``: their sequence scores (mean log-probability per token, or what
        ``generate`` gives for beam search).
    y : SummaryTruth or None
        Set by the workflows on a labelled split.

    ``labels`` (none: generations have no class names), ``arrays`` and ``models`` are what the
    workflows ask every task's aligned outputs.
    """

    ids: np.ndarray
    members: tuple
    texts: list
    scores: list
    y: object = None
    logits: list = field(default_factory=list)

    @property
    def labels(self) -> tuple:
        return ()

    @property
    def arrays(self) -> list:
        return self.texts

    @property
    def models(self) -> tuple:
        return self.members

    def top(self, m: int) -> list[str]:
        """Member ``m``'s first candidate on each row (what it submits on its own)."""
        return [row[0] if row else "" for row in self.texts[m]]


def align_texts(outputs: Sequence, ids: Sequence[str] | None = None) -> AlignedTexts:
    """The members' :class:`~ensemble.core.outputs.Texts` in the row order of ``ids`` (default:
    the first member's); a row a member lacks, or has beyond ``ids``, is an error naming it."""
    if not outputs:
        raise EnsembleError("no members' generations to align; give at least one")
    order = [str(i) for i in (outputs[0].ids if ids is None else ids)]
    texts, scores = [], []
    for out in outputs:
        where = {str(i): r for r, i in enumerate(out.ids)}
        if len(where) != len(out.ids) or len(set(order)) != len(order):
            seen = [str(i) for i in out.ids] if len(where) != len(out.ids) else order
            twice = next(i for k, i in enumerate(seen) if i in seen[:k])
            raise EnsembleError(f"{out.model or 'a member'}: row id {twice!r} appears twice; every row needs an id of "
                                "its own")
        missing = next((i for i in order if i not in where), None)
        if missing is not None or len(where) != len(order):
            extra = next((str(i) for i in out.ids if str(i) not in set(order)), None)
            raise EnsembleError(f"{out.model or 'a member'}: its generations "
                                f"{'lack row ' + repr(missing) if missing is not None else 'have row ' + repr(extra)}"
                                " of the split: they were computed over another file; run ensemble predict on it")
        rows = [where[i] for i in order]
        texts.append(tuple(tuple(out.texts[r]) for r in rows))
        scores.append([np.asarray(out.scores[out.offsets[r]:out.offsets[r + 1]], dtype=np.float64) for r in rows])
    members = tuple(out.model or f"member {m}" for m, out in enumerate(outputs))
    return AlignedTexts(np.asarray(order, dtype=object), members, texts, scores)


def summary_submission(ids: Sequence[str], summaries: Sequence[str], *, sample_submission=None,
                       id_column: str = "fname", summary_column: str = "summary"):
    """The submission as a DataFrame: an id column and a summary column (AI Stages' ``fname,summary``),
    or the sample submission's two columns in its row order. A summary with a line break is kept
    as it is (pandas quotes it)."""
    import pandas as pd

    ids, summaries = [str(i) for i in ids], [str(s) for s in summaries]
    if sample_submission is None:
        return pd.DataFrame({id_column: ids, summary_column: summaries})
    from ensemble.data.sample_submission import read_sample, sample_order

    columns = list(read_sample(sample_submission).columns)
    if id_column not in columns:
        raise EnsembleError(f"{sample_submission}: no id column {id_column!r} (columns: {', '.join(columns)}); a sample "
                            "submission's first column is the test file's id column")
    sample, order = sample_order(sample_submission, ids)
    if len(sample.columns) != 2:
        raise EnsembleError(f"{sample_submission}: has columns {', '.join(sample.columns)}; a summarization sample "
                            "submission has two, the id and the summary (fname,summary)")
    frame = pd.DataFrame({sample.columns[0]: sample.iloc[:, 0].to_numpy(dtype=object),
                          sample.columns[1]: [summaries[i] for i in order]})
    frame.attrs["format"] = "summary"
    return frame


class Summarization(Task):
    """Summarization: one text per row, from generation members' candidates by MBR."""

    name = "summarization"
    heads = ("sequence-to-sequence generation", "causal language modelling")
    output = "candidate texts"
    forward = "generation"
    payload = "texts"
    combine_rules = ("mbr",)
    methods = ("uniform", "score", "best", "select", "optimize")
    metrics = METRICS
    weights_formats = ("ensemble.summary-weights/1",)
    members_noun = "generation models"
    split_settings = ("rouge_tokenizer", "rouge_aggregate")

    def greater_is_better(self, metric: str) -> bool:
        metric_types(metric)
        return True

    def metric_value(self, metric: str, proba, y: SummaryTruth) -> float:
        """``metric`` (:data:`METRICS`) of the summaries ``proba`` (one text per row) against
        ``y``'s references, over ``y.tokenizer``'s tokens, references aggregated by ``y.aggregate``."""
        types = metric_types(metric)
        scores = Rouge(y.tokenizer, types, y.aggregate).score(list(proba), y.references)
        return float(sum(scores[t] for t in types))

    def align(self, outputs: Sequence, ids: Sequence[str] | None = None, labels: Sequence[str] | None = None
              ) -> AlignedTexts:
        return align_texts(outputs, ids)

    def combine(self, arrays: Sequence, weights: Sequence[float] | None = None, rule: str | None = None):
        """Each row's MBR choice (ROUGE on morphemes) from the members' candidates ``arrays``
        (``AlignedTexts.texts``), a member's weight shared among its candidates, as the vote picks
        (:meth:`~ensemble.tasks.summarization.estimate.LabelledCandidates.picks`)."""
        from ensemble.tasks.summarization.mbr import mbr_choice, member_mass, rouge_utility, utility_matrix

        if rule not in (None, "mbr"):
            raise EnsembleError(f"combine must be mbr for {self.name}: generations are combined by minimum-Bayes-risk "
                                f"selection; got {rule!r}")
        w = np.ones(len(arrays)) if weights is None else np.asarray(weights, dtype=np.float64)
        utility, out = rouge_utility(), []
        for i in range(len(arrays[0])):
            pool = [(m, t) for m in range(len(arrays)) for t in arrays[m][i]]
            texts = [t for _, t in pool]
            out.append(texts[mbr_choice(utility_matrix(texts, utility), member_mass([m for m, _ in pool], w))])
        return out

    def fold_mean(self, arrays: Sequence) -> list[tuple[str, ...]]:
        """A fold group's candidates on a split every fold model generated over (``arrays[k][i]``:
        fold model k's candidates of row i): as many as one fold model gives (what the group
        contributes out of fold), the ones its fold models agree on most, by MBR over their pooled
        candidates (R1 + R2 + RL F1 on morphemes, fold models alike), each text once."""
        from ensemble.tasks.summarization.mbr import expected_utility, rouge_utility, utility_matrix

        utility = rouge_utility()
        out = []
        for i in range(len(arrays[0])):
            pool = list(dict.fromkeys(t for a in arrays for t in a[i]))  # each text once, in fold order
            mass = np.array([sum(a[i].count(t) / len(a[i]) for a in arrays if a[i]) for t in pool])
            order = np.argsort(-expected_utility(utility_matrix(pool, utility), mass / mass.sum()), kind="stable")
            out.append(tuple(pool[j] for j in order[:max(len(a[i]) for a in arrays)]))
        return out

    def mean_space(self, outputs):
        raise EnsembleError("generations have no mean: summarization members are combined by MBR selection")

    def predict(self, proba, labels: Sequence[str]):
        return np.asarray(proba, dtype=object)

    def submission(self, ids: Sequence[str], proba, labels: Sequence[str], *, sample_submission=None,
                   id_column: str = "fname", label_column: str = "summary", **_):
        return summary_submission(ids, proba, sample_submission=sample_submission, id_column=id_column,
                                  summary_column=label_column)

    def check_labels(self, split, names: Sequence[str], model: str) -> None:
        """Every row has a reference summary that is not empty."""
        self._references(split)

    def check_texts(self, split) -> None:
        """A row with nothing to summarize is refused, naming it."""
        if len(split.texts) > 1:
            raise EnsembleError(f"{split.path}: summarization reads one text column (the dialogue), got "
                                f"{' and '.join(split.text_columns)}; give text = \"<column>\"")
        empty = next((i for i, t in enumerate(split.texts[0]) if t is None or not str(t).strip()), None)
        if empty is not None:
            raise EnsembleError(f"{split.path}: row {empty + 1} (id {split.ids[empty]}): an empty "
                                f"{split.text_columns[0]}, with nothing to summarize; give the row its text, or drop it")

    @staticmethod
    def _references(split) -> list[tuple[str, ...]]:
        labels = np.asarray(split.labels, dtype=object)
        rows = labels.reshape(len(labels), -1)
        columns = split.label_columns or (split.label_column,)
        out = []
        for i, row in enumerate(rows):
            refs = tuple("" if v is None else str(v) for v in row)
            blank = next((c for c, r in zip(columns, refs) if not r.strip()), None)
            if blank is not None:
                raise EnsembleError(f"{split.path}: row {i + 1} (id {split.ids[i]}): column {blank} is an empty "
                                    "reference summary, which ROUGE cannot score; give the row its summary, or drop it")
            out.append(refs)
        return out

    def truth(self, split, labels: Sequence[str], model: str, index_order) -> SummaryTruth:
        """The reference summaries of ``split``: its label column, or one per label column."""
        return SummaryTruth(self._references(split), getattr(split, "rouge_tokenizer", None) or "morphemes",
                            getattr(split, "rouge_aggregate", None) or "mean")

    def read_as(self, ref) -> None:
        if ref.head.kind not in self.heads:
            raise EnsembleError(f"{ref.folder / 'config.json'}: {ref.head.describe()}; a summarization member is a "
                                "generation model (*ForConditionalGeneration, *ForCausalLM)")


SUMMARIZATION = Summarization()
