"""The ``ensemble`` command group, its logging and the options every command has."""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback

import click

from ensemble import __version__
from ensemble.core.errors import EnsembleError, cli_messages

log = logging.getLogger("ensemble")




class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return f"{record.levelname.lower()}: {msg}" if record.levelno >= logging.WARNING else msg


class _Handler(logging.StreamHandler):
    """A stream handler that lets a closed pipe (``ensemble cache ls | head -1``) end the command
    instead of printing logging's own traceback for every line after it."""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            raise BrokenPipeError
        super().handleError(record)


def _setup_logging(verbose: int, quiet: bool) -> None:
    """Information (tables, what was written) to stdout; warnings and errors to stderr."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    out = _Handler(sys.stdout)
    out.addFilter(lambda r: r.levelno < logging.WARNING)
    err = _Handler(sys.stderr)
    err.setLevel(logging.WARNING)
    for h in (out, err):
        h.setFormatter(_Formatter())
    log.handlers[:] = [out, err]
    log.setLevel(level)
    log.propagate = False


def _no_library_bars() -> None:
    """transformers' and huggingface_hub's own bars ("Writing model shards", "Loading weights")
    off too: read from the environment when transformers is imported (never imported here: vote
    imports no transformers), switched off directly when it already is."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()


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
        if not ctx.meta["ensemble.progress"]:
            _no_library_bars()
        from ensemble.core.progress import enabled

        try:
            with cli_messages(), enabled(ctx.meta["ensemble.progress"]):
                return f(*args, **kwargs)
        except EnsembleError as e:
            if verbose:
                traceback.print_exc()
            click.echo(f"error: {e}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted; temporary files were removed", err=True)
            ctx.exit(130)
        except BrokenPipeError:  # the reader of stdout has gone (| head): stop quietly, as cat does
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):
                pass
            ctx.exit(0)
        except OSError as e:  # a read-only folder, a full disk: the writers have removed their temporaries
            if verbose:
                traceback.print_exc()
            # a copy names its source first and its destination second: a full disk is the destination's
            name = e.filename2 if e.errno == 28 and getattr(e, "filename2", None) else e.filename
            where = f"{name}: " if name else ""
            fix = "free some disk space" if e.errno == 28 else "check the folder exists and is writable"
            click.echo(f"error: {where}{e.strerror or type(e).__name__}; {fix}", err=True)
            ctx.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ensemble")
def main() -> None:
    """Average checkpoints, cache logits, vote and report, for fine-tuned text classifiers."""


if __name__ == "__main__":  # pragma: no cover
    main()
