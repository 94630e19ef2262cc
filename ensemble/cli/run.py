"""``ensemble run``: average, predict, vote and report for a project file, each step cached.

1. every run under ``[runs]`` is averaged into ``weights/<run>-top<k>``, unless that folder's
   manifest already lists the same checkpoints with the same weight-file digests;
2. every member is run over the validation and test splits, unless the logit cache holds an
   entry for the member's content and the split's content;
3. the vote and 4. the report are redone only when their inputs (members' and data digests,
   options) changed since the last run; the state is kept in ``.ensemble/run.json``.

Each step says what it did and what it found up to date.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ensemble.core.errors import EnsembleError
from ensemble.io.atomic import atomic_write
from ensemble.io.hashing import file_digest
from ensemble.workflows.inputs import Inputs
from ensemble.workflows.members import resolve_members

log = logging.getLogger(__name__)

__all__ = ['run_project', 'RunResult']

STATE = "run.json"


@dataclass
class RunResult:
    submission: Path
    report_html: Path
    report_text: str
    redone: dict  # step -> number of things recomputed


def _digest(obj) -> str:
    from blake3 import blake3

    return blake3(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _submission_unchanged(path: Path, digest: str | None) -> bool:
    """The submission is the last run's and its sidecar describes it (a kill between the two
    writes, or an edit of either, is reported and voted again)."""
    from ensemble.workflows.submission import sidecar_matches, sidecar_path

    if not _unchanged(path, digest):
        return False
    if not sidecar_matches(path):
        log.warning("%s does not describe %s (its checksum differs or it is missing): voting again",
                    sidecar_path(path), path)
        return False
    return True


def _unchanged(path: Path, digest: str | None) -> bool:
    """Up to date means the file's content is what the last run wrote, not that a file exists."""
    return digest is not None and path.is_file() and file_digest(path) == digest


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to the project folder when inside it: the state survives a copy or move."""
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def _write_state(path: Path, state: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8"))


def run_project(project, *, k: int | None = None, weights: str | None = None, progress: bool = False,
                name: str = "ensemble", trust_remote_code: bool = False) -> RunResult:
    """Average, predict, vote and report for ``project`` (a :class:`~ensemble.cli.project.Project`).
    Errors name the keys of its file that fix them (``text = ...`` in ``[data]``), never a flag."""
    from ensemble.core.errors import project_scope

    with project_scope(project.path, project.member_names()):
        return _run(project, k=k, weights=weights, progress=progress, name=name, trust_remote_code=trust_remote_code)


def _run(project, *, k, weights, progress, name, trust_remote_code=False) -> RunResult:
    from ensemble.data.splits import load_split
    from ensemble.inference.cache import OutputCache
    p = project
    # fold groups fit on the training split's out-of-fold rows (valid, when given, is a holdout)
    for split in ("train", "test") if p.folds else ("valid", "test"):
        if split not in p.data:
            raise EnsembleError(f"{p.path}: [data] needs {split} = \"...\" for ensemble run")
    members = {**{n: None for n in p.runs}, **{n: m.path for n, m in p.models.items()}}
    if not members:
        raise EnsembleError(f"{p.path}: no [models] and no [runs]; list at least one member")
    cache = OutputCache(p.cache_dir)
    redone = {"average": 0, "predict": 0, "vote": 0, "report": 0}
    columns = {**p.columns, "label_if_present": True}
    names = ("train", "valid", "test") if p.folds else ("valid", "test")
    splits = {s: load_split(p.data[s], name=s, **columns) for s in names if s in p.data}
    training = None
    if p.folds:
        from ensemble.workflows.foldgroups import open_training_folds

        training = open_training_folds(splits["train"], p.folds, fold_column=p.fold_column,
                                       encoding=columns.get("encoding"))
    from ensemble.cli.project import adjust_settings, weights_setting

    weights = weights_setting(p, weights)
    adjust, prior, adjust_metric = adjust_settings(p)
    # how the vote fits (the procedure's settings), apart from what it reads (the inputs)
    settings = dict(combine=p.vote.get("combine") or "prob", adjust=adjust, prior=prior, adjust_metric=adjust_metric)
    # regression and multi-label: the primary metric, the threshold and clipping ([vote]); the task ([data])
    values = {"metric": p.vote.get("metric"), "threshold": p.vote.get("threshold", "global"),
              "clip": p.vote.get("clip", False)}
    # what would fail at the end, said before any model is averaged or run
    _check_vote_options(p, _check_run_heads(p), {**settings, **values, "weights": weights}, weights)
    if p.sample_submission is not None:
        _check_sample_ids(p, splits["test"])
    members.update(_averages(p, k, cache, progress, redone, None if training is None else training.k,
                             trust_remote_code))
    # once (DIR@top3 expanded, {fold} paths as fold groups), for the predictions, the vote and the report
    members = resolve_members(members, None if training is None else training.k)
    trusted = {m.name for m in members} if trust_remote_code else set(p.trusted)
    from ensemble.inference.settings import InferenceSettings

    inference = InferenceSettings.of(p.predict)  # what predict computes, and which entries vote and report read
    digests = _predictions(members, splits, cache, progress, redone, training, trusted, inference, p.task)

    if values["clip"] and "train" in p.data and "train" not in splits:
        # clipping's range is the training labels', as ensemble vote reads it: read, never predicted
        splits = {**splits, "train": load_split(p.data["train"], name="train", **columns)}
    state_path = p.root / ".ensemble" / STATE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    # everything the vote and the report depend on: members, texts, labels and their column, options
    base = {"models": digests, "data": {s: x.digest for s, x in splits.items()},
            "labels": {s: x.labels_digest for s, x in splits.items()},
            "folds": None if training is None else training.describe()["folds_digest"], "refit": p.refit,
            "adjust": adjust, "adjust_metric": adjust_metric, "inference": inference.requested(),
            "trained_on_valid": p.trained_on_valid, "task": p.task, "values": values,
            "outputs": {n: list(o) for n, o in p.outputs.items()},
            "prior": cache.file_digest(prior) if isinstance(prior, Path) and prior.is_file() else prior}
    inputs = Inputs(members, splits, columns=columns, folds=training, refit=p.refit, cache_dir=cache.root,
                    inference=inference, class_order=p.vote.get("class_order"), task=p.task, outputs=p.outputs)
    settings["values"] = values
    # the report is computed first and written last: a report that fails leaves no submission behind
    finish_report = _report_step(p, inputs, cache, state, state_path, base, settings, weights, redone)
    submission = _vote_step(p, inputs, cache, state, state_path, base, weights, name, settings, redone)
    html_path, text = finish_report(submission)
    return RunResult(submission, html_path, text, redone)


def _point_again(submission: Path) -> None:
    """``latest.json`` points at the submission an up-to-date run names again (a manual vote since
    may have pointed it at its own file)."""
    from ensemble.workflows.submission import LATEST, point_latest, sidecar_path

    try:
        pointed = json.loads((submission.parent / LATEST).read_text(encoding="utf-8")).get("submission")
    except (OSError, ValueError, AttributeError):
        pointed = None
    if pointed != submission.name:
        point_latest(submission, json.loads(sidecar_path(submission).read_text(encoding="utf-8")))
        log.info("%s points at %s again (a vote since had pointed it at %s)", submission.parent / LATEST,
                 submission.name, pointed)


def _check_vote_options(p, found, options: dict, weights: str) -> None:
    """The vote's ``options`` (as ``ensemble run`` will give them, with ``weights``) checked by
    the members' task (``[data] task``, else the one their heads suggest) before anything is
    averaged or run, as the vote would check them at the end: a metric of another task, a rank
    average for a metric that is not ROC AUC..."""
    from ensemble.core.options import weights_kind
    from ensemble.tasks import task_named

    task = task_named(p.task) if p.task else found
    if task is None and not p.runs:  # ready model folders alone: their heads
        from ensemble.io.modelfiles import head_of, read_config
        from ensemble.tasks import task_for_head

        tasks = {task_for_head(head_of(dict(read_config(m.path)))) for m in p.models.values()
                 if (Path(m.path) / "config.json").is_file()}
        task = tasks.pop() if len(tasks) == 1 else None
    if task is None:
        return
    try:
        task.check_options({k: v for k, v in options.items() if v is not None}, kind=weights_kind(weights))
    except EnsembleError as e:
        raise EnsembleError(f"{p.path}: [vote]: {e}") from None


def _check_run_heads(p):
    """A [runs] entry whose checkpoints have a head no task runs (question answering, say), or
    runs of different tasks, refused before anything is averaged, naming their keys; read from the first checkpoint's
    config.json (a run whose checkpoints cannot be found is left to the average's own error).
    Returns the task of the runs' heads, when they agree on one (else None)."""
    from ensemble.io.modelfiles import head_of
    from ensemble.tasks import TASKS, task_for_head
    from ensemble.workflows.members import fold_path

    found: dict[str, str] = {}  # task -> the first run of it
    for name, run in p.runs.items():
        root = fold_path(run.path, 0)
        config = next((c for pattern in ("checkpoint-*/config.json", "*/checkpoint-*/config.json", "config.json")
                       for c in sorted(root.glob(pattern))), None)
        if config is None:
            continue
        try:
            head = head_of(json.loads(config.read_text(encoding="utf-8")))
        except (OSError, ValueError, AttributeError):
            continue
        task = task_for_head(head)
        if task is None:
            said = [n.replace("_", "-") for n in TASKS]
            raise EnsembleError(f"{p.path}: [runs] {name}: its checkpoints ({config.parent}) are {head.describe()}; "
                                f"ensemble runs {', '.join(said[:-1])} and {said[-1]} heads: remove {name} from [runs]")
        found.setdefault(task.name, name)
        if len(found) > 1:
            (ta, a), (tb, b) = list(found.items())[:2]
            raise EnsembleError(f"{p.path}: [runs] {a} is {ta} and {b} is {tb}; an ensemble combines members of one "
                                f"task: keep the runs of one task in [runs]")
    return TASKS[next(iter(found))] if len(found) == 1 else None


def _check_sample_ids(p, test) -> None:
    """The sample submission's ids are the test file's, checked before any model runs; when they
    are not because the test file's id column is another one, the message names ``id = "..."``."""
    from ensemble.data.sample_submission import read_sample, sample_order

    try:
        sample_order(p.sample_submission, test.ids)
    except EnsembleError as e:
        try:
            sid = read_sample(p.sample_submission).columns[0]
        except EnsembleError:  # the sample's own error is the one to give
            raise e from None
        if sid != test.id_column and sid in test.columns:  # any format: the split's columns
            raise EnsembleError(f"{p.sample_submission}: its ids ({sid}) are not the test file's "
                                f"({test.id_column or 'row numbers: no id column'}); set id = \"{sid}\" in [data] "
                                f"of {p.path}") from None
        raise


def _averages(p, k, cache, progress, redone, folds: int | None = None, trust_remote_code: bool = False) -> dict[str, Path]:
    """1. Every [runs] entry averaged into its output folder, unless that folder is up to date; a
    run with ``{fold}`` in its path is K runs, each averaged into its own folder."""
    from ensemble.workflows.members import FOLD, fold_path

    outputs = {}
    for run in p.runs.values():
        out = p.run_output(run, k)
        if FOLD not in str(run.path):
            _average(p, run, run.path, out, k, cache, progress, redone, trust_remote_code)
        elif folds is None:
            raise EnsembleError(f"{p.path}: [runs] {run.name} ({run.path}) is a fold group; add folds = \"FILE\" and "
                                "train = \"FILE\" to [data]")
        else:
            for i in range(folds):
                path = fold_path(run.path, i)
                if not path.is_dir():
                    raise EnsembleError(f"{path}: fold {i} of [runs] {run.name} in {p.path} does not exist ({folds} "
                                        "folds); fix its path (fold numbers run 0..k-1)")
                _average(p, run, path, fold_path(out, i), k, cache, progress, redone, trust_remote_code)
        outputs[run.name] = out
    return outputs


def _average(p, run, path: Path, out: Path, k, cache, progress, redone, trust_remote_code=False) -> None:
    """One run's top-K average, unless ``out`` is up to date."""
    from ensemble.averaging.build import average_checkpoints
    from ensemble.averaging.manifest import stale_average
    from ensemble.averaging.selection import MissingTokenizer

    kk = k or run.k or 4
    options = dict(tokenizer=run.tokenizer, across_trials=run.across_trials, greater_is_better=run.greater_is_better,
                   trust_remote_code=trust_remote_code or run.trust_remote_code)
    try:
        why = stale_average(out, path, kk, run.metric, file_digest=cache.file_digest, **options)
        if why is None:
            log.info("average %s: up to date (%s)", run.name, out)
        else:
            log.debug("average %s: %s (%s)", run.name, why, out)
            average_checkpoints(path, k=kk, metric=run.metric, out=out, force=True, progress=progress, **options)
            redone["average"] += 1
    except MissingTokenizer as e:
        raise EnsembleError(f"{e.checkpoint}: {e.PROBLEM}; add tokenizer = \"<base model folder>\" to [runs] "
                            f"{run.name} in {p.path}") from None


def _predictions(members, splits, cache, progress, redone, training, trusted, inference, task=None) -> dict[str, str]:
    """2. Every member's logits over its splits (a fold model's: its held-out training rows and
    the other splits), computed where the cache has none with the settings in force
    (``inference``, [predict] of the project); returns the members' content digests. The members
    named in ``trusted`` may run the code their folders ship (``trust_remote_code``)."""
    from ensemble.workflows.foldgroups import group_fingerprint, member_jobs
    from ensemble.workflows.predict import predict_jobs

    jobs = member_jobs(members, splits, training, task)
    fingerprint = {ref.name: ref.fingerprint(cache.file_digest) for _, ref, _ in jobs}
    parts: dict[str, list[str]] = {}  # each member's model fingerprints: one, or a fold group's K in fold order
    for member, ref, _ in jobs:
        parts.setdefault(member, []).append(fingerprint[ref.name])
    digests = {m.name: group_fingerprint(parts[m.name], m.name) if m.is_fold_group else parts[m.name][0]
               for m in members}
    rows = predict_jobs(jobs, inference, cache, read=False, trusted=trusted, progress=progress, fingerprints=fingerprint)
    done = [r for r in rows if r.how != "up to date"]
    redone["predict"] += len(done)
    if done:
        log.info("predict: %d computed, %d up to date in the cache", len(done), len(rows) - len(done))
    else:
        log.info("predict: all %d (model, split) logits up to date in the cache", len(rows))
    return digests


def _vote_step(p, inputs, cache, state, state_path, base, weights, name, settings, redone) -> Path:
    """3. The vote, unless its key (every input) and the submission's and sidecar's digests are
    those of the last run."""
    from ensemble.estimates.headline import VOTE_LOGGER
    from ensemble.workflows.vote import vote

    sample = p.sample_submission
    weights_file = Path(weights) if weights.endswith(".json") or Path(weights).is_file() else None
    vote_key = _digest({**base, "weights": weights, "combine": settings["combine"], "name": name,
                        "class_order": p.vote.get("class_order"),
                        "weights_file": file_digest(weights_file) if weights_file and weights_file.is_file() else None,
                        "sample": cache.file_digest(sample) if sample is not None and sample.is_file() else None})
    submission = p.root / state.get("submission", "?")
    if state.get("vote_key") == vote_key and _submission_unchanged(submission, state.get("submission_digest")):
        log.info("vote: up to date (%s)", submission)
        _point_again(submission)
        return submission
    # the vote's own lines (auto ->, adjust auto ->, the weights, the path) would repeat what the
    # report below and the last line say: its warnings alone, then one line here
    from ensemble.workflows import submission as writing

    quiet = [logging.getLogger(m) for m in (VOTE_LOGGER, writing.__name__)]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.WARNING)
    # run replaces the submission it wrote last (unchanged since); one that a manual vote wrote under
    # the same name is kept, and this one takes the next free name
    own = [submission] if _unchanged(submission, state.get("submission_digest")) else []
    try:
        frame = vote(inputs, weights=weights, sample_submission=sample, name=name, weights_dir=p.root / "weights",
                     submissions_dir=p.root / "submissions", trained_on_valid=p.trained_on_valid, force=own,
                     **{k: v for k, v in settings.items() if k != "values"}, **settings["values"])
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    import numpy as np

    fitted = frame.attrs["weights"]
    members_said = ("a stacker over " + ", ".join(fitted.models) + " (no weight per member)" if getattr(fitted, "stacker", None) else
                    ", ".join(f"{m}={float(np.mean(w)):.3f}" for m, w in zip(fitted.models, fitted.weights)))
    adjustment = getattr(fitted, "adjustment", None)
    threshold = getattr(fitted, "threshold", None)
    log.info("vote: %s, %s", fitted.method + (f" + {adjustment['kind']}" if adjustment and
                                               adjustment.get("kind") != "none" else ""), members_said
             + ("" if threshold is None else f"; threshold {np.round(threshold, 2).tolist()}"))
    submission = Path(frame.attrs["path"])
    state.update(vote_key=vote_key, submission=_relative(submission, p.root), submission_digest=file_digest(submission))
    redone["vote"] += 1
    _write_state(state_path, state)
    return submission


