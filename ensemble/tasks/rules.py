"""What the tasks whose rules are estimated over rows share (entities, summarization): ``auto``'s
choice among the rules, the refusal of a holdout beside fold groups and of report options that do
not apply, and the report: the headline of what is submitted (auto's rule, or what the vote that
wrote the submission submitted), the leaderboard of members and rules as text and HTML, and the
page around a task's own sections.

A task's report subclasses :class:`RuleReport` and gives :meth:`RuleReport._rows` (its members
and rules, as leaderboard rows) and its own sections.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from ensemble.core.errors import EnsembleError

__all__ = ["RuleReport", "choose_rule", "refuse_holdout", "refuse_report_options", "report_folds",
           "optimistic_excluded"]


def choose_rule(estimates: Mapping, metric: str, of: str = "cross-validated", order: Sequence[str] = ()
                ) -> tuple[str, str]:
    """``auto``'s rule: of the fitted rules whose cross-validated gain over uniform is sure (its
    whole interval above 0), the best (a tie to the earlier rule of ``order``, the simpler); else
    uniform. With the reason, as one phrase."""
    sure = [e for m, e in estimates.items() if m != "uniform" and e.sure_gain_vs_uniform]
    if not sure:
        return "uniform", f"uniform: no fitted rule's {metric} gain over uniform is sure"
    rank = {m: i for i, m in enumerate(order)}  # ties go to the simpler rule, whatever the order estimated in
    best = min(sure, key=lambda e: (-e.cross_validated, rank.get(e.method, len(rank))))
    return best.method, (f"{best.method}: {metric} gain over uniform {best.vs_uniform:+.4f} "
                         f"[{best.vs_uniform_interval[0]:+.4f}, {best.vs_uniform_interval[1]:+.4f}], {of}")


def refuse_holdout(holdout, task: str) -> None:
    """A validation split beside fold groups is a holdout that ``task``'s vote and report do not
    read yet (they fit and estimate on the out-of-fold rows): refused, never ignored."""
    if holdout is not None:
        raise EnsembleError(f"{getattr(holdout, 'path', holdout)}: a validation split beside fold groups is a holdout, "
                            f"which the {task} task does not read yet; drop it (the out-of-fold training rows are "
                            "fitted and estimated on), or give the fold models as members of their own")


def refuse_report_options(options: Mapping, task: str) -> None:
    """``repeats`` and ``best_k`` (the classifiers' report's) do not apply: the estimate is one
    K-fold over the rows and no best<K> rule is estimated."""
    for option, value, default in (("repeats", options.get("repeats"), None), ("best_k", options.get("best_k", 3), 3)):
        if value != default:
            raise EnsembleError(f"{option} does not apply to {task} (its estimate is one K-fold over the rows, and no "
                                "best<K> rule is estimated): drop it")


def report_folds(job, task: str):
    """The folds a report estimates over: the fold groups' folds of the training rows (each row's
    fold), else ``cv`` as K folds of the rows; another ``cv`` is refused, never replaced."""
    import numpy as np

    if job.training is not None:
        return job.training.folds.fold
    if isinstance(job.cv, (int, np.integer)) and not isinstance(job.cv, bool):
        return int(job.cv)
    raise EnsembleError(f"the {task} report cross-validates over K folds of the rows: give cv as a number K >= 2")


def optimistic_excluded(job) -> dict[str, str]:
    """``{member: why}`` of the members whose scores on the scored rows are optimistic (marked
    trained on them, or a soup or K chosen on them: :func:`~ensemble.averaging.provenance.model_notes`),
    left out of a report's ensembles as the vote leaves them out; none with ``include_optimistic``.
    Every member marked is an error."""
    from ensemble.averaging.provenance import optimistic_members

    if job.options.get("include_optimistic"):
        return {}
    out = optimistic_members(job.source.refs, job.split.digest, job.options.get("trained_on_valid", ()))
    if out and len(out) == len(job.source.refs):
        raise EnsembleError("every member is marked optimistic (trained on or chosen on the validation rows); "
                            "include_optimistic to estimate ensembles of them anyway")
    return out


class RuleReport:
    """A report of members and rules, each rule estimated over rows.

    Attributes
    ----------
    choice, reason : str
        ``auto``'s rule and why, in one phrase.
    metric : str
    members, estimates : dict
        Each member's figures and each rule's estimate (with ``cross_validated`` and ``interval``).
    where : {"cross-validated", "out-of-fold"}
        What the estimates are of (fold groups: their training rows, fold by fold).
    refit : dict
        ``{group: refit}``: the refits submitted in their groups' places.
    submission, submitted
        The file submitted, once a vote wrote it (``ensemble run``), and the headline that vote
        wrote in its sidecar.
    """

    def __init__(self, choice, reason, metric, members, estimates, split=""):
        self.choice, self.reason, self.metric = choice, reason, metric
        self.members, self.estimates, self.split = members, estimates, split
        self.excluded: tuple = ()
        self.shift = None
        self.where = "cross-validated"
        self.refit: dict = {}
        self.submission = None
        self.submitted = None

    def scored_on(self, job, excluded) -> "RuleReport":
        """This report, saying what it was scored on: the members left out as optimistic
        (``excluded``), and for fold groups the out-of-fold rows and the refits submitted."""
        self.excluded = tuple(excluded)
        if job.training is not None:
            self.where = "out-of-fold"
            self.refit = {grp: r.name for grp, r in job.source.refits.items()}
        return self

    def _figure(self, method: str) -> dict:
        from ensemble.estimates.headline import refits_note

        e = self.estimates[method]
        out = {"metric": self.metric, "estimate": e.cross_validated, "low": e.interval[0], "high": e.interval[1],
               "of": self.where}
        return {**out, "note": refits_note(self.refit, holdout=False)} if self.refit else out

    @property
    def headline(self) -> dict:
        """``{submission, method, metric, estimate, low, high, of}`` of what is submitted: auto's
        rule, or what the vote that wrote the submission submitted (``submitted``)."""
        from ensemble.estimates.headline import submitted_headline, with_shift

        own = {"submission": self.submission, "method": self.choice, **self._figure(self.choice)}
        return with_shift(submitted_headline(own, self.submitted, lambda m: self._figure(m) if m in self.estimates
                                             else None), self.shift)

    def _rows(self) -> list[tuple]:
        """(name, kind, figure, low, high, apparent, gain vs best member, gain vs uniform)."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.to_text()

    def leaderboard_text(self, width: int = 20) -> list[str]:
        """The headline, auto's reason and the leaderboard, as lines of text (``width``: the name column's)."""
        from ensemble.estimates.headline import headline_line

        lines = [headline_line(self.headline), f"auto -> {self.reason}", "",
                 f"{'':<{width}}{self.metric:>8}  {'interval':<18}{'apparent':>9}{'vs best':>9}{'vs unif':>9}"]
        for name, kind, f, lo, hi, ap, gain, vu in self._rows():
            cell = "" if lo is None else f"[{lo:.4f}, {hi:.4f}]"
            lines.append(f"{name:<{width}}{f:>8.4f}  {cell:<18}{_num(ap):>9}{_num(gain, True):>9}{_num(vu, True):>9}")
        return lines

    def page(self, sections: str) -> str:
        """The HTML page: the headline, auto's reason, the leaderboard, then ``sections`` (HTML)."""
        import html

        from ensemble.estimates.headline import headline_line
        from ensemble.tasks.base import PAGE_STYLE

        esc = html.escape
        rows = "".join(f"<tr><th>{esc(n)}</th><td>{k}</td><td>{f:.4f}</td><td>{'' if lo is None else f'[{lo:.4f}, {hi:.4f}]'}"
                       f"</td><td>{_num(ap)}</td><td>{_num(g, True)}</td><td>{_num(u, True)}</td></tr>"
                       for n, k, f, lo, hi, ap, g, u in self._rows())
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>ensemble report</title><style>{PAGE_STYLE}"
                f"</style></head><body><h1>{esc(headline_line(self.headline))}</h1><p>auto -&gt; {esc(self.reason)}</p>"
                f"<table><tr><td>member / rule</td><td>kind</td><td>{esc(self.metric)}</td><td>interval</td>"
                f"<td>apparent</td><td>vs best member</td><td>vs uniform</td></tr>{rows}</table>{sections}"
                "</body></html>")


def _num(v, signed: bool = False) -> str:
    return "" if v is None else (f"{v:+.4f}" if signed else f"{v:.4f}")
