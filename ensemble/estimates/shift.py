"""Do the test rows look like the validation rows? Every estimate "on unseen data" assumes they
do, and no resampling of the validation rows can see it when they do not (KorSTS: dev and test
differ in make-up). The unlabelled test rows are at hand, so two checks read them:

* the texts (:func:`adversarial_check`): a classifier telling validation texts from test texts on
  character n-grams, its cross-validated ROC AUC against the AUCs it reaches with the split
  labels permuted (what chance gives at these sizes). Task-free: it reads texts only.
* the members' outputs (:func:`output_shift`): each member's outputs in the space the ensemble
  averages (:meth:`~ensemble.tasks.base.Task.mean_space`: probabilities, values), column by
  column, on the rows the headline is estimated on against the test rows, by the two-sample
  Kolmogorov-Smirnov statistic. A member whose outputs move (its predicted class shares, its
  confidence, the range of its values) says what the texts may not: the rows differ where the
  ensemble's decisions are made.

:func:`check_shift` runs both for a vote or a report and gives the dict they record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

__all__ = ["ShiftCheck", "OutputShift", "adversarial_check", "output_shift", "check_shift", "shift_note"]

# said when the AUC is above every permuted one and at least this far above chance: same-source
# splits give 0.50-0.52, KorSTS dev against test 0.58
FLAG_AUC = 0.55


@dataclass(frozen=True)
class ShiftCheck:
    """What the adversarial check found.

    Attributes
    ----------
    auc : float
        Cross-validated ROC AUC of telling validation texts (0) from test texts (1).
    null : tuple of float
        The same AUC with the split labels permuted, once per permutation.
    p_value : float
        (1 + permuted AUCs >= ``auc``) / (1 + permutations).
    rows : tuple of int
        (validation rows, test rows) compared.
    flagged : bool
        ``auc`` above every permuted AUC, at least :data:`FLAG_AUC` and three of chance's standard
        deviations (the Mann-Whitney AUC's at these sizes) above 0.5.
    """

    auc: float
    null: tuple
    p_value: float
    rows: tuple
    flagged: bool

    def to_dict(self) -> dict:
        return {**asdict(self), "null": list(self.null), "rows": list(self.rows)}


def _joined(texts: Sequence[Sequence[str]]) -> list[str]:
    """A split's text columns (each a sequence of n texts) as one text per row."""
    return [" \u241e ".join(map(str, row)) for row in zip(*texts)]


def adversarial_check(valid_texts, test_texts, *, permutations: int = 9, folds: int = 3, seed: int = 0,
                      max_rows: int = 4000) -> ShiftCheck | None:
    """How well a classifier tells the validation texts from the test texts.

    Parameters
    ----------
    valid_texts, test_texts : sequence of sequences of str
        Each split's text columns (a sentence pair: two columns), n rows each.
    permutations : int, default 9
        Permuted-label refits for the null (the smallest p-value is 1 / (permutations + 1)).
    folds : int, default 3
        Stratified folds of the cross-validated AUC.
    seed : int, default 0
    max_rows : int, default 4000
        Each split is subsampled to this many rows (at random, with ``seed``) beyond it: the AUC's
        standard error is then about 0.005, and the check a few seconds at any size.

    Returns
    -------
    ShiftCheck, or None when either split has fewer than ``2 * folds`` rows.
    """
    from scipy.sparse import vstack
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(seed)
    a, b = _joined(valid_texts), _joined(test_texts)
    if min(len(a), len(b)) < 2 * folds:
        return None
    if len(a) > max_rows:
        a = [a[i] for i in np.sort(rng.choice(len(a), max_rows, replace=False))]
    if len(b) > max_rows:
        b = [b[i] for i in np.sort(rng.choice(len(b), max_rows, replace=False))]
    # character n-grams of 1-3 within words: spelling, script and vocabulary, whatever the language
    vec = HashingVectorizer(analyzer="char_wb", ngram_range=(1, 3), n_features=2 ** 17, alternate_sign=False,
                            norm=None, lowercase=False)
    X = TfidfTransformer(sublinear_tf=True).fit_transform(vstack([vec.transform(a), vec.transform(b)]).tocsr())
    y = np.r_[np.zeros(len(a), dtype=int), np.ones(len(b), dtype=int)]
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))

    def cv_auc(labels: np.ndarray) -> float:
        scores = np.empty(len(labels))
        for train, held in splits:
            model = LogisticRegression(C=1.0, max_iter=200, solver="liblinear").fit(X[train], labels[train])
            scores[held] = model.decision_function(X[held])
        return float(roc_auc_score(labels, scores))

    auc = cv_auc(y)
    null = tuple(cv_auc(rng.permutation(y)) for _ in range(permutations))
    p = (1 + sum(v >= auc for v in null)) / (1 + permutations)
    # chance's spread at these sizes (the Mann-Whitney AUC's standard deviation): at a few hundred
    # rows a side, same-source splits reach 0.55 by chance
    sd = float(np.sqrt((len(a) + len(b) + 1) / (12.0 * len(a) * len(b))))
    bar = max(FLAG_AUC, 0.5 + 3 * sd)
    return ShiftCheck(auc, null, float(p), (len(a), len(b)), bool(auc > max(null, default=0.5) and auc >= bar))


