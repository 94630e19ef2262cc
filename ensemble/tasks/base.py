"""The task contract: what one kind of model outputs, and how those outputs are aligned,
combined, fitted, estimated, reported and submitted.

The workflows (predict, gather, vote, report, run) ask the members' task through these hooks and
never its name, so a new kind of model (token classification, generation) is a new package
beside :mod:`ensemble.tasks.classification` and :mod:`ensemble.tasks.columns`, plus one line in
:data:`ensemble.tasks.TASKS`. ``tests/tasks/test_contract.py`` runs every registered task through
the same checks. docs/architecture.md ("A new task") lists what a package must provide.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["Task", "VoteJob", "ReportJob", "Output", "PAGE_STYLE"]

# The report page's look, one for every task's page (read top-down: headline, leaderboard, decision,
# then the details folded).
PAGE_STYLE = ("body{font-family:sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse;font-size:13px}"
              "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}"
              "td:first-child,th:first-child{text-align:left}.note{color:#8a4b00}img{max-width:100%}"
              "pre{white-space:pre-wrap}")


@dataclass(frozen=True)
class Output:
    """Where a vote writes: ``<submissions_dir>/<name>-<method>.csv`` (or ``out``), its sidecar,
    and the weights file of a fitted method in ``weights_dir``; the sample submission's format;
    ``proba`` columns; ``force`` to replace a submission of another procedure."""

    name: str = "ensemble"
    out: object = None
    weights_dir: object = "weights"
    submissions_dir: object = "submissions"
    sample_submission: object = None
    proba: bool = False
    force: bool = False


@dataclass
class VoteJob:
    """What the vote workflow hands a task's :meth:`Task.vote`, once the members, data and weights
    argument are checked and every member's outputs are read and aligned.

    Attributes
    ----------
    gathered : object
        The splits and the aligned outputs: ``test_split``, ``valid_split`` (or None),
        ``test_al``, ``valid_al`` (or None), ``y`` (the fitting rows' truth or None), the
        ``provenance`` written beside the outputs, and ``estimate`` (the headline's figure, set by
        the task).
    source : object
        The members' outputs (``refs``, ``members``, ``refits``, ``estimates`` store,
        ``aligned(split, labels, refit=)``, ``digest_of(ref)``).
    kind : {"method", "file", "fixed"}
    spec : str, Path or ndarray
        The method's name, the weights file's path, or the fixed weights in member order.
    loaded : object
        The weights file read (``kind == "file"``, already checked against the members and data).
    cv : mapping
        ``{"cv": fold of each row}`` when fitted on fold groups' out-of-fold rows, else empty.
    holdout : Split or None
        The validation split beside fold groups: it decides what is submitted.
    settings : object
        The task's own settings (:meth:`Task.vote_settings`).
    output : Output
    paths : callable
        ``paths(method, procedure) -> (submission path, weights file path or None)``.
    save : callable
        ``save(frame, out, sidecar, fitted, weights_path) -> frame``: the submission, the weights
        file and the sidecar written as one set.
    """

    gathered: object
    source: object
    kind: str
    spec: object
    loaded: object
    cv: Mapping
    holdout: object
    settings: object
    output: Output
    paths: Callable
    save: Callable


@dataclass
class ReportJob:
    """What the report workflow hands a task's :meth:`Task.report`: the members' outputs on the
    labelled rows scored on (``al``, ``split``: the validation split, or the training split's
    out-of-fold rows with ``training`` its folds), the data, and the report's options as given."""

    source: object
    al: object
    split: object
    training: object
    data: Mapping
    valid: str
    columns: Mapping
    cv: object
    options: Mapping = field(default_factory=dict)


