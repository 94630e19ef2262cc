"""The :class:`Report`: the figures ``report`` computed, rendered as text, JSON and an HTML page."""

from __future__ import annotations

import base64
import html
import io
import logging
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ensemble.core.errors import option
from ensemble.estimates.headline import headline_line, holdout_note, refits_note, submitted_headline, with_shift

log = logging.getLogger(__name__)

__all__ = ['Report']


@dataclass
class Report:
    """What :func:`report` found; ``table`` is the main result.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per model and per ensemble method: kind, accuracy, macro_f1, log_loss, ece (on
        validation; apparent for methods), cv_* (cross-validated), gain and its interval vs
        uniform, McNemar p, weights, note.
    disagreement, error_correlation : pandas.DataFrame
        Model x model: share of rows whose predicted classes differ; Pearson correlation of the
        per-row error indicators.
    choice, reason : str
        What ``--weights auto`` would choose, and why.
    """

    table: object
    disagreement: object
    error_correlation: object
    choice: str
    reason: str
    metric: str
    rows: int
    excluded: list = field(default_factory=list)
    estimates: Mapping = field(default_factory=dict, repr=False)
    reliability: Mapping = field(default_factory=dict, repr=False)
    weights: Mapping = field(default_factory=dict, repr=False)
    winners_curse: Mapping = field(default_factory=dict)
    adjust: Mapping = field(default_factory=dict)
    confused: Sequence = field(default_factory=list)
    out_of_fold: Mapping = field(default_factory=dict)  # fold groups: the training rows and folds scored on
    holdout: Mapping = field(default_factory=dict)  # fold groups with a validation split: scores there
    inference: Mapping = field(default_factory=dict)  # the settings asked for, and each member's entry's
    submission: str | None = None  # the file the choice is submitted as, when a vote or run wrote it
    submitted: Mapping | None = None  # the headline of the vote that wrote it (its sidecar's)
    shift: Mapping | None = None  # the adversarial check of the test texts (ensemble.estimates.shift)

    def __repr__(self) -> str:
        """The table's text, as the terminal shows it (a REPL prints this; a notebook renders the page)."""
        return self.to_text()

    @property
    def headline(self) -> dict:
        """What is submitted and what it will score on unseen data, in one place:
        ``{submission, method, metric, estimate, low, high, of}``. ``of`` says what the estimate
        is of: "holdout" (the fold means, or the refits, scored on an untouched validation split),
        "out-of-fold" (fold groups: one fold model's rows, usually conservative for the fold mean)
        or "cross-validated" (the procedure refitted in each fold of the validation rows)."""
        return with_shift(_headline(self), self.shift)

    def leaderboard(self):
        """Uniform and every estimated method, best honest estimate first: the honest estimate
        (on the holdout when it decided, else cross-validated or out-of-fold) with its interval,
        the apparent score (fitted and scored on the same rows) and the optimism, apparent minus
        honest (pandas.DataFrame)."""
        return _leaderboard(self)

    @property
    def shown_metric(self) -> str:
        """The metric the leaderboard, the headline and the scores plot are in: the report's, when
        the table holds it (a scikit-learn scorer's name is compared by auto but not tabled: then
        accuracy)."""
        return self.metric if f"cv_{self.metric}" in self.table.columns else "accuracy"

    @property
    def where(self) -> str:
        """What the scores are on: "validation", or "out-of-fold" for fold groups."""
        return "out-of-fold" if self.out_of_fold else "validation"

    def _rows_line(self) -> str:
        k = next(iter(self.estimates.values())).folds if self.estimates else 5
        o = self.out_of_fold
        if not o:
            return f"validation: {self.rows} rows; cross-validated scores are out-of-fold ({k}-fold, repeated)"
        return (f"out-of-fold: {self.rows} training rows ({o['path']}), each scored by the fold model that never saw it; "
                f"cross-validated on the {o['k']} training folds. A fold group's test prediction averages its {o['k']} "
                "fold models, so these figures describe one fold model: usually conservative for the fold mean")

    def _fold_mean_lines(self) -> list[str]:
        f = (self.out_of_fold or {}).get("fold_mean")
        if not f:
            return []
        if "brier" not in f:
            return [f"the fold mean is not estimated beyond the out-of-fold figure: {f['why']}"]
        b = f["brier"]
        submitted = ("what is submitted" if not self.out_of_fold.get("refit") else
                     "not what is submitted: the refits take their groups' places")
        return [f"the fold mean of {f['method']} ({submitted}), estimated with the {b['test_rows']} unlabelled "
                f"test rows: Brier {b['estimate']:.4f} [{b['low']:.4f}, {b['high']:.4f}] = out-of-fold "
                f"{b['oof_brier']:.4f} minus the fold ensembles' ambiguity {b['ambiguity']:.4f} (exact, Krogh and "
                f"Vedelsby); accuracy about {f['accuracy']:.4f} (the Brier gain carried over by the members' slope; "
                f"out of fold, one fold model's: {f['oof_accuracy']:.4f}). Both assume the test rows are drawn "
                "like the training rows; a holdout drawn like the test is the check"]

    def _holdout_lines(self) -> list[str]:
        h = self.holdout
        refits = (self.out_of_fold or {}).get("refit") or {}
        if h.get("choice") is not None and refits and h.get("decided_on") == "fold means":
            lines = [f"refit: {r} is NOT submitted: the holdout chose the fold means (refits "
                     f"{h.get('refits_gain', float('nan')):+.4f} in {h['metric']} for {h['choice']} there)"
                     for g, r in refits.items()]
        else:
            lines = [f"refit: {r} takes the place of {g} on the test split, with its weight; it saw every training "
                     "row, so it has no out-of-fold score: the estimates above are the fold groups'"
                     + (f"; on the holdout, refits {h['refits_gain']:+.4f} in {h['metric']} for {h['choice']}"
                        if h.get("refits_gain") is not None else "")
                     for g, r in refits.items()]
        if not h:
            return lines
        used = h.get("used_by") or []
        touched = (f"NOT untouched: {h['overlap']} of its rows are also training rows" if h.get("overlap") else
                   f"NOT untouched: used to choose the checkpoints of {', '.join(used)}" if used else
                   "untouched by every fit")
        lines.append(f"holdout {h['path']} ({h['rows']} rows, {touched}; fold groups as their fold means, "
                     "methods as fitted on the out-of-fold rows):")
        if h.get("choice") is not None:
            submitted = "each refit in its group's place" if h.get("decided_on") == "refits" else "the fold means"
            lines.append(f"the holdout decides, scoring what is submitted ({submitted}); on the out-of-fold rows "
                         f"alone, one fold model's, auto would choose {h['oof_reason']}")
        return lines

    def holdout_table(self):
        """Each member and method on the holdout, beside its out-of-fold figure (pandas.DataFrame;
        None without a holdout)."""
        import pandas as pd

        h = self.holdout
        if not h:
            return None
        table = pd.DataFrame({"holdout accuracy": h["accuracy"], "out-of-fold estimate": h["cv_accuracy"]})
        metric = h.get("metric", "accuracy")
        if h.get("scores"):  # each holdout score in the metric the holdout decided by, with its interval
            at = 1
            if metric != "accuracy":
                table.insert(1, f"holdout {_SHOWN.get(metric, metric)}",
                             pd.Series({n: s["score"] for n, s in h["scores"].items()}))
                at = 2
            table.insert(at, "low", pd.Series({n: s["low"] for n, s in h["scores"].items()}))
            table.insert(at + 1, "high", pd.Series({n: s["high"] for n, s in h["scores"].items()}))
        return table

    # ------------------------------------------------------------------ text

    def _leaderboard_text(self) -> str:
        board = self.leaderboard()
        shown = board.assign(interval=[("" if lo is None or not np.isfinite(lo) else f"[{lo:.4f}, {hi:.4f}]")
                                       for lo, hi in zip(board["low"], board["high"])])
        return ("leaderboard (best honest estimate first; optimism = apparent - cross-validated on the same rows; "
                "auto: whether auto chooses among it):\n") + shown[
            ["honest", "interval", "of", "apparent", "optimism", "auto"]].to_string(
            float_format=lambda v: f"{v:.4f}", na_rep="-")

    def to_text(self) -> str:
        t = self.table
        lines = [headline_line(self.headline), self._leaderboard_text(), self._rows_line()]
        m = self.shown_metric
        extra = m not in ("accuracy", "macro_f1", "log_loss")  # a column of its own, and its cv figure
        head = ["", "kind", *([_SHOWN[m], _SHOWN["cv_" + m]] if extra else []), "acc", "macro-F1", "log loss", "ECE",
                "cv acc", f"gain in {_SHOWN.get(m, m)} vs uniform [95% interval]", "p"]
        g = "gain" if m == "accuracy" else f"gain_{m}"
        body = []

        def num(v) -> str:
            return "" if v is None or not np.isfinite(v) else f"{v:.4f}"

        for name, r in t.iterrows():
            gain = "" if not np.isfinite(r.get(g, np.nan)) else f"{r[g]:+.4f} [{r[g + '_low']:+.4f}, {r[g + '_high']:+.4f}]"
            body.append([name, r["kind"], *([num(r[m]), num(r["cv_" + m])] if extra else []), f"{r['accuracy']:.4f}",
                         f"{r['macro_f1']:.4f}", f"{r['log_loss']:.4f}", f"{r['ece']:.4f}", num(r["cv_accuracy"]),
                         gain, "" if np.isnan(r["mcnemar_p"]) else f"{r['mcnemar_p']:.3f}"])
        widths = [max(len(str(row[i])) for row in [head] + body) for i in range(len(head))]
        for row in [head] + body:
            lines.append("  ".join(str(v).ljust(w) if i < 2 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths))).rstrip())
        lines.append("(methods: acc etc. are apparent, fitted and scored on the same rows; cv acc is what to expect on unseen data)")
        for name, r in t.iterrows():
            if r["note"]:
                lines.append(f"note: {name}: {r['note']}")
        for name in self.excluded:
            lines.append(f"note: {name} is left out of weight fitting (see above); {option('include_optimistic')} to "
                         "use it")
        for method, w in self.weights.items():
            lines.append(f"weights {method}: " + ", ".join(f"{m}={v:.3f}" for m, v in w.items()))
        lines += self._winners_curse_lines()
        lines += self._adjust_lines()
        lines += self._confused_lines()
        lines.append("error correlation between models:")
        lines.append(self.error_correlation.round(3).to_string())
        lines += self._fold_mean_lines()
        lines += self._holdout_lines()
        if self.holdout:
            lines.append(self.holdout_table().to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))
        lines.append(f"auto -> {self.reason}")
        return "\n".join(lines)

    def _winners_curse_lines(self) -> list[str]:
        w = self.winners_curse
        if not w:
            return []
        lines = [f"winner's curse: the best of {w['members']} members, {w['best_member']}, scores {w['apparent_best']:.4f} "
                 f"{w.get('metric', 'accuracy')} on the {self.where} rows (apparent); picking the best there is expected to score {w['cv_best']:.4f} "
                 f"(cross-validated; the members' mean is {w['members_mean']:.4f})"]
        if w.get("k"):
            lines.append(f"winner's curse, best {w['k']}: the {w['k']} best averaged score {w['apparent_best_k']:.4f} "
                         f"(apparent), {w['cv_best_k']:.4f} cross-validated")
        if w.get("members_chosen_on_eval_set"):
            lines.append("winner's curse: the members themselves were chosen by the Trainer's eval metric; if the "
                         "Trainer evaluated on this split, both figures are optimistic (evaluate on another split)")
        return lines

    def _adjust_lines(self) -> list[str]:
        a = self.adjust
        if not a:
            return []
        under = "under the target prior" if a["target_prior"] is not None else f"on the {self.where} distribution"
        lines = [f"class priors, on top of {a['method']} (cross-validated, {under}):", f"  ({self._none_differs()})"]
        rows = [["adjust", "accuracy", "macro-F1", f"gain in {a['metric']} [95% interval]"]]
        rows.append(["none", f"{a['baseline']['accuracy']:.4f}", f"{a['baseline']['macro_f1']:.4f}", ""])
        for kind, e in a["kinds"].items():
            lo, hi = e["interval"][a["metric"]]
            rows.append([kind, f"{e['scores']['accuracy']:.4f}", f"{e['scores']['macro_f1']:.4f}",
                         f"{e['gain'][a['metric']]:+.4f} [{lo:+.4f}, {hi:+.4f}]"])
        rows.append([])
        rows.append(["per-class recall", "valid share" if not self.out_of_fold else "train share", *(["target share"] if a["target_prior"] is not None else []),
                     "none", *a["kinds"]])
        shown = _classes_to_show(a)
        for i, c in ((i, a["classes"][i]) for i in shown):
            rows.append([c, f"{a['validation_prior'][i]:.3f}",
                         *([f"{a['target_prior'][i]:.3f}"] if a["target_prior"] is not None else []),
                         f"{a['recall_before'][i]:.3f}", *(f"{e['recall'][i]:.3f}" for e in a["kinds"].values())])
        for block in (rows[:rows.index([])], rows[rows.index([]) + 1:]):
            widths = [max(len(r[i]) for r in block if i < len(r)) for i in range(max(map(len, block)))]
            lines += ["  " + "  ".join(v.ljust(w) if j == 0 else v.rjust(w) for j, (v, w) in enumerate(zip(r, widths))).rstrip()
                      for r in block]
        if len(shown) < len(a["classes"]):
            lines.append(f"  ... {len(a['classes']) - len(shown)} more classes (shown: the {len(shown)} whose recall changes "
                         "most or is lowest); every class is in report.html and --json")
        lines.append(f"adjust auto -> {a['reason']}")
        return lines

    def _confused_lines(self) -> list[str]:
        if not self.confused:
            return []
        top = self.confused[:5]
        # one pair a line: five pairs of long class names never make one 400-character line
        return (["most confused classes (true -> predicted, out-of-fold):"]
                + [f"  - {c['true']} -> {c['predicted']}: {c['rows']} row{'s' if c['rows'] != 1 else ''} "
                   f"({c['share_of_true']:.0%} of {c['true']})" for c in top]
                + ([f"  {len(self.confused) - len(top)} more pairs in --json and on the --html page"]
                   if len(self.confused) > len(top) else []))

    def _none_differs(self) -> str:
        """Why the "none" row of the class-prior table is not the method's accuracy in the main table."""
        a = self.adjust
        method = a["method"]
        main = self.table.loc[method, "accuracy"] if method in self.table.index else float("nan")
        why = ["out-of-fold" + (" (fitted on the other folds)" if method != "uniform" else "")]
        if a["target_prior"] is not None:
            why.append(f"each row weighted by its class's target share / {self.where} share")
        return (f"none is {method} scored {' and '.join(why)}; the main table's {main:.4f} scores {method} "
                f"on every {self.where} row alike" + (", fitted on them" if method != "uniform" else ""))

    def __str__(self) -> str:
        return self.to_text()

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict:
        def clean(v):
            if isinstance(v, (float, np.floating)):
                return None if np.isnan(v) else float(v)
            if isinstance(v, np.integer):
                return int(v)
            return v

        return {
            "headline": self.headline,
            "shift": self.shift,
            "leaderboard": {n: {k: clean(v) for k, v in r.items()} for n, r in self.leaderboard().iterrows()},
            "rows": self.rows,
            "metric": self.metric,
            "auto": {"choice": self.choice, "reason": self.reason},
            "table": {name: {k: clean(v) for k, v in r.items()} for name, r in self.table.iterrows()},
            "weights": {m: dict(w) for m, w in self.weights.items()},
            "winners_curse": {k: clean(v) for k, v in self.winners_curse.items()},
            "adjust": self.adjust,
            "confused_pairs": list(self.confused),
            "out_of_fold": dict(self.out_of_fold),
            "holdout": dict(self.holdout),
            "excluded_from_fitting": list(self.excluded),
            "inference": dict(self.inference),
            "disagreement": self.disagreement.round(6).to_dict(),
            "error_correlation": self.error_correlation.round(6).to_dict(),
        }

    # ------------------------------------------------------------------ HTML

    def _figures(self) -> list[tuple[str, str]]:
        import warnings

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        font = _hangul_font()
        names = " ".join(map(str, [*self.table.index, *self.confused_classes()]))
        with warnings.catch_warnings(), plt.rc_context({"font.family": [font, "DejaVu Sans"]} if font else {}):
            if not font and any(ord(ch) > 0x2FFF for ch in names):
                log.info("no font with Hangul (or other CJK) glyphs is installed: such names are drawn as boxes in the "
                         "page's plots (install fonts-nanum or fonts-noto-cjk); the tables show them")
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
            return self._draw(plt)

    def confused_classes(self) -> list[str]:
        """The classes named in the most confused pairs (the page's plots show them)."""
        return [str(pair[k]) for pair in self.confused for k in ("true", "predicted")]

    def _scores_figure(self, plt):
        """The leaderboard as a plot: models with their Wilson interval, uniform with its own,
        ensembles with the interval of their gain over uniform, apparent scores as grey x; in
        another metric than accuracy, every row with the bootstrap interval of its score."""
        t = self.table
        if self.shown_metric != "accuracy":
            return self._metric_figure(plt, self.shown_metric)
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(t) + 1.2))
        names = list(t.index)[::-1]
        for i, name in enumerate(names):
            r = t.loc[name]
            if r["kind"] == "model":
                ax.errorbar(r["accuracy"], i, xerr=[[r["accuracy"] - r["acc_low"]], [r["acc_high"] - r["accuracy"]]],
                            fmt="o", color="tab:blue", capsize=3)
            elif name == "uniform":  # its gain over itself is no interval: its own Wilson one
                from ensemble.estimates.resampling import wilson

                ax.plot(r["accuracy"], i, "x", color="tab:gray")
                lo, hi = wilson(int(round(r["cv_accuracy"] * self.rows)), self.rows)
                ax.errorbar(r["cv_accuracy"], i, xerr=[[r["cv_accuracy"] - lo], [hi - r["cv_accuracy"]]],
                            fmt="o", color="tab:green", capsize=3)
            else:
                ax.plot(r["accuracy"], i, "x", color="tab:gray")
                base = t.loc["uniform", "cv_accuracy"]
                ax.errorbar(r["cv_accuracy"], i, xerr=[[r["cv_accuracy"] - (base + r["gain_low"])],
                                                       [(base + r["gain_high"]) - r["cv_accuracy"]]],
                            fmt="o", color="tab:orange", capsize=3)
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel(f"{self.where} accuracy")
        ax.set_title("models (blue: 95% Wilson interval); uniform (green: cross-validated, 95% Wilson);\n"
                     "ensembles (orange: cross-validated, interval of the gain over uniform; grey x: apparent, "
                     "in-sample)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        return fig

    def _draw(self, plt) -> list[tuple[str, str]]:
        figs = []

        def png(fig) -> str:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
            plt.close(fig)
            return base64.b64encode(buf.getvalue()).decode()

        figs.append(("Scores", png(self._scores_figure(plt))))

        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot([0, 1], [0, 1], ":", color="gray")
        # the ensembles that matter highlighted (uniform, the choice); members thin and grey
        shown = {"uniform", f"{self.choice} (out-of-fold)", self.choice}
        for name, (conf, acc, count) in self.reliability.items():
            keep = count > 0
            if name in shown:
                ax.plot(conf[keep], acc[keep], "o-", label=name, markersize=4, lw=2.2, zorder=3)
            elif name.endswith("(out-of-fold)"):
                ax.plot(conf[keep], acc[keep], "--", label=name, lw=1, alpha=0.6)
            else:
                ax.plot(conf[keep], acc[keep], "-", color="0.6", lw=0.8, alpha=0.7,
                        label="members" if not any(t.get_label() == "members" for t in ax.lines) else None)
        ax.set_xlabel("confidence (top-class probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"reliability diagram ({self.where}; ensemble out-of-fold)", fontsize=9)
        ax.legend(fontsize=7)
        figs.append(("Reliability", png(fig)))

        corr = self.error_correlation
        fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(corr), 0.8 + 0.7 * len(corr)))
        im = ax.imshow(corr.to_numpy(dtype=float), vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_xticks(range(len(corr)), corr.columns, rotation=45, ha="right")
        ax.set_yticks(range(len(corr)), corr.index)
        for i in range(len(corr)):
            for j in range(len(corr)):
                v = corr.iat[i, j]
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if abs(v) > 0.5 else "black")
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title("error correlation (lower: more to gain)", fontsize=9)
        figs.append(("Error correlation", png(fig)))

        if self.weights:
            methods = list(self.weights)
            models = list(next(iter(self.weights.values())))
            fig, ax = plt.subplots(figsize=(7, 0.5 * len(models) * len(methods) / 2 + 1.5))
            h = 0.8 / len(methods)
            for k, m in enumerate(methods):
                ax.barh(np.arange(len(models)) + k * h, [self.weights[m][x] for x in models], height=h, label=m)
            ax.set_yticks(np.arange(len(models)) + 0.4 - h / 2, models)
            ax.set_xlabel("weight")
            ax.legend(fontsize=7)
            ax.set_title(f"fitted weights (on all {self.where} rows)", fontsize=9)
            figs.append(("Weights", png(fig)))
        return figs

    def _metric_figure(self, plt, metric: str):
        """:meth:`_scores_figure` in ``metric``: models at their score, uniform and the ensembles at
        their cross-validated one, each with its 95% bootstrap interval over the rows."""
        t = self.table
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(t) + 1.2))
        names = list(t.index)[::-1]
        for i, name in enumerate(names):
            r = t.loc[name]
            model = r["kind"] == "model"
            value = r[metric] if model else r[f"cv_{metric}"]
            low, high = (r[f"{metric}_low"], r[f"{metric}_high"]) if model else (r[f"cv_{metric}_low"],
                                                                                 r[f"cv_{metric}_high"])
            if not model:
                ax.plot(r[metric], i, "x", color="tab:gray")
            color = "tab:blue" if model else "tab:green" if name == "uniform" else "tab:orange"
            if np.isfinite(low) and np.isfinite(high):
                ax.errorbar(value, i, xerr=[[max(0.0, value - low)], [max(0.0, high - value)]], fmt="o", color=color,
                            capsize=3)
            else:
                ax.plot(value, i, "o", color=color)
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel(f"{self.where} {_SHOWN.get(metric, metric)}")
        ax.set_title("models (blue), uniform (green), ensembles (orange: cross-validated), each with its 95% "
                     "bootstrap interval;\ngrey x: apparent, in-sample", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        return fig

    def _table_html(self) -> str:
        """The members and methods table of the page (the primary metric's columns and its gain
        when it is not accuracy), and the notes under it."""
        m = self.shown_metric
        extra = [] if m in ("accuracy", "macro_f1", "log_loss") else [m, f"cv_{m}"]
        g = "gain" if m == "accuracy" else f"gain_{m}"  # the gain over uniform in the metric
        cols = ["kind", *extra, "accuracy", "macro_f1", "log_loss", "ece", "cv_accuracy", g, f"{g}_low", f"{g}_high",
                "mcnemar_p", "note"]
        shown = {**_SHOWN, **({} if g == "gain" else {g: f"gain in {_SHOWN.get(m, m)} vs uniform",
                                                     f"{g}_low": "gain, 95% low", f"{g}_high": "gain, 95% high"})}
        out = self.table[cols].rename(columns=shown).to_html(float_format=lambda v: f"{v:.4f}", na_rep="", escape=True)
        notes = [f"<li>{html.escape(n)}: {html.escape(r['note'])}</li>" for n, r in self.table.iterrows() if r["note"]]
        if notes:  # right under the table the notes are about
            out += "<h3>Notes</h3><ul class='note'>" + "".join(notes) + "</ul>"
        return out

    def to_html(self, figures: bool = True) -> str:
        from ensemble.tasks.base import PAGE_STYLE as style

        table_html = self._table_html()
        figures = list(self._figures()) if figures else []
        scores = [f for f in figures if f[0] == "Scores"]
        # read top-down: the headline, the leaderboard (its plot with intervals, then its table), the
        # decision in one sentence; everything else folded below
        parts = [f"<html><head><meta charset='utf-8'><title>ensemble report</title><style>{style}</style></head><body>",
                 "<h1>ensemble report</h1>",
                 f"<p class='headline'><b>{html.escape(headline_line(self.headline))}</b></p>",
                 "<h2>Leaderboard</h2>",
                 *[f"<img alt='Scores' src='data:image/png;base64,{data}'>" for _, data in scores],
                 self.leaderboard().to_html(float_format=lambda v: f"{v:.4f}", na_rep="", escape=True),
                 f"<p class='decision'><b>auto</b>: {html.escape(self.reason)}"
                 + (f"<br><b>adjust auto</b>: {html.escape(self.adjust['reason'])}" if self.adjust else "") + "</p>",
                 "<details><summary><b>Details</b>: members and methods, the holdout, the winner's curse, class "
                 "priors, confusions, the models' agreement and the plots</summary>",
                 (f"<p>{self.rows} validation rows. " if not self.out_of_fold else
                  f"<p>{html.escape(self._rows_line())}. ") + f"<b>auto</b>: {html.escape(self.reason)}</p>",
                 *[f"<p>{html.escape(line)}</p>" for line in self._holdout_lines()],
                 *([] if not self.holdout else [self.holdout_table().to_html(float_format=lambda v: f"{v:.4f}",
                                                                             na_rep="", escape=True)]),
                 f"<p>Model scores are on the {self.where} rows. For ensemble methods, <i>accuracy</i> etc. are "
                 "apparent (fitted and scored on the same rows) and <i>cv accuracy</i> is cross-validated "
                 "(out-of-fold): what to expect on unseen data. <i>gain</i> is the cross-validated "
                 f"{html.escape(_SHOWN.get(self.shown_metric, self.shown_metric))} over uniform averaging, with its "
                 "95% paired bootstrap interval.</p>", table_html]
        curse = self._winners_curse_lines()
        if curse:
            parts.append("<h2>Winner's curse</h2>" + "".join(f"<p>{html.escape(line)}</p>" for line in curse))
        if self.adjust:
            a = self.adjust
            import pandas as pd

            under = "under the target prior" if a["target_prior"] is not None else f"on the {self.where} distribution"
            scores = pd.DataFrame(
                {k: {"accuracy": e["scores"]["accuracy"], "macro_f1": e["scores"]["macro_f1"],
                     "gain": e["gain"][a["metric"]], "gain_low": e["interval"][a["metric"]][0],
                     "gain_high": e["interval"][a["metric"]][1]} for k, e in
                 {"none": {"scores": a["baseline"], "gain": {a["metric"]: 0.0},
                           "interval": {a["metric"]: (0.0, 0.0)}}, **a["kinds"]}.items()}).T
            recall = {f"{self.where} share": a["validation_prior"]}
            if a["target_prior"] is not None:
                recall["target share"] = a["target_prior"]
            recall["recall: none"] = a["recall_before"]
            recall.update({f"recall: {k}": e["recall"] for k, e in a["kinds"].items()})
            parts.append(f"<h2>Class priors</h2><p>On top of <b>{html.escape(a['method'])}</b>, cross-validated "
                         f"{under}; gain in {html.escape(a['metric'])} over no adjustment with its 95% interval "
                         f"({html.escape(self._none_differs())}). <b>adjust auto</b>: {html.escape(a['reason'])}</p>")
            parts.append(scores.rename(columns=_SHOWN).to_html(float_format=lambda v: f"{v:.4f}"))
            parts.append("<p>Per-class recall before and after (out-of-fold):</p>")
            parts.append(pd.DataFrame(recall, index=a["classes"]).to_html(float_format=lambda v: f"{v:.3f}"))
        if self.confused:
            import pandas as pd

            parts.append(f"<h2>Most confused classes</h2><p>The ensemble ({html.escape(self.choice)}) out of fold: "
                         f"{self.where} rows of a true class predicted as another, the most frequent pairs first.</p>")
            parts.append(pd.DataFrame(self.confused).rename(columns=_SHOWN).to_html(index=False, escape=True,
                                                             float_format=lambda v: f"{v:.3f}"))
        parts.append("<h2>Between models</h2><p>Error correlation: Pearson correlation of the per-row "
                     "error indicators (lower: more to gain from combining).</p>")
        parts.append(self.error_correlation.to_html(float_format=lambda v: f"{v:.3f}"))
        parts.append(f"<p>Disagreement: share of {self.where} rows whose predicted classes differ.</p>")
        parts.append(self.disagreement.to_html(float_format=lambda v: f"{v:.3f}"))
        for title, data in figures:
            if title != "Scores":
                parts.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
                             f"src='data:image/png;base64,{data}'>")
        parts.append("</details></body></html>")
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        return self.to_html(figures=False)


