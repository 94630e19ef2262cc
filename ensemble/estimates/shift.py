"""Do the test rows look like the validation rows? Every estimate "on unseen data" assumes they
do, and no resampling of the validation rows can see it when they do not (KorSTS: dev and test
differ in make-up). The unlabelled test texts are at hand, so the check is an adversarial one: a
classifier telling validation texts from test texts on character n-grams, its cross-validated
ROC AUC against the AUCs it reaches with the split labels permuted (what chance gives at these
sizes). Task-free: it reads texts only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

__all__ = ["ShiftCheck", "adversarial_check", "shift_note"]

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


def shift_note(check) -> str | None:
    """What the headline says when the test rows do not look like the validation rows; None when
    they do (or nothing was checked)."""
    if isinstance(check, dict):
        check = ShiftCheck(check["auc"], tuple(check["null"]), check["p_value"], tuple(check["rows"]), check["flagged"])
    if check is None or not check.flagged:
        return None
    return (f"the test rows do not look like the rows it is estimated on (a classifier tells them apart: AUC "
            f"{check.auc:.3f}, above all {len(check.null)} permuted, max {max(check.null):.3f}): it assumes they are "
            "drawn alike and may not hold on the test")
