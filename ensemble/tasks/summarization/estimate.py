"""How well an ensemble of generations scores, fitted and estimated over rows.

Each labelled row's candidates (every member's n-best list, pooled) are scored once against each
other (the MBR utilities, :mod:`.mbr`) and once against the row's references (their quality, the
task's metric): :class:`LabelledCandidates`. A rule's member weights then pick a candidate per
row by MBR at the cost of a matrix-vector product, so that fitting weights and cross-validating
that fit reuse the same counts.

The utilities never see a reference, and the references never choose among candidates on the rows
they score: a fitted rule is estimated by fitting it on the other folds' rows and scoring the
held-out rows' choices, pooled over folds. The reference figure is the best single member (its
first candidate), chosen out of fold the same way. The per-row oracle (the candidate the
references like best) is an upper bound no method reaches without the references.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.summarization.mbr import mbr_choice, member_mass, rouge_utility, utility_matrix
from ensemble.tasks.summarization.rouge import Rouge
from ensemble.tasks.summarization.task import METRICS, AlignedTexts, metric_types

__all__ = ["RULES", "FORMAT", "LabelledCandidates", "SummaryFit", "SummaryEstimate", "candidates_of", "fit_rule", "choose",
           "estimate_rules", "row_folds", "oracle"]

# the rules a summarization vote fits or takes: uniform (every member alike), score (each by its
# metric on the fitting rows), best (the best member's own first candidate), select (members chosen
# greedily, with replacement, as Caruana's ensemble selection), optimize (weights searched)
RULES = ("uniform", "score", "best", "select", "optimize")
_SEARCH = 64  # weight vectors optimize tries (Dirichlet draws, beside uniform and the score weights)


@dataclass
class LabelledCandidates:
    """Rows' pooled candidates with their utilities against each other and, on labelled rows,
    their quality against the references.

    Attributes
    ----------
    al : AlignedTexts
    texts : list of tuple of str
        Row i's pooled candidates, members in order, each member's n-best list in its order.
    member_of : list of ndarray of int
        The member of each candidate.
    utility : list of ndarray, each (c_i, c_i)
        ``utility[i][a, b]``: candidate a scored with candidate b as its reference.
    quality : list of ndarray, each (c_i,), or None
        Each candidate's metric against the row's references (None: unlabelled rows).
    metric, tokenizer, aggregate : str
        What the utilities and the quality are of: the metric's ROUGE types over the tokenizer's
        tokens, a row's references aggregated by ``aggregate``.
    """

    al: AlignedTexts
    texts: list
    member_of: list
    utility: list
    quality: list | None
    metric: str
    tokenizer: str = "morphemes"
    aggregate: str = "mean"

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def n_members(self) -> int:
        return len(self.al.members)

    def first(self, i: int, m: int) -> int:
        """The index of member ``m``'s first candidate in row ``i``'s pool."""
        return int(np.flatnonzero(self.member_of[i] == m)[0])

    def member_quality(self, rows: np.ndarray | None = None) -> np.ndarray:
        """(M,) each member's mean quality (its first candidate) over ``rows`` (default all)."""
        rows = np.arange(len(self)) if rows is None else rows
        return np.array([np.mean([self.quality[i][self.first(i, m)] for i in rows]) if len(rows) else 0.0
                         for m in range(self.n_members)])

    def picks(self, weights: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Each row's MBR choice (an index into its pool) under member ``weights`` (M,): a
        member's weight shared among its candidates on the row."""
        rows = np.arange(len(self)) if rows is None else rows
        w = np.asarray(weights, dtype=np.float64)
        out = np.empty(len(rows), dtype=np.int64)
        for k, i in enumerate(rows):
            out[k] = mbr_choice(self.utility[i], member_mass(self.member_of[i], w))
        return out

    def of_members(self, kept: Sequence[int]) -> "LabelledCandidates":
        """These rows' pools with the candidates of the members ``kept`` (indices) only, their
        utilities and quality sliced, not computed again (all members kept: itself)."""
        from dataclasses import replace

        kept = list(kept)
        if kept == list(range(self.n_members)):
            return self
        al = replace(self.al, members=tuple(self.al.members[m] for m in kept), texts=[self.al.texts[m] for m in kept],
                     scores=[self.al.scores[m] for m in kept])
        where = {m: k for k, m in enumerate(kept)}
        idx = [np.flatnonzero(np.isin(mem, kept)) for mem in self.member_of]
        return replace(self, al=al, texts=[tuple(t[j] for j in ix) for t, ix in zip(self.texts, idx)],
                       member_of=[np.array([where[m] for m in mem[ix]], dtype=np.int64)
                                  for mem, ix in zip(self.member_of, idx)],
                       utility=[u[np.ix_(ix, ix)] for u, ix in zip(self.utility, idx)],
                       quality=None if self.quality is None else [q[ix] for q, ix in zip(self.quality, idx)])

    def scored(self, choice: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The quality of the candidates ``choice`` on ``rows``."""
        return np.array([self.quality[i][c] for i, c in zip(rows, choice)])


def candidates_of(al: AlignedTexts, references: Sequence | None = None, *, metric: str = "rouge",
                  tokenizer: str = "morphemes", aggregate: str = "mean",
                  utility: Callable[[str, str], float] | None = None, progress: bool = False) -> LabelledCandidates:
    """Rows' pooled candidates, their utilities (``utility(candidate, reference)``; default: the
    F1 of ``metric``'s ROUGE types summed, over ``tokenizer``'s tokens, once per pair) and, with
    ``references`` (one or more per row), their quality by ``metric``."""
    from tqdm.auto import tqdm

    types = metric_types(metric)
    rouge = Rouge(tokenizer, types, aggregate)
    utility = utility or rouge_utility(rouge, types)  # one Rouge: each text counted once for both
    n = len(al.ids)
    if references is not None and len(references) != n:
        raise EnsembleError(f"got {len(references)} rows of references for {n} rows of candidates")
    texts, member_of, utilities, quality = [], [], [], [] if references is not None else None
    for i in tqdm(range(n), desc="MBR utilities", unit="row", disable=None if progress else True, leave=False):
        none = next((m for m in range(len(al.members)) if not al.texts[m][i]), None)
        if none is not None:
            raise EnsembleError(f"row {al.ids[i]!r}: member {al.members[none]} has no candidate; generate every row "
                                "with every member (ensemble predict)")
        pool = [(m, t) for m in range(len(al.members)) for t in al.texts[m][i]]
        cands = tuple(t for _, t in pool)
        texts.append(cands)
        member_of.append(np.array([m for m, _ in pool], dtype=np.int64))
        utilities.append(utility_matrix(cands, utility))
        if references is not None:
            refs = [references[i]] if isinstance(references[i], str) else list(references[i])
            quality.append(np.array([sum(rouge.row(c, refs)[t][2] for t in types) for c in cands]))
    return LabelledCandidates(al, texts, member_of, utilities, quality, metric, tokenizer, aggregate)


FORMAT = "ensemble.summary-weights/1"


@dataclass
class SummaryFit:
    """A rule as fitted: its member weights (MBR over the pooled candidates), or, for ``best``,
    the one member whose first candidate is submitted.

    As a weights file (:meth:`save`, :meth:`load`, format :data:`FORMAT`) it also keeps what
    the fit depends on beyond the members and the data, checked before it is reused: the metric,
    the ROUGE tokenizer and aggregation, and the generate settings of the candidates; ``meta``
    holds the members' digests and the validation data it was fitted on."""

    method: str
    weights: np.ndarray
    members: tuple
    metric: str
    apparent: float | None = None
    meta: dict = field(default_factory=dict)
    tokenizer: str = "morphemes"
    aggregate: str = "mean"
    generate: dict = field(default_factory=dict)

    @property
    def labels(self) -> tuple:
        """No output names (the workflows compare them with the members')."""
        return ()

    def save(self, path) -> None:
        """The weights file, with a checksum of its content, written atomically."""
        from ensemble.io.weightsfile import write_sealed

        doc = {"format": FORMAT, "task": "summarization", "method": self.method, "members": list(self.members),
               "weights": [float(w) for w in self.weights], "metric": self.metric, "rouge_tokenizer": self.tokenizer,
               "rouge_aggregate": self.aggregate, "generate": dict(self.generate), "apparent": self.apparent,
               "meta": dict(self.meta)}
        write_sealed(path, doc)

    @classmethod
    def load(cls, path) -> "SummaryFit":
        """A weights file :meth:`save` wrote, its checksum and every field checked: a one-line
        error naming the file otherwise."""
        from ensemble.io.weightsfile import read_sealed

        return read_sealed(path, FORMAT, "a summarization weights file", cls._checked)

    @classmethod
    def _checked(cls, d) -> "SummaryFit":
        from ensemble.core.options import ALLOWED

        if d["method"] not in (*RULES, "fixed"):
            raise ValueError(f"method {d['method']!r} is not a rule of this version")
        members = tuple(str(m) for m in d["members"])
        w = np.asarray(d["weights"], dtype=np.float64)
        if w.shape != (len(members),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(members)} finite numbers >= 0, not all zero")
        if d["metric"] not in METRICS:
            raise ValueError(f"metric {d['metric']!r} is not one of {', '.join(METRICS)}")
        if d["rouge_tokenizer"] not in ALLOWED["rouge_tokenizer"] or d["rouge_aggregate"] not in ALLOWED["rouge_aggregate"]:
            raise ValueError("rouge_tokenizer or rouge_aggregate is not one this version reads")
        if not isinstance(d["generate"], dict):
            raise ValueError("generate must be a table of settings")
        apparent = d["apparent"]
        return cls(d["method"], w, members, d["metric"], None if apparent is None else float(apparent),
                   dict(d["meta"]), d["rouge_tokenizer"], d["rouge_aggregate"], dict(d["generate"]))

    @property
    def models(self) -> tuple:
        """The members, by the name every task's fitted weights give them."""
        return self.members

    def choose(self, lc: LabelledCandidates, rows: np.ndarray | None = None) -> np.ndarray:
        return choose(lc, self.method, self.weights, rows)


def choose(lc: LabelledCandidates, method: str, weights: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Each row's candidate (an index into its pool) under a fitted rule."""
    rows = np.arange(len(lc)) if rows is None else rows
    if method == "best":
        m = int(np.argmax(weights))
        return np.array([lc.first(i, m) for i in rows], dtype=np.int64)
    return lc.picks(weights, rows)


def _check_rule(method: str) -> None:
    if method not in RULES:
        raise EnsembleError(f"method must be one of {', '.join(RULES)} for summarization; got {method!r}")


def fit_rule(lc: LabelledCandidates, method: str, rows: np.ndarray | None = None, *, seed: int = 0) -> SummaryFit:
    """``method`` (:data:`RULES`) fitted on the labelled ``rows`` (default all) of ``lc``."""
    _check_rule(method)
    rows = np.arange(len(lc)) if rows is None else np.asarray(rows)
    M = lc.n_members
    if method == "uniform":
        w = np.full(M, 1.0 / M)
    elif lc.quality is None:
        raise EnsembleError(f"--weights {method} is fitted on labelled rows; give the validation split's references")
    elif method == "best":
        w = np.eye(M)[int(np.argmax(lc.member_quality(rows)))]
    elif method == "score":
        q = np.clip(lc.member_quality(rows), 1e-9, None)
        w = q / q.sum()
    elif method == "select":
        w = _select(lc, rows)
    else:
        w = _search(lc, rows, seed)
    return SummaryFit(method, w, tuple(lc.al.members), lc.metric, tokenizer=lc.tokenizer, aggregate=lc.aggregate)


def _select(lc: LabelledCandidates, rows: np.ndarray, steps: int = 10) -> np.ndarray:
    """Caruana's ensemble selection over MBR: members added one at a time, with replacement, each
    the one whose addition scores best on ``rows`` (the earlier member on ties); the weights are
    how often each was added, at the best step."""
    counts = np.zeros(lc.n_members)
    best, best_counts = -np.inf, None
    for _ in range(steps):
        scores = []
        for m in range(lc.n_members):
            trial = counts.copy()
            trial[m] += 1
            scores.append(float(lc.scored(lc.picks(trial, rows), rows).mean()))
        m = int(np.argmax(scores))
        counts[m] += 1
        if scores[m] > best + 1e-12:
            best, best_counts = scores[m], counts.copy()
    return best_counts / best_counts.sum()


def _search(lc: LabelledCandidates, rows: np.ndarray, seed: int) -> np.ndarray:
    """The member weights whose MBR choices score best on ``rows``: uniform, the score weights
    and Dirichlet draws tried, the earliest kept on ties (uniform first)."""
    M = lc.n_members
    q = np.clip(lc.member_quality(rows), 1e-9, None)
    tries = [np.full(M, 1.0 / M), q / q.sum(), *np.random.default_rng(seed).dirichlet(np.ones(M), size=_SEARCH)]
    best, best_w = -np.inf, tries[0]
    for w in tries:
        s = float(lc.scored(lc.picks(w, rows), rows).mean())
        if s > best + 1e-12:
            best, best_w = s, w
    return np.asarray(best_w, dtype=np.float64)


@dataclass
class SummaryEstimate:
    """One rule's metric on the scored rows, cross-validated, with its interval; its paired
    difference from the best single member (chosen out of fold) and from uniform, each with an
    interval; and ``apparent``: fitted on every row and scored on them."""

    method: str
    score: float
    interval: tuple
    vs_best: float
    vs_best_interval: tuple
    vs_uniform: float
    vs_uniform_interval: tuple
    apparent: float | None = None
    rows: np.ndarray = field(default=None, repr=False)
    choices: np.ndarray = field(default=None, repr=False)

    @property
    def cross_validated(self) -> float:
        """The out-of-fold figure (:attr:`score`), by the name every task's estimates give it."""
        return self.score

    @property
    def sure_gain_vs_uniform(self) -> bool:
        from ensemble.estimates.resampling import sure_gain

        return self.method != "uniform" and sure_gain(self.vs_uniform_interval)


def row_folds(n: int, folds=5, seed: int = 0) -> np.ndarray:
    """Each row's fold: ``folds`` given per row, or K shuffled folds of near-equal size."""
    if not isinstance(folds, (int, np.integer)):
        f = np.asarray(folds)
        if f.shape != (n,):
            raise EnsembleError(f"folds: one fold per row expected ({n}), got shape {f.shape}")
        if len(np.unique(f)) < 2:
            raise EnsembleError(f"folds: the rows are in {len(np.unique(f))} fold; an estimate out of fold needs two or "
                                "more (each fold's rows scored by a fit on the others)")
        return f
    if not 2 <= int(folds) <= n:
        raise EnsembleError(f"folds must be between 2 and the number of rows ({n}); got {folds}")
    return np.random.default_rng(seed).permutation(np.arange(n) % int(folds))


def estimate_rules(lc: LabelledCandidates, methods: Sequence[str] = RULES, *, folds=5, seed: int = 0,
                   confidence: float = 0.95, apparent: bool = True) -> dict[str, SummaryEstimate]:
    """Every rule of ``methods`` estimated out of fold over ``lc``'s labelled rows, against the
    best single member chosen out of fold and against uniform (normal intervals of the paired
    per-row differences)."""
    from ensemble.estimates.resampling import normal_interval

    if lc.quality is None:
        raise EnsembleError("estimating a rule needs labelled rows (reference summaries)")
    for m in methods:
        _check_rule(m)
    n = len(lc)
    fold = row_folds(n, folds, seed)
    per_row = {m: np.empty(n) for m in {*methods, "uniform", "best"}}
    choices = {m: np.empty(n, dtype=np.int64) for m in per_row}
    for k in np.unique(fold):
        held, fit_rows = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
        for m in per_row:
            c = fit_rule(lc, m, fit_rows, seed=seed).choose(lc, held)
            choices[m][held], per_row[m][held] = c, lc.scored(c, held)
    out = {}
    for m in methods:
        d_best, d_uni = per_row[m] - per_row["best"], per_row[m] - per_row["uniform"]
        seen = float(lc.scored(fit_rule(lc, m, seed=seed).choose(lc), np.arange(n)).mean()) if apparent else None
        out[m] = SummaryEstimate(m, float(per_row[m].mean()), normal_interval(per_row[m], confidence),
                                 float(d_best.mean()), normal_interval(d_best, confidence), float(d_uni.mean()),
                                 normal_interval(d_uni, confidence), seen, per_row[m], choices[m])
    return out


def oracle(lc: LabelledCandidates) -> np.ndarray:
    """Each row's best candidate by its references (an upper bound: it reads the references)."""
    return np.array([float(q.max()) for q in lc.quality])
