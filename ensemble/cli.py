"""The ``ensemble`` command: thin click wrappers over the library functions.

Exit codes: 0 on success, 1 on a user error (one line on stderr, no traceback unless ``-v``),
2 on a usage error (click's own), 130 when interrupted.
"""

from __future__ import annotations

import functools
import logging
import sys
import traceback

import click

from . import __version__
from .errors import EnsembleError

log = logging.getLogger("ensemble")


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return f"{record.levelname.lower()}: {msg}" if record.levelno >= logging.WARNING else msg


def _setup_logging(verbose: int, quiet: bool) -> None:
    """Information (tables, what was written) to stdout; warnings and errors to stderr."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(lambda r: r.levelno < logging.WARNING)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    for h in (out, err):
        h.setFormatter(_Formatter())
    log.handlers[:] = [out, err]
    log.setLevel(level)
    log.propagate = False


def common_options(f):
    """``-v/--verbose`` and ``-q/--quiet`` for every command, and its error handling."""

    @click.option("-v", "--verbose", count=True, help="More output; -v also shows tracebacks.")
    @click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
    @functools.wraps(f)
    def wrapper(*args, verbose: int, quiet: bool, **kwargs):
        _setup_logging(verbose, quiet)
        ctx = click.get_current_context()
        # Progress bars only on a terminal: logs and pipes get the result lines alone.
        ctx.meta["ensemble.progress"] = not quiet and sys.stderr.isatty()
        try:
            return f(*args, **kwargs)
        except EnsembleError as e:
            if verbose:
                traceback.print_exc()
            click.echo(f"error: {e}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted; temporary files were removed", err=True)
            ctx.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ensemble")
def main() -> None:
    """Average checkpoints, cache logits, vote and report, for fine-tuned text classifiers."""


@main.command("avg-ckpt")
@click.argument("run_or_checkpoints", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--k", "k", type=click.IntRange(min=1), default=None,
              help="Average the best K checkpoints [default: 4 for a run folder; every folder listed].")
@click.option("--metric", default=None,
              help="eval metric to rank by (eval_ prefix optional) [default: eval_accuracy, "
                   "else the run's metric_for_best_model, else eval_loss].")
@click.option("--greater-is-better/--lower-is-better", "greater_is_better", default=None,
              help="Metric direction [default: inferred; *loss, perplexity, wer, cer are lower-is-better].")
@click.option("--out", type=click.Path(path_type=str), default=None,
              help="Output model folder [default: weights/<run-name>-top<K>].")
@click.option("--tokenizer", type=click.Path(path_type=str), default=None,
              help="Folder to take the tokenizer from when the checkpoints and run folder have none.")
@click.option("--accumulate-dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True, help="Precision of the running sum.")
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
@common_options
def avg_ckpt(run_or_checkpoints, k, metric, greater_is_better, out, tokenizer, accumulate_dtype, force):
    """Average the top-K checkpoints of a Trainer run into one model folder.

    RUN_OR_CHECKPOINTS is a Trainer output folder holding checkpoint-N folders, or checkpoint
    folders themselves. The result loads with AutoModelForSequenceClassification.from_pretrained.

    \b
    Examples:
      ensemble avg-ckpt runs/bert --k 4
      ensemble avg-ckpt runs/bert --metric eval_f1 --out weights/bert-swa
      ensemble avg-ckpt runs/bert/checkpoint-800 runs/bert/checkpoint-1000
    """
    from .averaging import average_checkpoints

    target = run_or_checkpoints[0] if len(run_or_checkpoints) == 1 else list(run_or_checkpoints)
    path = average_checkpoints(
        target, k=k, metric=metric, out=out, greater_is_better=greater_is_better,
        tokenizer=tokenizer, accumulate_dtype=accumulate_dtype, force=force,
        progress=click.get_current_context().meta["ensemble.progress"],
    )
    click.echo(str(path))


@main.command("example")
@click.argument("folder", type=click.Path(path_type=str))
@click.option("--seed", type=int, default=0, show_default=True)
@common_options
def example(folder, seed):
    """Write a small self-contained example: data and two tiny Trainer runs.

    Everything is generated by this package (template sentences, a character vocabulary, tiny
    BERT models trained with the real Trainer): no download. runs/bert-b's checkpoints hold no
    tokenizer, as when a notebook pads up front; its tokenizer is in base/.

    \b
    Example:
      ensemble example demo && ensemble avg-ckpt demo/runs/bert-a --k 3
    """
    from .example import make_example

    click.echo(str(make_example(folder, seed=seed)))


if __name__ == "__main__":  # pragma: no cover
    main()