class Task(abc.ABC):
    """One kind of model output and everything that depends on it.

    Attributes
    ----------
    name : str
        The task's name, as ``task =`` in ``ensemble.toml`` will spell it ("classification").
    heads : tuple of str
        The head kinds (:attr:`ensemble.io.modelfiles.Head.kind`) whose outputs this task reads.
    output : str
        What inference caches for a model of this task ("logits": an (n, C) array with the class
        names).
    forward, payload : str
        The inference forward that computes a member's outputs ("sequence", "tokens",
        "generation") and the kind of cache entry that holds them ("dense", "ragged", "texts").
    combine_rules : tuple of str
        The combination rules that apply; the first is the default.
    methods : tuple of str
        The weight methods that apply (``best<K>`` aside).
    metrics : tuple of str
        The metrics reported; ``metrics[0]`` is the primary one, the one ``auto`` decides on.
    """

    name: str
    heads: tuple[str, ...]
    output: str
    # what inference runs for a member of this task (ensemble.inference.forwards.FORWARDS) and the
    # payload its cache entries hold (ensemble.core.outputs: "dense", "ragged", "texts")
    forward: str = "sequence"
    payload: str = "dense"
    combine_rules: tuple[str, ...]
    methods: tuple[str, ...]
    metrics: tuple[str, ...]

    @property
    def primary(self) -> str:
        """The metric estimates and ``auto`` decide on."""
        return self.metrics[0]

    def runs(self, head) -> bool:
        """Whether a model with this head (an :class:`~ensemble.io.modelfiles.Head`) is a member of
        this task."""
        return head.kind in self.heads

    @abc.abstractmethod
    def greater_is_better(self, metric: str) -> bool:
        """Whether a higher ``metric`` is better."""

    @abc.abstractmethod
    def metric_value(self, metric: str, proba: np.ndarray, y: np.ndarray) -> float:
        """``metric`` of combined outputs ``proba`` (n, C) against the truth ``y`` (n,)."""

    @abc.abstractmethod
    def align(self, outputs: Sequence, ids: Sequence[str] | None = None, labels: Sequence[str] | None = None):
        """The members' outputs in one row order (``ids``) and one order of names (``labels``):
        an :class:`~ensemble.core.combination.Aligned`."""

    @abc.abstractmethod
    def combine(self, arrays: Sequence[np.ndarray], weights: Sequence[float] | None = None, rule: str | None = None
                ) -> np.ndarray:
        """The weighted combination of aligned outputs under ``rule`` (default: the first of
        :attr:`combine_rules`)."""

    @abc.abstractmethod
    def mean_space(self, outputs: np.ndarray) -> np.ndarray:
        """One member's outputs in the space the default combination averages (classification:
        softmax probabilities; regression: the values; multi-label: a sigmoid per label): the
        uniform combination is the mean of these."""

    @abc.abstractmethod
    def predict(self, proba: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """Combined outputs (n, C) as predictions (n,), in the names ``labels``."""

    @abc.abstractmethod
    def submission(self, ids: Sequence[str], proba: np.ndarray, labels: Sequence[str], **options: Mapping):
        """The submission as a DataFrame, in the sample submission's format when one is given;
        nothing written (:func:`ensemble.workflows.submission.write_submission` writes it)."""

    def fold_mean(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """A fold group's outputs on a split every fold model predicted, from theirs (aligned), in
        the space the cache holds (classification: the log of the mean probability)."""
        raise NotImplementedError

    def check_labels(self, split, names: Sequence[str], model: str) -> None:
        """Refuse, before any model runs, labels of ``split`` that do not fit this task's outputs
        ``names`` (a one-line error naming the file and the column)."""

    def check_texts(self, split) -> None:
        """Refuse, before any model runs, texts of ``split`` (labelled or not) that this task's
        members cannot be read over (a one-line error naming the file and the row); none by
        default."""

    @abc.abstractmethod
    def truth(self, split, labels: Sequence[str], model: str, index_order):
        """The labelled ``split``'s truth in the outputs' names ``labels``: class indices (n,), or
        an (n, T) array. ``index_order()`` gives the class of each index for integer labels."""

    def output_names(self, names: Sequence[str], columns: Sequence[str] | None, declared: Sequence[str] | None = None,
                     model: str = "") -> tuple[str, ...] | None:
        """The names member ``model``'s outputs go by, or None to keep its head's ``names`` (the
        default). ``declared``: the names the user gave them (``outputs =``), in the head's order;
        a task whose outputs are not label columns refuses them."""
        if declared is not None:
            from ensemble.core.errors import EnsembleError

            raise EnsembleError(f"{model}: outputs = names the label column of each output of a {self.name} member, "
                                f"whose outputs are {', '.join(map(str, names[:4]))}; drop it (a classifier's classes "
                                "are its id2label; class_order says which class each index is)")
        return None

    def accuracy_of(self, values: np.ndarray, split, labels: Sequence[str], model: str) -> float | None:
        """The share of ``split``'s labelled rows that one model's outputs ``values`` (n, C), in
        the names ``labels``, get right: what the predict table shows and what is compared with
        the ``eval_accuracy`` a fold model's run logged. None where the task has no accuracy."""
        return None

    # ------------------------------------------------------------------ the workflows' hooks
    #
    # A task's part of each workflow lives in its package's modules (vote.py, report.py...), which
    # import the task's pieces above; the package's __init__ binds them to the task object
    # (:meth:`bind`), so that no module of the package imports its own vote or report back.

    HOOKS = ("check_options", "vote_settings", "vote", "report", "load_weights", "owns_weights")

    def bind(self, **parts) -> "Task":
        """Attach this task's workflow parts (:attr:`HOOKS`, each a function taking the task first);
        its package's ``__init__`` does, once."""
        unknown = sorted(set(parts) - set(self.HOOKS))
        if unknown:
            raise TypeError(f"{self.name}: no hook named {unknown[0]!r}; hooks are {', '.join(self.HOOKS)}")
        self.parts = {**getattr(self, "parts", {}), **parts}
        return self

    def _part(self, hook: str):
        part = getattr(self, "parts", {}).get(hook)
        if part is None:
            raise NotImplementedError(f"task {self.name} has no {hook} part bound (its package's __init__ binds them)")
        return part

    def check_options(self, options: Mapping, *, kind: str) -> None:
        """Refuse, before any output is read, a vote option (as given) that does not apply to this
        task or that contradicts another, with the reason and the fix. ``kind``: how the vote's
        weights are given ("method", "fixed" or "file"), or "report" for a report's options."""
        self._part("check_options")(self, options, kind=kind)

    def vote_settings(self, options: Mapping, *, kind: str, data: Mapping, train: str, columns: Mapping, source,
                      labels: Sequence[str]):
        """The vote's options (``combine``, ``temperature``, ``adjust``, ``metric``, ``threshold``,
        ``clip``... as given) resolved into this task's settings (:meth:`check_options` has refused
        what does not apply)."""
        return self._part("vote_settings")(self, options, kind=kind, data=data, train=train, columns=columns,
                                           source=source, labels=labels)

    def vote(self, job: VoteJob):
        """This task's part of the vote: the weights fitted, loaded or given, the headline's
        estimate, and the submission written through ``job.paths`` / ``job.save``; returns the
        submission as written (``attrs``: path, weights, headline)."""
        return self._part("vote")(self, job)

    def report(self, job: ReportJob):
        """Every member and ensemble method scored honestly: a report object with ``headline``,
        ``__str__``, ``to_dict`` and ``to_html``."""
        return self._part("report")(self, job)

    weights_formats: tuple[str, ...] = ()

    def load_weights(self, path):
        """A weights file this task wrote (its ``format`` in :attr:`weights_formats`), checked."""
        return self._part("load_weights")(self, path)

    def owns_weights(self, weights) -> bool:
        """Whether ``weights`` (read by some task's :meth:`load_weights`) are this task's."""
        return self._part("owns_weights")(self, weights)

    members_noun = "members"  # "weights of classifiers"

    # the Split fields beyond its columns that this task reads (summarization: rouge_tokenizer); a
    # split that sets another is refused where the members' outputs are read over it
    split_settings: tuple[str, ...] = ()
    SPLIT_SETTINGS = ("rouge_tokenizer", "rouge_aggregate")

    def check_split_settings(self, split) -> None:
        """Refuse a setting of ``split`` (:attr:`SPLIT_SETTINGS`) that this task does not read."""
        said = next((k for k in self.SPLIT_SETTINGS if getattr(split, k, None) is not None
                     and k not in self.split_settings), None)
        if said is not None:
            from ensemble.core.errors import EnsembleError

            raise EnsembleError(f"{split.path}: {said} = {getattr(split, said)!r} is a setting of the tasks that read "
                                f"it (summarization), not of {self.name}; drop it")

    def read_as(self, ref) -> None:
        """Refuse reading the model ``ref`` as a member of this task when the user says so but its
        head cannot be: only the sequence-classification heads change task."""
        from ensemble.core.errors import EnsembleError
        from ensemble.inference.models import SEQUENCE_HEADS

        if ref.head.kind not in SEQUENCE_HEADS:
            raise EnsembleError(f"{ref.folder / 'config.json'}: {ref.head.describe()}; it cannot be read as task "
                                f"{self.name}")
        said = ref.head.problem_type
        if said is not None and ref.head.kind not in self.heads:  # fills in what the head leaves unsaid, never contradicts
            raise EnsembleError(f"{ref.folder / 'config.json'}: problem_type {said} says it was trained as {ref.head.kind}, "
                                f"not {self.name}; drop the task setting (the head says it), or fix problem_type in "
                                "its config.json if it is wrong")

    def __repr__(self) -> str:
        return f"<task {self.name}: {self.output} of {', '.join(self.heads)} heads, primary metric {self.primary}>"