def reliability_curve(proba: np.ndarray, y: np.ndarray, bins: int | None = None):
    """(mean confidence, accuracy, rows) per equal-width bin of the top-class probability.
    ``bins`` defaults to one per 40 rows, 4 to 10: 200 rows in 15 bins is noise, not a curve."""
    bins = int(np.clip(len(y) // 40, 4, 10)) if bins is None else bins
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    idx = np.clip((conf * bins).astype(int), 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(idx, conf, minlength=bins) / count
        acc = np.bincount(idx, correct, minlength=bins) / count
    return mean_conf, acc, count


# The page's column headings: words, not the JSON's keys.
_SHOWN = {"macro_f1": "macro-F1", "log_loss": "log loss", "ece": "ECE", "cv_accuracy": "cv accuracy",
          "gain": "gain vs uniform", "gain_low": "gain, 95% low", "gain_high": "gain, 95% high",
          "mcnemar_p": "McNemar p", "share_of_true": "share of the true class", "roc_auc": "ROC AUC",
          "cv_roc_auc": "cv ROC AUC", "qwk": "QWK", "cv_qwk": "cv QWK"}


def _hangul_font() -> str | None:
    """The name of an installed font with Hangul glyphs (Nanum, Noto CJK, Malgun, Apple), or None."""
    from matplotlib import font_manager

    wanted = ("NanumGothic", "Noto Sans CJK KR", "Noto Sans KR", "Malgun Gothic", "AppleGothic", "Noto Sans CJK JP",
              "Source Han Sans KR", "UnDotum", "Baekmuk Gulim")
    have = {f.name for f in font_manager.fontManager.ttflist}
    return next((n for n in wanted if n in have), None)


# Above this many classes the terminal's per-class table shows a selection (the page has them all).
TEXT_CLASSES = 12


def _classes_to_show(a: Mapping) -> list[int]:
    """Indices of the classes the terminal shows: all of them up to :data:`TEXT_CLASSES`, else
    the ones whose recall changes most under an adjustment and the ones with the lowest recall."""
    C = len(a["classes"])
    if C <= TEXT_CLASSES:
        return list(range(C))
    before = np.nan_to_num(np.asarray(a["recall_before"], dtype=float), nan=1.0)
    change = np.zeros(C)
    for e in a["kinds"].values():
        change = np.maximum(change, np.abs(np.nan_to_num(np.asarray(e["recall"], dtype=float) - before)))
    half = TEXT_CLASSES // 2
    picked = list(np.argsort(-change, kind="stable")[:half])
    picked += [i for i in np.argsort(before, kind="stable") if i not in picked][:TEXT_CLASSES - len(picked)]
    return sorted(int(i) for i in picked)


def confused_pairs(pred: np.ndarray, y: np.ndarray, labels: Sequence[str], top: int = 20) -> list[dict]:
    """The ``top`` most frequent (true class, predicted class) pairs of errors, as dicts of
    ``true``, ``predicted``, ``rows`` and ``share_of_true`` (the share of the true class's rows);
    O(n + pairs), not a C x C matrix."""
    C = len(labels)
    wrong = pred != y
    codes, counts = np.unique(y[wrong].astype(np.int64) * C + pred[wrong], return_counts=True)
    support = np.bincount(y, minlength=C)
    order = np.lexsort((codes, -counts))[:top]
    return [{"true": labels[codes[i] // C], "predicted": labels[codes[i] % C], "rows": int(counts[i]),
             "share_of_true": float(counts[i] / support[codes[i] // C])} for i in order]


def _honest(report: Report, name: str) -> tuple[float, float | None, float | None, str, str]:
    """(estimate, low, high, of, metric) of one row: its holdout score when the holdout decided,
    else its cross-validated (or out-of-fold) score, in the report's metric when the table holds
    it (a scikit-learn scorer's is not: then in accuracy)."""
    h = report.holdout
    if h.get("choice") is not None:
        suffix = " with refits" if h.get("decided_on") == "refits" else ""
        s = h["scores"].get(name + suffix)
        if s is not None:
            return s["score"], s["low"], s["high"], "holdout", h["metric"]
    metric = report.shown_metric
    r = report.table.loc[name]
    of = "out-of-fold" if report.out_of_fold else "cross-validated"
    if metric == "accuracy":
        return float(r["cv_accuracy"]), _finite(r.get("cv_low")), _finite(r.get("cv_high")), of, metric
    value = r.get(f"cv_{metric}")
    return ((float(value) if _finite(value) is not None else float(r[metric])), _finite(r.get(f"cv_{metric}_low")),
            _finite(r.get(f"cv_{metric}_high")), of, metric)


def _finite(v):
    return None if v is None or not np.isfinite(v) else float(v)


def _headline(report: Report) -> dict:
    def figure(name: str) -> dict:
        estimate, low, high, of, metric = _honest(report, name)
        out = {"metric": metric, "estimate": estimate, "low": low, "high": high, "of": of}
        note = holdout_note(report.holdout) if of == "holdout" else None
        refits = (report.out_of_fold or {}).get("refit")
        if of == "out-of-fold" and refits:  # the refits are submitted, and no figure here is of them
            note = refits_note(refits)
        return {**out, "note": note} if note else out  # said wherever the headline is

    def honest(name: str) -> dict | None:  # a method the vote submitted: its row, when the report has one
        t = report.table
        return figure(name) if name in t.index and t.loc[name, "kind"] in ("ensemble", "selection") else None

    return submitted_headline({"submission": report.submission, "method": report.choice, **figure(report.choice)},
                              report.submitted, honest)


def _leaderboard(report: Report):
    import pandas as pd

    t = report.table
    metric = report.shown_metric  # what "honest", "apparent" and "optimism" are in
    from ensemble.tasks.classification.task import greater
    from ensemble.tasks.classification.estimate import AUTO_METHODS

    names = [n for n in t.index if t.loc[n, "kind"] in ("ensemble", "selection")]
    rows = {}
    for n in names:
        estimate, low, high, of, _ = _honest(report, n)
        apparent = float(t.loc[n, metric])
        # like from like: fitted and scored on the rows (apparent) minus refitted out of them (the
        # cross-validated or out-of-fold score of the same rows), never minus a holdout's figure;
        # for a loss the other way round, so that optimism is positive
        same_rows = _finite(t.loc[n, f"cv_{metric}"]) if f"cv_{metric}" in t.columns else None
        sign = 1 if greater(metric) else -1
        rows[n] = {"honest": estimate, "low": low, "high": high, "of": of, "apparent": apparent,
                   "optimism": sign * (apparent - same_rows) if same_rows is not None else float("nan"),
                   "auto": "candidate" if n == "uniform" or n in AUTO_METHODS else "not considered"}
    board = pd.DataFrame.from_dict(rows, orient="index")
    return board.sort_values("honest", ascending=not greater(_honest(report, report.choice)[4]), kind="stable")