# a member's output column is said moved when its KS statistic is at least FLAG_KS (a tenth of the
# distribution's mass moved: noticeable in a decision, whatever the rows) and its p-value, Bonferroni
# over the member's columns, below FLAG_P (at a few hundred rows a side, chance stays near 0.15)
FLAG_KS = 0.1
FLAG_P = 1e-3


@dataclass(frozen=True)
class OutputShift:
    """The output column of one member that moved most between the two row sets.

    Attributes
    ----------
    member, column : str
    ks : float
        Two-sample Kolmogorov-Smirnov statistic of the column's values on the scored rows against
        the test rows.
    p_value : float
        Its asymptotic p-value, Bonferroni-corrected over the member's columns, with the test side
        counted as its rows (a fold group's K fold models each predict every test row: pooled, they
        are K correlated copies, never K times the rows).
    scored_mean, test_mean : float
        The column's mean on each side.
    flagged : bool
        ``ks >= FLAG_KS`` and ``p_value < FLAG_P``.
    """

    member: str
    column: str
    ks: float
    p_value: float
    scored_mean: float
    test_mean: float
    flagged: bool

    def to_dict(self) -> dict:
        return asdict(self)


def output_shift(task, outputs, labels: Sequence[str]) -> list[OutputShift]:
    """Each member's most moved output column.

    Parameters
    ----------
    task : Task
        The members' task: its ``mean_space`` gives the values compared.
    outputs : mapping of member name to (ndarray, list of ndarray)
        The member's outputs on the scored rows (n, C), and on the test rows: one (m, C) array per
        model that predicts them (a fold group's fold models when the scored rows are out of fold,
        each pooled; else one), every array in the column order ``labels``.
    labels : sequence of str
        The C column names.

    Returns
    -------
    list of OutputShift, one per member (none for a side with fewer than 5 rows).
    """
    found = []
    rng = np.random.default_rng(0)
    for name, (scored, tests) in outputs.items():
        # at most MAX_ROWS rows a side, drawn at random: the KS statistic's error is then under 0.03,
        # and 300 classes cost what 3 do at 2,000 rows
        a = task.mean_space(_some(scored, rng))
        b = np.concatenate([task.mean_space(_some(t, rng)) for t in tests])
        n, m = len(a), min(len(tests[0]), MAX_ROWS)
        if min(n, m) < 5:
            continue
        ks = _ks_columns(a, b)
        j = int(ks.argmax())
        p = min(1.0, _kolmogorov_sf(ks[j] * np.sqrt(n * m / (n + m))) * a.shape[1])
        found.append(OutputShift(name, str(labels[j]), float(ks[j]), p, float(a[:, j].mean()), float(b[:, j].mean()),
                                 bool(ks[j] >= FLAG_KS and p < FLAG_P)))
    return found


MAX_ROWS = 4000


