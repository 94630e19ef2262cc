"""What the summarization report shows: each member, the best single member, every MBR rule
estimated out of fold, and the per-row oracle (the candidate the references like best: an upper
bound no method reaches, marked so); the rows where the members disagree most; and, where a
member's run logged a validation ROUGE (``eval_rouge1``...), how far it is from this one and why.
The task's part of the CLI's ``ensemble report`` (:func:`report`, :class:`SummaryReport`).
"""

from __future__ import annotations

from itertools import combinations
from typing import Mapping

import numpy as np

from ensemble.tasks.rules import RuleReport

__all__ = ["report", "SummaryReport", "disagreements", "logged_rouge_notes"]

DEFAULT_RULES = ("score", "best", "select", "optimize")


def disagreements(al, lc, top: int = 5) -> list[dict]:
    """The ``top`` rows whose members' first candidates agree least (one minus their mean pairwise
    utility over the pairs of members), with each member's text."""
    M = len(al.members)
    rows = []
    for i in range(len(al.ids)):
        first = [lc.first(i, m) for m in range(M)]
        pairs = [lc.utility[i][a, b] for a, b in combinations(first, 2)]
        rows.append((float(np.mean(pairs)) if pairs else 0.0, i))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [{"id": str(al.ids[i]), "agreement": u, "texts": {al.members[m]: al.texts[m][i][0] if al.texts[m][i] else ""
                                                              for m in range(M)}} for u, i in rows[:top]]


def logged_rouge_notes(refs, al, references, tokenizer: str, aggregate: str) -> dict[str, str]:
    """``{member: note}`` where a member's run logged ``eval_rouge1`` (its Trainer's
    ``compute_metrics``) and it is more than 0.02 from ROUGE-1 F1 here: by how much, and the
    figure whitespace tokens give here, which is what the baselines' ``rouge`` package counts."""
    from ensemble.averaging.provenance import logged_metric
    from ensemble.tasks.summarization.rouge import Rouge

    notes = {}
    for m, ref in enumerate(refs):
        logged = logged_metric(ref.folder, "eval_rouge1") if getattr(ref, "folder", None) is not None else None
        if logged is None:
            continue
        logged = logged / 100 if logged > 1 else logged  # the HF example scripts log percentages
        here = Rouge(tokenizer, ("rouge1",), aggregate).score(al.top(m), references)["rouge1"]
        if abs(logged - here) <= 0.02:
            continue
        spaced = Rouge("whitespace", ("rouge1",), aggregate).score(al.top(m), references)["rouge1"]
        notes[al.members[m]] = (f"its run logged eval_rouge1 {logged:.4f}; ROUGE-1 here is {here:.4f} on {tokenizer} "
                                f"({logged - here:+.4f}); on whitespace tokens it is {spaced:.4f}. The logged figure is "
                                "of the run's own eval set and tokens: a whitespace split counts a noun with its "
                                "particle as one token, which the competition's morphemes do not")
    return notes


def report(task, job):
    """Every member scored on the labelled rows (its first candidate), every MBR rule estimated
    out of fold against the best single member and uniform, the per-row oracle, the rows where
    the members disagree most, and notes on logged ROUGE."""
    from ensemble.tasks.rules import optimistic_excluded, refuse_holdout, refuse_report_options, report_folds
    from ensemble.tasks.summarization.estimate import candidates_of, estimate_rules, oracle
    from ensemble.tasks.summarization.task import metric_types
    from ensemble.tasks.summarization.vote import choose_rule, rouge_settings, rule_of

    if job.training is not None:
        refuse_holdout(job.data.get(job.valid), task.name)
    task.check_texts(job.split)
    o = job.options
    refuse_report_options(o, task.name)
    metric = "rouge" if o.get("metric") in (None, "accuracy") else str(o["metric"])
    metric_types(metric)
    rouge = rouge_settings(job.columns, job.split)
    al = job.al
    excluded = optimistic_excluded(job)
    folds = report_folds(job, task.name)
    lc = candidates_of(al, al.y.references, metric=metric, tokenizer=rouge["tokenizer"], aggregate=rouge["aggregate"],
                       progress=True)
    fitted_on = lc.of_members([m for m, name in enumerate(al.members) if name not in excluded])
    names = list(dict.fromkeys(rule_of(m) for m in (o.get("methods") or DEFAULT_RULES) if m != "auto"))
    methods = ["uniform", *[m for m in names if m != "uniform"]]
    estimates = estimate_rules(fitted_on, methods, folds=folds, seed=o.get("seed", 0))
    chosen, reason = choose_rule(estimates, metric, "out of fold" if job.training is not None else "cross-validated")
    quality = lc.member_quality()
    members = {name: {"score": float(quality[m]), **({"excluded": excluded[name]} if name in excluded else {})}
               for m, name in enumerate(al.members)}
    rep = SummaryReport(chosen, reason, metric, rouge, members, estimates, float(oracle(fitted_on).mean()),
                        disagreements(al, lc) if len(al.members) > 1 else [],
                        logged_rouge_notes(job.source.refs, al, al.y.references, rouge["tokenizer"],
                                           rouge["aggregate"]),
                        split=str(job.split.path))
    return rep.scored_on(job, excluded)


