"""The headline, one for every task: the file submitted, its method, what it should score on
unseen data with an interval, and what that figure is of (the holdout, the out-of-fold rows, a
cross-validation of the validation rows). The report, the vote, the sidecar and ``run`` say it
with these words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

__all__ = ["headline_of", "headline_line", "holdout_note", "submitted_headline", "refits_note", "with_shift", "OF_WORDS",
           "VOTE_LOGGER", "say_headline"]

# The logger of the vote's own lines, whichever task's part of the vote says them: held until the
# headline is said (ensemble.workflows.vote), so that the headline comes first.
VOTE_LOGGER = "ensemble.vote"

OF_WORDS = {"holdout": "on the holdout, untouched by every fit", "out-of-fold": "out of fold: one fold model's rows",
            "cross-validated": "cross-validated on the validation rows"}


def headline_of(estimate: Mapping, out, method: str) -> dict:
    """The headline of the submission ``out`` of ``method``: ``estimate``'s metric, figure, interval
    and what it is of (keys left None when the vote estimates nothing)."""
    return {"submission": Path(out).name, "method": method, "metric": None, "estimate": None, "low": None,
            "high": None, "of": None, **estimate}


def submitted_headline(own: Mapping, submitted: Mapping | None, honest) -> dict:
    """A report's headline once a vote has written the submission (``submitted``: the vote's
    headline, as the submission's sidecar holds it): the report's own, naming the file, when the
    vote submitted the report's choice; else the vote's figure of what it submitted; else the
    report's honest figure of that method (``honest(method)``: ``{metric, estimate, low, high,
    of}``, or None where the report has none); else no figure, with the vote's note."""
    if not submitted:
        return dict(own)
    method = submitted.get("method")
    name = own.get("submission") or submitted.get("submission")  # the report's name is the path it was given
    if method == own.get("method"):
        return {**own, "submission": name}
    vote = {**headline_of({}, "", method), **{k: v for k, v in submitted.items() if k not in ("submission", "method")},
            "submission": name}
    if vote.get("estimate") is not None:
        return vote
    figure = honest(method)
    if figure is None:
        return vote
    return {**{k: v for k, v in vote.items() if k != "note"}, **figure}


def refits_note(refits, holdout: bool = True) -> str:
    """What the headline says of an out-of-fold figure when refits (``{group: refit}``) take their
    groups' places in the submission: the figure is not of what is submitted. ``holdout``: the
    task reads a holdout beside fold groups, which would score them (said so)."""
    said = ", ".join(f"{r} for {g}" for g, r in refits.items())
    return (f"not of what is submitted: the refits ({said}) take their groups' places and saw every training row, "
            "so no out-of-fold figure covers them" + ("; a holdout (valid) scores them" if holdout else ""))


def holdout_note(h) -> str | None:
    """What the headline says of a holdout that is not untouched (rows shared with the training
    file, or members chosen on it); None when it is."""
    if h.get("overlap"):
        return f"the holdout is NOT untouched: {h['overlap']} of its rows are also training rows"
    if h.get("used_by"):
        return f"the holdout is NOT untouched: used to choose the checkpoints of {', '.join(h['used_by'])}"
    return None


def headline_line(h: Mapping) -> str:
    """The headline as one line of text."""
    if h.get("estimate") is None:
        where = f"submission {h['submission']}: " if h.get("submission") else "submission: "
        return f"{where}{h['method']}, not estimated" + (f"; {h['note']}" if h.get("note") else "")
    interval = "" if h.get("low") is None else f" [{h['low']:.4f}, {h['high']:.4f}]"
    where = f"submission {h['submission']}: " if h.get("submission") else "submission: "
    touched = h.get("of") == "holdout" and h.get("note")  # the note says why it is not untouched
    words = "on the holdout" if touched else OF_WORDS.get(h["of"], h["of"])
    return (f"{where}{h['method']}, {h['metric']} {h['estimate']:.4f}{interval} on unseen data ({words})"
            + (f"; {h['note']}" if h.get("note") else "") + (f"; {h['shift']}" if h.get("shift") else ""))


def with_shift(h: dict, shift) -> dict:
    """The headline ``h`` with what the shift check says (``shift``: its dict, or None), under
    ``"shift"``, when the test rows do not look like the rows it is estimated on."""
    from ensemble.estimates.shift import shift_note

    note = shift_note(shift) if h.get("estimate") is not None else None  # no figure, no claim to qualify
    return {**h, "shift": note} if note else h


def say_headline(headline: Mapping, out) -> None:
    """The vote's headline of the submission ``out``, said first (the vote holds its other lines
    until it is: :data:`VOTE_LOGGER`), when the vote estimated it."""
    if headline.get("estimate") is not None:
        import logging

        from ensemble.core.notices import notice

        notice(logging.getLogger(VOTE_LOGGER), "%s", headline_line({**headline, "submission": str(out)}),
               extra={"headline": True})