def _some(x: np.ndarray, rng) -> np.ndarray:
    x = np.asarray(x)
    return x if len(x) <= MAX_ROWS else x[np.sort(rng.choice(len(x), MAX_ROWS, replace=False))]


def _ks_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The two-sample Kolmogorov-Smirnov statistic (scipy's ``ks_2samp(a, b).statistic``: the
    largest gap between the two empirical distribution functions) of every column of ``a``
    (n, C) against the same column of ``b`` (m, C), at once: both sorted together along the rows,
    the two functions are cumulative counts, compared at the last of each run of tied values."""
    n, m = len(a), len(b)
    both = np.concatenate([a, b]).astype(np.float64)
    order = np.argsort(both, axis=0, kind="stable")
    values = np.take_along_axis(both, order, axis=0)
    from_a = order < n
    gap = np.abs(np.cumsum(from_a, axis=0) / n - np.cumsum(~from_a, axis=0) / m)
    last = np.ones_like(from_a)
    last[:-1] = values[1:] != values[:-1]  # within a tie, only its last row is a point of both functions
    return np.where(last, gap, 0.0).max(axis=0)


def _kolmogorov_sf(x: float) -> float:
    """P(K > x) for Kolmogorov's limiting distribution (scipy's ``kstwobign.sf``), by its series
    2 sum (-1)^(k-1) exp(-2 k^2 x^2): the asymptotic p-value of a KS statistic scaled by
    sqrt(n m / (n + m)). Here so that a vote imports no more of scipy than it did."""
    if x < 0.2:
        return 1.0  # the series converges slowly there; the tail is 1 - 1e-20
    k = np.arange(1, 101)
    return float(min(1.0, max(0.0, 2 * np.sum((-1.0) ** (k - 1) * np.exp(-2 * k ** 2 * x * x)))))


# the text check of a (scored rows, test rows) pair, by the splits' digests: a run's report and
# vote, and every vote of one project, read the same two splits
_TEXTS: dict = {}
_SAID: set = set()


def _text_check(source, scored_split, test_split, compute: bool):
    """The text check of the two splits: in this process's memo, else stored beside the estimates
    (:class:`~ensemble.estimates.store.EstimateStore`), else computed and stored when ``compute``
    (a report), else None (a vote: it imports no scikit-learn, and reads what a report stored)."""
    from ensemble.estimates.store import input_digest

    key = input_digest(f"{scored_split.digest}|{test_split.digest}", {"check": "texts", "version": 1})
    store = source.estimates
    if key in _TEXTS:
        if compute and not store.path_for(key).is_file():  # stored where this source's votes will look
            _put(store, key, _TEXTS[key])
        return _TEXTS[key], True
    hit = store.get(key)
    if hit is not None:
        value = hit[0]
        check = None if value is None else ShiftCheck(value["auc"], tuple(value["null"]), value["p_value"],
                                                        tuple(value["rows"]), value["flagged"])
    elif compute:
        check = adversarial_check(scored_split.texts, test_split.texts)
        _put(store, key, check)
    else:
        return None, False
    if len(_TEXTS) > 64:
        _TEXTS.clear()
    _TEXTS[key] = check
    return check, True


def _put(store, key: str, check) -> None:
    try:
        store.put(key, None if check is None else check.to_dict(), {})
    except OSError:
        pass  # computed again next time


def check_shift(source, scored_split, test_split, scored_al=None, *, oof: bool = False,
                texts: bool = True, members=None, test_al=None) -> dict | None:
    """Both checks of the test rows against the rows the headline is estimated on, as the dict a
    report's ``shift`` and a vote's sidecar record; said in a warning when they differ.

    Parameters
    ----------
    source : CachedOutputs
        The members' outputs (``refs``, ``task``, ``logits``, ``named``, ``aligned``).
    scored_split, test_split : Split
        The rows the headline is estimated on (the validation split, the holdout, or the training
        split's out-of-fold rows) and the test rows.
    scored_al : Aligned, optional
        The members' outputs on ``scored_split`` when already read (in ``source.refs``' order).
    oof : bool, default False
        ``scored_split`` is the training split, its rows out of fold: a fold group's test outputs
        are then its fold models' each (pooled), never their mean (whose spread is narrower than
        any single model's).
    texts : bool, default True
        Compute the text check when no report has stored it for these splits (it needs
        scikit-learn and seconds); False: read it only (a vote), else record ``texts`` as not
        checked.
    members : collection of str, optional
        The members whose outputs are compared (default: every one): those the headline's
        ensembles use, never a member marked trained on the scored rows (its confidence there
        is not a shift).
    test_al : Aligned, optional
        The members' outputs on ``test_split`` when already read, in ``source.refs``' order (not
        with ``oof``, and not when refits took their groups' places).

    Returns
    -------
    dict or None
        The text check's fields (:class:`ShiftCheck`; ``auc`` None when a split is too small),
        ``against`` (the scored split's name) and ``outputs`` (one :class:`OutputShift` dict per
        member; None when the members' test outputs are not cached, as a report may be run
        before them). None when neither check could run.
    """
    from ensemble.core.combination import align
    from ensemble.core.errors import EnsembleError

    text_check, checked = _text_check(source, scored_split, test_split, compute=texts)
    dense = source.task.payload == "dense"  # a row's outputs are one row of numbers: compared column by column
    al = scored_al if scored_al is not None or not dense else source.aligned(scored_split)
    outputs, unread = {}, []
    for i, (r, scored) in enumerate(zip(source.refs, al.arrays if dense else ())):
        if members is not None and r.name not in members:
            continue
        if test_al is not None and not oof:
            outputs[r.name] = (scored, [test_al.arrays[i]])
            continue
        try:
            models = r.parts if (oof and r.kind == "folds") else [r]
            outputs[r.name] = (scored, [align([source.named(source.logits(p, test_split))], ids=test_split.ids,
                                              labels=al.labels).arrays[0] for p in models])
        except EnsembleError:  # not yet predicted on the test rows (a report may come first)
            unread.append(r.name)
    moved = [o.to_dict() for o in output_shift(source.task, outputs, al.labels)] if outputs else None
    if text_check is None and not moved:
        return None
    check = {**(text_check.to_dict() if text_check is not None else {"auc": None, "flagged": False}),
             "against": scored_split.name, "outputs": moved,
             **({"outputs_not_read": unread} if unread else {}),
             **({} if dense else {"outputs_not_compared": f"{source.task.payload} outputs (a row of units each)"}),
             **({} if checked else {"texts": "not checked: ensemble report checks them (and vote then reads it)"})}
    note = shift_note(check)
    said = (str(test_split.path), str(scored_split.path), note)
    if note and said not in _SAID:  # once a process: a run's report and vote find the same
        import logging

        _SAID.add(said)
        logging.getLogger(__name__).warning("%s against %s: %s", *said)
    return check


def shift_note(check) -> str | None:
    """What the headline says when the test rows do not look like the rows it is estimated on
    (their texts, or the members' outputs on them); None when they do (or nothing was checked)."""
    if check is None:
        return None
    if isinstance(check, ShiftCheck):
        check = check.to_dict()
    said = []
    if check.get("flagged") and check.get("auc") is not None:
        said.append(f"a classifier tells their texts apart: AUC {check['auc']:.3f}, above all {len(check['null'])} "
                    f"permuted, max {max(check['null']):.3f}")
    moved = [o for o in check.get("outputs") or () if o["flagged"]]
    if moved:
        o = max(moved, key=lambda x: x["ks"])
        others = f" and {len(moved) - 1} other member{'s' if len(moved) > 2 else ''}" if len(moved) > 1 else ""
        said.append(f"the members' outputs move: {o['member']}'s {o['column']} (KS {o['ks']:.2f}, mean "
                    f"{o['scored_mean']:.3f} there, {o['test_mean']:.3f} on the test){others}")
    if not said:
        return None
    return (f"the test rows do not look like the rows it is estimated on ({'; '.join(said)}): it assumes they are "
            "drawn alike and may not hold on the test")