class SummaryReport(RuleReport):
    """What a summarization report shows: the headline (auto's rule, cross-validated), the members,
    every rule's estimate with its gains, the oracle, the rows where members disagree and notes on
    logged ROUGE; as text, JSON (:meth:`to_dict`) and HTML."""

    def __init__(self, choice, reason, metric, rouge: Mapping, members, estimates, oracle: float, disagree,
                 notes: Mapping, split=""):
        super().__init__(choice, reason, metric, members, estimates, split)
        self.rouge, self.oracle, self.disagreements, self.notes = dict(rouge), oracle, disagree, dict(notes)

    def _rows(self) -> list[tuple]:
        """(name, kind, figure, low, high, apparent, gain vs best member, gain vs uniform)."""
        rows = [(n + (" (left out: optimistic)" if "excluded" in r else ""), "member", r["score"], None, None, None,
                 None, None) for n, r in self.members.items()]
        rows += [(m, "ensemble" if m != "best" else "best member, chosen out of fold", e.score, e.interval[0],
                  e.interval[1], e.apparent, e.vs_best, e.vs_uniform) for m, e in self.estimates.items()]
        rows.append(("oracle (reads the references: an upper bound)", "bound", self.oracle, None, None, None, None,
                     None))
        return rows

    def to_text(self) -> str:
        lines = self.leaderboard_text(34)
        lines.insert(2, f"ROUGE on {self.rouge['tokenizer']}, references aggregated by {self.rouge['aggregate']}")
        for m, note in self.notes.items():
            lines += ["", f"{m}: {note}"]
        for d in self.disagreements[:3]:
            lines += ["", f"row {d['id']} (agreement {d['agreement']:.2f}):"]
            lines += [f"  {m}: {t}" for m, t in d["texts"].items()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"task": "summarization", "headline": self.headline, "auto": self.reason, "metric": self.metric,
                "rouge": self.rouge, "split": self.split, "members": self.members, "oracle": self.oracle,
                "estimates": {m: {"cross_validated": e.score, "interval": list(e.interval), "apparent": e.apparent,
                                  "gain_vs_best_member": e.vs_best, "gain_vs_best_member_interval": list(e.vs_best_interval),
                                  "gain_vs_uniform": e.vs_uniform, "gain_vs_uniform_interval": list(e.vs_uniform_interval)}
                              for m, e in self.estimates.items()},
                "logged_rouge": self.notes, "disagreements": self.disagreements, "shift": self.shift}

    def to_html(self, figures: bool = True) -> str:
        """The page: the headline, the leaderboard, the notes and the rows where members disagree."""
        import html

        esc = html.escape
        notes = "".join(f"<p class='note'>{esc(m)}: {esc(t)}</p>" for m, t in self.notes.items())
        marked = "".join(f"<h3>row {esc(d['id'])}</h3><pre>" + "\n".join(f"{esc(m)}: {esc(t)}" for m, t in
                                                                      d["texts"].items()) + "</pre>"
                         for d in self.disagreements)
        return self.page(f"{notes}<h2>rows where the members disagree</h2>{marked}")
