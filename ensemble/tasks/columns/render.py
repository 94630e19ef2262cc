"""The :class:`ValueReport`: what the report found for regression and multi-label members,
rendered as text, JSON and an HTML page (with a predicted-versus-true scatter for regression)."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ensemble.estimates.headline import headline_line, holdout_note, refits_note, submitted_headline, with_shift

__all__ = ["ValueReport"]

# how far apart members' output scales may be before the report says so: spread ratio, and centres
# apart by this many (pooled) spreads
_SCALE_RATIO, _CENTRE_GAP = 2.0, 1.0
# the share of rows decided with no label, beyond the truth's own share, the report flags
_EMPTY_MARGIN = 0.10


@dataclass
class ValueReport:
    """Members and ensemble methods of a regression or multi-label ensemble, honestly scored.

    Attributes
    ----------
    task, metric : str
        The task and the primary metric (what auto chose by).
    rows : int
        The rows scored (validation, or every training row out of fold).
    members : mapping of member name to its metrics
    estimates : mapping of method name to :class:`~ensemble.tasks.columns.estimate.ValueEstimate`
    choice, reason : str
        What ``--weights auto`` chooses, and why.
    names : tuple of str
        The targets (labels).
    where : str
        "validation" or "out-of-fold".
    """

    task: str
    metric: str
    rows: int
    members: Mapping
    estimates: Mapping = field(repr=False)
    choice: str = "uniform"
    reason: str = ""
    names: Sequence[str] = ()
    where: str = "validation"
    excluded: list = field(default_factory=list)
    holdout: Mapping = field(default_factory=dict)
    settings: Mapping = field(default_factory=dict)
    submission: str | None = None
    submitted: Mapping | None = None  # the headline of the vote that wrote it (its sidecar's)
    shift: Mapping | None = None  # the adversarial check of the test texts (ensemble.estimates.shift)
    y: np.ndarray | None = field(default=None, repr=False)  # the truth of the rows scored
    fold_mean: Mapping = field(default_factory=dict)  # fold groups without a holdout: the decomposed squared error
    refit: Mapping = field(default_factory=dict)  # {group: refit}: the refits submitted in their groups' places
    member_outputs: Mapping = field(default_factory=dict, repr=False)  # member -> its outputs (n, T) on the rows scored

    def __repr__(self) -> str:
        return self.to_text()

    def __str__(self) -> str:
        return self.to_text()

    # ------------------------------------------------------------------ figures

    @property
    def table(self):
        """One row per member (kind "model", its own scores) and per method (kind "ensemble":
        apparent scores, cv_* cross-validated, the gain over uniform and its interval)."""
        import pandas as pd

        # multi-label: which threshold each row is decided at (members 0.5, methods their fitted one)
        at = (lambda t: {"threshold": _threshold_text(t)}) if self.task == "multi_label" else (lambda t: {})
        rows = {n: {"kind": "model", **at(0.5), **r} for n, r in self.members.items()}
        for m, e in self.estimates.items():
            rows[m] = {"kind": "ensemble", **at(e.weights.threshold), **e.apparent,
                       **{f"cv_{k}": v for k, v in e.cross_validated.items()},
                       "cv_low": e.interval[0], "cv_high": e.interval[1], "optimism": e.optimism, "gain": e.gain,
                       "gain_low": e.gain_interval[0], "gain_high": e.gain_interval[1],
                       "weights": _weights_text(e.weights)}
        return pd.DataFrame.from_dict(rows, orient="index")

    @property
    def headline(self) -> dict:
        """``{submission, method, metric, estimate, low, high, of}`` of what is submitted: the
        choice, or what the vote that wrote the submission submitted (``submitted``)."""
        own = {"submission": self.submission, "method": self.choice, **self._figure(self.choice)}
        return with_shift(submitted_headline(own, self.submitted, lambda m: self._figure(m) if m in self.estimates
                                                 else None), self.shift)

    def _figure(self, method: str) -> dict:
        h = self.holdout
        key = method + (" with refits" if h.get("decided_on") == "refits" else "")  # as submitted
        if h.get("choice") is not None and key in h.get("scores", {}):
            s = h["scores"][key]
            out = {"metric": self.metric, "estimate": s["score"], "low": s["low"], "high": s["high"], "of": "holdout"}
            note = holdout_note(h)  # rows shared with training, or members chosen on it: said wherever the headline is
            return {**out, "note": note} if note else out
        e = self.estimates[method]
        out = {"metric": self.metric, "estimate": e.cross_validated[self.metric], "low": e.interval[0],
               "high": e.interval[1], "of": "out-of-fold" if self.where == "out-of-fold" else "cross-validated"}
        if out["of"] == "out-of-fold" and self.refit:  # the refits are submitted, and no figure here is of them
            out["note"] = refits_note(self.refit)
        return out

    def per_target(self):
        """The primary metric per target (per label), one row per member (on its own outputs;
        multi-label: decided at 0.5) and per method (out of fold; multi-label: at its fitted
        threshold), one column per target: a member whose score is negative on one target is
        visible here, where the mean over targets hides it. None without the members' outputs."""
        import pandas as pd

        from ensemble.tasks.columns.fitting import column_task

        if not self.member_outputs or self.y is None:
            return None
        task = column_task(self.task)
        metric = task.metric(self._per_target_metric)

        def by_target(d) -> dict:
            d = np.asarray(d, dtype=np.float64)
            return {t: metric(d[:, j:j + 1], self.y[:, j:j + 1]) for j, t in enumerate(self.names)}

        rows = {n: by_target(task.own_decisions(np.asarray(a, dtype=np.float64)))
                for n, a in self.member_outputs.items()}
        rows.update({m: by_target(e.oof) for m, e in self.estimates.items()})
        return pd.DataFrame.from_dict(rows, orient="index")

    @property
    def _per_target_metric(self) -> str:
        """The primary metric as one target's column can be scored: f1_samples (a mean over rows
        of each row's F1) has no per-label part, a label's own F1 stands for it."""
        return "f1_macro" if self.metric == "f1_samples" else self.metric

    def _per_target_heading(self) -> str:
        """What the per-target table is of, as the terminal and the page say it."""
        what = {"mcrmse": "rmse (mcrmse's per-target part)",
                "f1_samples": "F1 (f1_samples has no per-label part)"}.get(self.metric, self.metric)
        said = ("members on their own outputs decided at 0.5, methods out of fold at their fitted threshold"
                if self.task == "multi_label" else "members on their own outputs, methods out of fold")
        return f"{what} per {self._what} ({said})"

    @property
    def _what(self) -> str:
        return "target" if self.task == "regression" else "label"

    @property
    def _shown_method(self) -> str:
        """The method whose weights are shown: what the headline submits, else the choice."""
        return self.headline.get("method") if self.headline.get("method") in self.estimates else self.choice

    def weights_per_target(self, method: str | None = None):
        """``method``'s weights (default: what the headline submits, else the choice), one row
        per member and one column per target, as the weights file holds them; None for a stacker
        (no weight per member) and for uniform (nothing to show)."""
        import pandas as pd

        method = method or self._shown_method
        w = self.estimates[method].weights
        if w.stacker is not None or method == "uniform":
            return None
        W = np.asarray(w.weights, dtype=np.float64)
        W = np.repeat(W[:, None], len(self.names), axis=1) if W.ndim == 1 else W
        return pd.DataFrame(W, index=list(w.models), columns=list(self.names))

    def leaderboard(self):
        """Every method, best honest estimate first: honest (on the holdout when it decided, else out
        of fold or cross-validated: ``of``), its interval, apparent, optimism (apparent minus the
        same rows' cross-validated figure), and whether ``auto`` considers it."""
        import pandas as pd

        from ensemble.tasks.columns.estimate import AUTO_VALUE_METHODS

        greater = self._greater
        rows = {}
        for m, e in self.estimates.items():
            f = self._figure(m)  # the holdout's figure when it decided, as the headline's
            rows[m] = {"honest": f["estimate"], "low": f["low"], "high": f["high"], "of": f["of"],
                       "apparent": e.apparent[self.metric], "optimism": e.optimism,  # apparent minus the same rows' out-of-fold
                       "auto": "candidate" if m == "uniform" or m in AUTO_VALUE_METHODS else "not considered"}
        return pd.DataFrame.from_dict(rows, orient="index").sort_values("honest", ascending=not greater, kind="stable")

    @property
    def _greater(self) -> bool:
        from ensemble.tasks.columns.fitting import column_task

        return column_task(self.task).greater_is_better(self.metric)

    def notes(self) -> list[str]:
        """What the user should know: members on different scales (regression), rows decided
        with no label (multi-label)."""
        out = []
        if self.task == "regression":
            sd = {n: r["std"] for n, r in self.members.items()}
            mu = {n: r["mean"] for n, r in self.members.items()}
            lo, hi = min(sd, key=sd.get), max(sd, key=sd.get)
            pooled = float(np.mean(list(sd.values()))) or 1.0
            apart = (max(mu.values()) - min(mu.values())) > _CENTRE_GAP * pooled
            if (sd[lo] > 0 and sd[hi] / sd[lo] > _SCALE_RATIO) or apart:
                out.append(f"members' outputs are on different scales ({lo}: sd {sd[lo]:.3g}, {hi}: sd {sd[hi]:.3g}; "
                           f"means {min(mu.values()):.3g} to {max(mu.values()):.3g}): combine standardized or rank "
                           "puts them on one")
        if self.task == "multi_label":
            e = self.estimates[self.choice]
            empty = float((e.oof.sum(axis=1) == 0).mean())
            if empty > _EMPTY_MARGIN:
                out.append(f"{empty:.0%} of the rows get no label from {self.choice} (out of fold)")
        return out

    def per_label(self) -> dict:
        """Multi-label: each label's F1 (the chosen method, out of fold) and average precision."""
        if self.task != "multi_label":
            return {}
        from ensemble.tasks.columns.multilabel import METRICS

        e = self.estimates[self.choice]
        y = self.y
        out = {}
        for j, name in enumerate(self.names):
            f1 = METRICS["f1_macro"](e.oof[:, j:j + 1], y[:, j:j + 1])
            ap = float("nan")
            if y[:, j].any() and e.oof_combined is not None:
                from sklearn.metrics import average_precision_score

                ap = float(average_precision_score(y[:, j], e.oof_combined[:, j]))
            out[name] = {"f1": f1, "average_precision": ap, "support": int(y[:, j].sum())}
        return out

    # ------------------------------------------------------------------ rendering

    def to_text(self) -> str:
        lines = [headline_line(self.headline), "",
                 f"{self.task}: {len(self.members)} members, {self.rows} {self.where} rows, "
                 f"{len(self.names)} {'targets' if self.task == 'regression' else 'labels'}; "
                 f"primary metric {self.metric}"]
        f4 = lambda v: f"{v:.4f}"  # noqa: E731
        t = self.table
        mine = t[t["kind"] == "model"].drop(columns=[c for c in t.columns if c in ("kind", "weights", "threshold")
                                                     or c.startswith(("cv_", "gain", "optimism"))])
        at = " (decided at 0.5)" if self.task == "multi_label" else ""
        lines += ["", f"members, on their own outputs{at}:", mine.dropna(axis=1, how="all").to_string(
            float_format=f4, na_rep=""), "", "leaderboard (honest estimate first):",
                  self.leaderboard().to_string(float_format=f4)]
        per = self.per_target()
        if per is not None and len(self.names) > 1:
            lines += ["", f"{self._per_target_heading()}:", _wrapped(per, f4)]
        w = self.weights_per_target()
        if w is not None and len(self.names) > 1:
            lines += ["", f"weights of {self._shown_method} per {self._what} (as its weights file holds them):",
                      _wrapped(w, lambda v: f"{v:.3f}")]
        lines += ["", f"auto -> {self.reason}"]
        if self.holdout:
            h = self.holdout
            lines.append(f"holdout {h['path']} ({h['rows']} rows) decided"
                         + (f", between the fold means and the refits: {'refits' if h.get('decided_on') == 'refits' else 'fold means'}"
                            f" submitted (refits {h['refits_gain']:+.4f} in {h['metric']} for {h['choice']}, "
                            "better direction positive)" if h.get("refits_gain") is not None else ""))
        lines += self._fold_mean_lines()
        for n in self.notes():
            lines.append(f"note: {n}")
        per = self.per_label()
        if per:
            frame = __import__("pandas").DataFrame(per).T[["f1", "average_precision", "support"]]
            lines += ["", f"per label ({self.choice}, out of fold):",
                      _wrapped(frame.astype({"support": int}), lambda v: f"{v:.3f}")]
        return "\n".join(lines)

    def _fold_mean_lines(self) -> list[str]:
        f = self.fold_mean
        if not f:
            return []
        if "why" in f:
            return [f"fold mean: not decomposed ({f['why']})"]
        submitted = "what is submitted" if not self.refit else "not what is submitted: the refits take their places"
        return [f"fold mean of {f['method']} ({submitted}; out-of-fold squared error minus the fold ensembles' "
                f"ambiguity on {f['test_rows']} test rows, which the estimate assumes are drawn like the training "
                f"rows): mcrmse {f['mcrmse']:.4f}, rmse {f['rmse_all']:.4f} (out of fold: one fold model's, "
                f"mcrmse {float(np.mean(np.sqrt(f['oof_mse']))):.4f})"]

    def to_dict(self) -> dict:
        def clean(v):
            if isinstance(v, dict):
                return {str(k): clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            if isinstance(v, (np.floating, float)):
                return None if not np.isfinite(v) else float(v)
            if isinstance(v, np.integer):
                return int(v)
            if isinstance(v, np.ndarray):
                return clean(v.tolist())
            return v

        return clean({"headline": self.headline, "shift": self.shift, "task": self.task, "metric": self.metric, "rows": self.rows,
                      "where": self.where, "names": list(self.names), "members": dict(self.members),
                      "methods": {m: {"apparent": e.apparent, "cross_validated": e.cross_validated,
                                      "interval": list(e.interval), "gain": e.gain,
                                      "gain_interval": list(e.gain_interval),
                                      "weights": _weights_dict(e.weights)} for m, e in self.estimates.items()},
                      "choice": self.choice, "reason": self.reason, "holdout": dict(self.holdout),
                      "notes": self.notes(), "per_label": self.per_label(), "excluded": self.excluded,
                      "fold_mean": dict(self.fold_mean)})

    def to_html(self, figures: bool = True) -> str:
        from ensemble.tasks.base import PAGE_STYLE

        # as the classification page: headline, leaderboard (plot, table), decision; details folded
        parts = [f"<html><head><meta charset='utf-8'><title>ensemble report</title><style>{PAGE_STYLE}</style>"
                 "</head><body>", f"<h1>ensemble report: {html.escape(self.task)}</h1>",
                 f"<p class='headline'><b>{html.escape(headline_line(self.headline))}</b></p>", "<h2>Leaderboard</h2>",
                 *([self._leaderboard_plot()] if figures else []),
                 self.leaderboard().to_html(float_format=lambda v: f"{v:.4f}"),
                 f"<p class='decision'><b>auto</b>: {html.escape(self.reason)}</p>",
                 f"<details><summary><b>Details</b>: members and methods, per {self._what}, weights, notes and plots"
                 "</summary>",
                 "<h2>Members and methods</h2>", self.table.to_html(float_format=lambda v: f"{v:.4f}", na_rep="")]
        per, w = self.per_target(), self.weights_per_target()
        if per is not None and len(self.names) > 1:
            parts += [f"<h2>{html.escape(self._per_target_heading())}</h2>", per.to_html(float_format=lambda v: f"{v:.4f}")]
        if w is not None and len(self.names) > 1:
            parts += [f"<h2>weights of {html.escape(self._shown_method)} per {self._what}</h2>",
                      w.to_html(float_format=lambda v: f"{v:.3f}")]
        parts += [f"<p>note: {html.escape(n)}</p>" for n in self.notes()]
        if figures and self.task == "regression" and self.y is not None:
            parts.append(self._scatter())
        parts.append("</details></body></html>")
        return "<!doctype html>" + "\n".join(parts)

    def _leaderboard_plot(self) -> str:
        """The leaderboard as a plot: each method's honest estimate with its interval (orange), each
        member's own score (blue dot, no interval: scored on its own outputs), best first."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        board = self.leaderboard()
        members = {n: r.get(self.metric) for n, r in self.members.items()}
        names = list(board.index)[::-1] + list(members)[::-1]
        fig, ax = plt.subplots(figsize=(7, 0.42 * len(names) + 1.3))
        for i, name in enumerate(names):
            if name in board.index:
                r = board.loc[name]
                ax.errorbar(r["honest"], i, xerr=[[r["honest"] - r["low"]], [r["high"] - r["honest"]]], fmt="o",
                            color="tab:orange", capsize=3)
                ax.plot(r["apparent"], i, "x", color="tab:gray")
            elif members[name] is not None:
                ax.plot(members[name], i, "o", color="tab:blue")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel(f"{self.metric} ({'higher' if self._greater else 'lower'} is better)")
        ax.set_title("methods (orange: honest estimate and its 95% interval; grey x: apparent);\n"
                     "members (blue: their own outputs on the rows scored)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        return _img(plt, fig, "Leaderboard", dpi=100, bbox_inches="tight")

    def _repr_html_(self) -> str:
        return self.to_html()

    def _scatter(self) -> str:
        """Predicted (the chosen method, out of fold) against true, one panel per target."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        e, y = self.estimates[self.choice], self.y
        T = y.shape[1]
        fig, axes = plt.subplots(1, T, figsize=(3.2 * T, 3.2), squeeze=False)
        for j, ax in enumerate(axes[0]):
            ax.scatter(y[:, j], e.oof[:, j], s=6, alpha=0.5)
            lo, hi = float(min(y[:, j].min(), e.oof[:, j].min())), float(max(y[:, j].max(), e.oof[:, j].max()))
            ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
            ax.set_xlabel(f"true {self.names[j]}")
            ax.set_ylabel("predicted (out of fold)")
        fig.tight_layout()
        return "<h2>predicted versus true</h2>" + _img(plt, fig, "predicted versus true", dpi=80)


def _weights_dict(w) -> dict:
    W = np.asarray(w.weights)
    return {m: (W[i].tolist() if W.ndim == 2 else float(W[i])) for i, m in enumerate(w.models)}


def _img(plt, fig, alt: str, **savefig) -> str:
    """``fig`` as an inline PNG ``<img>`` (closed once drawn)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig)
    plt.close(fig)
    return f'<img alt="{alt}" src="data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode() + '">'


def _threshold_text(t) -> str:
    if t is None:
        return ""
    t = np.asarray(t, dtype=np.float64)
    return f"{float(t):.2f}" if t.ndim == 0 else f"per label {t.min():.2f}-{t.max():.2f}"


def _wrapped(frame, fmt, width: int = 100) -> str:
    """A table in blocks of columns that each fit ``width`` characters (a terminal's), the row
    names repeated: 40 labels never make one 400-character line."""
    import pandas as pd

    cols = list(frame.columns)
    if not cols:
        return frame.to_string()
    blocks, start = [], 0
    while start < len(cols):
        end = start + 1
        while end < len(cols) and len(frame[cols[start:end + 1]].to_string(float_format=fmt).splitlines()[0]) <= width:
            end += 1
        blocks.append(pd.DataFrame(frame[cols[start:end]]).to_string(float_format=fmt, na_rep=""))
        start = end
    return "\n\n".join(blocks)


def _weights_text(w) -> str:
    if w.stacker is not None:
        return "ridge stack" if w.task == "regression" else "logistic stack"
    W = np.asarray(w.weights)
    return ", ".join(f"{m} {W[i].mean() if W.ndim == 2 else W[i]:.2f}" for i, m in enumerate(w.models))
