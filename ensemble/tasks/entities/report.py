"""What the entities report shows beside its estimates: each type's precision, recall and F1, the
types most often confused (a predicted span over a gold one of another type), and the rows where
the members disagree most, each text marked with every member's spans; and the task's part of
the CLI's ``ensemble report`` (:func:`report`, :class:`EntityReport`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from itertools import combinations
from typing import Mapping, Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.spans import Span, entity_scores
from ensemble.tasks.rules import RuleReport

__all__ = ["type_table", "confused_types", "mark_spans", "disagreements", "report", "EntityReport"]


def type_table(gold: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]], *, beta: float = 1.0):
    """A row per entity type (and ``all``, micro): precision, recall, F-beta and support, exact
    span and type (:func:`~ensemble.tasks.entities.spans.entity_scores`); a DataFrame."""
    import pandas as pd

    scores = entity_scores(gold, pred, beta=beta)
    rows = [{"type": k, **v} for k, v in scores["per_type"].items()]
    rows.append({"type": "all", "precision": scores["precision"], "recall": scores["recall"], "f": scores["f"],
                 "support": sum(v["support"] for v in scores["per_type"].values())})
    return pd.DataFrame(rows, columns=["type", "precision", "recall", "f", "support"])


def _overlap(a: Span, b: Span) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def confused_types(gold: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]], top: int = 5) -> list[tuple]:
    """The most frequent ``(gold type, predicted type, count)``: a predicted span of another type
    overlapping a gold span by at least one character, counted once per such pair; most
    frequent first (ties by the types' names)."""
    if len(gold) != len(pred):
        raise EnsembleError(f"got {len(pred)} rows of predicted spans for {len(gold)} rows of gold ones")
    pairs: Counter = Counter()
    for g_row, p_row in zip(gold, pred):
        for g in g_row:
            for p in p_row:
                if g[2] != p[2] and _overlap(g, p) > 0:
                    pairs[(g[2], p[2])] += 1
    return [(g, p, n) for (g, p), n in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def mark_spans(text, spans: Sequence[Span]) -> str:
    """``text`` with each span written ``[its text]TYPE``: what a reader scans to see where
    members differ. ``text`` may be a list of words (spans over word indices): the words joined
    by spaces, each span's words marked together."""
    words = not isinstance(text, str)
    join = " ".join if words else "".join
    out, at = [], 0
    for a, b, kind in sorted(spans):
        if a < at or b > len(text) or a >= b:
            raise EnsembleError(f"span {(a, b, kind)!r} overlaps another or lies outside the text of {len(text)} "
                                f"{'words' if words else 'characters'}")
        out += [join(text[at:a]), "[" + join(text[a:b]) + "]" + kind]
        at = b
    out.append(join(text[at:]))
    return (" " if words else "").join(p for p in out if p or not words)


def _disagreement(rows: Sequence[set]) -> float:
    """1 - the mean Jaccard similarity of the members' span sets over member pairs (two empty
    sets agree)."""
    sims = [len(a & b) / len(a | b) if a | b else 1.0 for a, b in combinations(rows, 2)]
    return 1.0 - float(np.mean(sims)) if sims else 0.0


def disagreements(member_spans: Mapping[str, Sequence[Sequence[Span]]], texts: Sequence[str],
                  ids: Sequence[str] | None = None, top: int = 5) -> list[dict]:
    """The ``top`` rows where the members' spans differ most (1 - mean pairwise Jaccard of their
    span sets; rows where all agree left out), each with every member's marked text.

    Returns
    -------
    list of dict
        ``{"row", "id", "disagreement", "marked": {member: text}}``, most disagreement first.
    """
    names = list(member_spans)
    n = len(texts)
    for name in names:
        if len(member_spans[name]) != n:
            raise EnsembleError(f"{name}: {len(member_spans[name])} rows of spans for {n} texts")
    ids = [str(i) for i in (ids if ids is not None else range(n))]
    if len(ids) != n:
        raise EnsembleError(f"{len(ids)} ids for {n} texts; give one id per text")
    scores = np.array([_disagreement([set(map(tuple, member_spans[m][r])) for m in names]) for r in range(n)])
    order = [int(r) for r in np.argsort(-scores, kind="stable") if scores[r] > 0][:top]
    return [{"row": r, "id": ids[r], "disagreement": float(scores[r]),
             "marked": {m: mark_spans(texts[r], member_spans[m][r]) for m in names}} for r in order]


# ---------------------------------------------------------------------- the CLI's report (the task's hook)

DEFAULT_METHODS = ("acc", "select", "optimize")


def _macro_f1(units, spans, tags) -> float:
    """KLUE's character-level macro F1 of ``spans`` (per word, for rows of words)."""
    from ensemble.tasks.entities.spans import char_macro_f1, tags_from_spans

    gold_tags = [tags_from_spans(g, len(t)) for g, t in zip(units.gold, units.texts)]
    pred_tags = [tags_from_spans(p, len(t)) for p, t in zip(spans, units.texts)]
    return char_macro_f1(gold_tags, pred_tags, list(tags))


def _member_row(units, m: int, tags) -> dict:
    """Member ``m`` alone on every scored row: its entity scores and KLUE's character macro F1."""
    every = np.arange(len(units))
    spans = units.decode(units.mean(np.eye(len(units.al.values))[m], every), every)
    s = entity_scores(units.gold, spans, beta=units.beta)
    return {"precision": s["precision"], "recall": s["recall"], "f": s["f"],
            "char_macro_f1": _macro_f1(units, spans, tags)}, spans


def report(task, job):
    """Every member scored on the labelled rows, every rule (uniform and ``methods``) estimated
    over the rows, cross-validated, against the best single member and uniform; the chosen rule's
    per-type table and most confused types out of fold, each rule's character macro F1 out of
    fold, and the rows where the members disagree."""
    from ensemble.tasks.entities.estimate import estimate_methods
    from ensemble.tasks.entities.fitting import LabelledUnits
    from ensemble.tasks.entities.spans import beta_of
    from ensemble.tasks.entities.vote import choose_rule, o_threshold, rule_of, split_texts
    from ensemble.tasks.rules import optimistic_excluded, refuse_holdout, refuse_report_options, report_folds

    if job.training is not None:
        refuse_holdout(job.data.get(job.valid), task.name)
    task.check_texts(job.split)
    o = job.options
    refuse_report_options(o, task.name)
    metric = "f1" if o.get("metric") in (None, "accuracy") else str(o["metric"])
    beta = beta_of(metric)
    al = job.al
    texts = split_texts(job.split, al.offsets)
    excluded = optimistic_excluded(job)
    kept = [m for m, name in enumerate(al.members) if name not in excluded]
    fitted_on = replace(al, members=tuple(al.members[m] for m in kept), values=[al.values[m] for m in kept])
    units = LabelledUnits(fitted_on, texts, al.y.spans, beta)  # the ensembles: members not optimistic here
    names = list(dict.fromkeys(rule_of(m) for m in (o.get("methods") or DEFAULT_METHODS) if m != "auto"))
    methods = ["uniform", *[m for m in names if m != "uniform"]]
    limits = o_threshold(o.get("threshold"))
    limits = True if limits == "per_label" else limits  # fitted per type inside the folds, given, or None
    folds = report_folds(job, task.name)
    estimates = estimate_methods(units, methods, thresholds=limits, folds=folds,
                                 seed=o.get("seed", 0), apparent=True)
    chosen, reason = choose_rule(estimates, metric, "out of fold" if job.training is not None else "cross-validated")
    every_member = LabelledUnits(al, texts, al.y.spans, beta)
    members, member_spans = {}, {}
    for m, name in enumerate(al.members):
        members[name], member_spans[name] = _member_row(every_member, m, al.tags)
        if name in excluded:
            members[name]["excluded"] = excluded[name]
    for e in estimates.values():  # KLUE's second metric, of each rule's out-of-fold spans
        e.char_macro_f1 = _macro_f1(units, e.spans, al.tags)
    held = estimates[chosen].spans  # what the submitted rule decodes on rows it was not fitted on
    rep = EntityReport(chosen, reason, metric, members, estimates, type_table(units.gold, held, beta=beta),
                        confused_types(units.gold, held),
                        disagreements(member_spans, units.texts, al.ids) if len(al.members) > 1 else [],
                        split=str(job.split.path))
    return rep.scored_on(job, excluded)


class EntityReport(RuleReport):
    """What an entities report shows: the headline (auto's rule, cross-validated), the members,
    every rule's estimate with its gains, the chosen rule's per-type table out of fold, the most confused
    types and the rows where members disagree; as text, JSON (:meth:`to_dict`) and HTML."""

    def __init__(self, choice, reason, metric, members, estimates, per_type, confused, disagree, split=""):
        super().__init__(choice, reason, metric, members, estimates, split)
        self.per_type, self.confused, self.disagreements = per_type, confused, disagree

    def _rows(self) -> list[tuple]:
        """(name, kind, figure, low, high, apparent, gain vs best member, gain vs uniform)."""
        rows = [(n + (" (left out: optimistic)" if "excluded" in r else ""), "member", r["f"], None, None, None, None,
                 None) for n, r in self.members.items()]
        rows += [(m, "ensemble", e.f, e.interval[0], e.interval[1], e.apparent, e.gain, e.vs_uniform)
                 for m, e in self.estimates.items()]
        return rows

    def to_text(self) -> str:
        lines = self.leaderboard_text()
        lines += ["", "char macro F1 (KLUE): " + ", ".join(
                      [f"{n} {r['char_macro_f1']:.4f}" for n, r in self.members.items()]
                      + [f"{m} {e.char_macro_f1:.4f} (out of fold)" for m, e in self.estimates.items()]),
                  "", f"{self.choice} per type, out of fold:",
                  self.per_type.to_string(index=False, float_format="%.4f")]
        if self.confused:
            lines += ["", "most confused (gold -> predicted): " + ", ".join(f"{g}->{p} {n}" for g, p, n in self.confused)]
        for d in self.disagreements[:3]:
            lines += ["", f"row {d['id']} (disagreement {d['disagreement']:.2f}):"]
            lines += [f"  {m}: {t}" for m, t in d["marked"].items()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"task": "entities", "headline": self.headline, "auto": self.reason, "metric": self.metric,
                "split": self.split, "members": self.members,
                "estimates": {m: {"cross_validated": e.f, "interval": list(e.interval), "apparent": e.apparent,
                                  "char_macro_f1": e.char_macro_f1,
                                  "gain_vs_best_member": e.gain, "gain_vs_best_member_interval": list(e.gain_interval),
                                  "gain_vs_uniform": e.vs_uniform, "gain_vs_uniform_interval": list(e.vs_uniform_interval)}
                              for m, e in self.estimates.items()},
                "per_type": self.per_type.to_dict(orient="records"),
                "confused": [list(c) for c in self.confused], "disagreements": self.disagreements,
                "shift": self.shift}

    def to_html(self, figures: bool = True) -> str:
        """The page: the headline, the leaderboard, the per-type table and the marked rows
        (``figures``: taken as every report's page takes it; this page has no plots)."""
        import html

        esc = html.escape
        types = "".join(f"<tr><th>{esc(str(r['type']))}</th><td>{r['precision']:.4f}</td><td>{r['recall']:.4f}</td>"
                        f"<td>{r['f']:.4f}</td><td>{int(r['support'])}</td></tr>"
                        for r in self.per_type.to_dict(orient="records"))
        rows_marked = "".join(f"<h3>row {esc(d['id'])}</h3><pre>" + "\n".join(f"{esc(m)}: {esc(t)}" for m, t in
                                                                           d["marked"].items()) + "</pre>"
                              for d in self.disagreements)
        return self.page(f"<h2>{esc(self.choice)} per type, out of fold</h2><table><tr><td>type</td><td>precision</td>"
                         f"<td>recall</td><td>f</td><td>support</td></tr>{types}</table>"
                         f"<h2>rows where the members disagree</h2>{rows_marked}")