def _submitted(submission: Path) -> dict | None:
    """The headline the vote wrote into the submission's sidecar (None when it has none)."""
    from ensemble.workflows.submission import sidecar_path

    try:
        return json.loads(sidecar_path(submission).read_text(encoding="utf-8")).get("headline")
    except (OSError, ValueError, AttributeError):
        return None


def _report_step(p, inputs, cache, state, state_path, base, settings, weights, redone):
    """4. The report and its page, unless its key and the page's digest are the last run's:
    computed now, written by the function returned (called after the vote), which returns the
    page's path and the report's text."""
    from ensemble.workflows.report import report

    tov = p.trained_on_valid
    # base holds trained_on_valid; the weights decide what the headline names
    report_key = _digest({**base, "combine": settings["combine"], "weights": weights})
    html_path = p.root / "report.html"
    if (state.get("report_key") == report_key and _unchanged(html_path, state.get("report_digest"))
            and state.get("report_text")):
        log.info("report: up to date (%s)", html_path)
        return lambda submission: (html_path, state["report_text"])
    values = settings["values"]
    rep = report(inputs, combine=settings["combine"], trained_on_valid=tov,
                 adjust="auto" if settings["adjust"] == "none" else settings["adjust"], prior=settings["prior"],
                 adjust_metric=settings["adjust_metric"], metric=values["metric"] or "accuracy",
                 threshold=values["threshold"], clip=values["clip"])
    text = rep.to_text()  # rendered before the vote: a report that fails leaves no submission behind
    page = rep.to_html()

    def finish(submission: Path) -> tuple[Path, str]:
        nonlocal text, page
        rep.submission = _relative(submission, p.root)  # the headline names the file submitted,
        rep.submitted = _submitted(submission)  # and what the vote submitted there (not always auto's choice)
        text, page = rep.to_text(), rep.to_html()
        atomic_write(html_path, lambda f: f.write_text(page, encoding="utf-8"))
        state.update(report_key=report_key, report_text=text, report_digest=file_digest(html_path))
        redone["report"] += 1
        _write_state(state_path, state)
        return html_path, text

    return finish
