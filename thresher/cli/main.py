"""The root ``thresher`` command group."""

from __future__ import annotations

import sys
from typing import Any

import click

from thresher import __version__
from thresher.cli.lazy import LazyGroup
from thresher.errors import ThresherError
from thresher.redact import redact

LAZY = {
    "convert": ("thresher.cli.data_cmds:convert", "Convert rows between formats, with validation."),
    "stats": ("thresher.cli.data_cmds:stats", "Row counts, categories, sources and lengths of a dataset."),
    "models": ("thresher.cli.models_cmd:models", "Show and prepare cached models (the default SmolLM2)."),
    "distill": ("thresher.distill.cli:cli", "Generate teacher responses (vLLM, OpenAI-compatible, transformers)."),
    "curate": ("thresher.curate.cli:cli", "Score, filter, dedup, decontaminate and mix rows."),
    "train": ("thresher.train.cli:cli", "Train a student with LoRA/DoRA; lint loss masks."),
    "eval": ("thresher.evaluate.cli:eval_cmd", "Compare models on held-out prompts: verifiers, reference NLL, judges, p-values."),
    "run": ("thresher.recipe.cli:run_cmd", "Run a YAML recipe end to end (resumable)."),
    "recipe": ("thresher.recipe.cli:recipe", "Validate recipes."),
    "report": ("thresher.report.cli:report", "Write report.md and report.html for a run folder."),
    "why": ("thresher.report.cli:why", "Say which stage dropped a row and why."),
    "export": ("thresher.cli.publish_cmds:export", "Write a run's dataset as a hub-ready folder (card, train/test Parquet)."),
    "push": ("thresher.cli.publish_cmds:push", "Upload a run's exported dataset (and adapter) to the Hugging Face hub."),
}


DEBUG_ENV = "THRESHER_DEBUG"


def _one_line(text: str, limit: int = 300) -> str:
    first = (text.strip().splitlines() or [""])[0].strip()
    return first if len(first) <= limit else first[: limit - 3] + "..."


def _escape_controls(text: str) -> str:
    """One line: line breaks and other control characters (from quoted data) escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def os_error_message(e: OSError) -> str:
    """``PATH: reason`` for an OS error (read-only folder, OUT is a folder, parent is a file...)."""
    reason = (e.strerror or _one_line(str(e)) or type(e).__name__).lower()
    if isinstance(e, IsADirectoryError):
        reason = "is a folder, not a file"
    elif isinstance(e, NotADirectoryError):
        reason = "a part of this path is a file, not a folder"
    elif isinstance(e, PermissionError):
        reason = "permission denied (read-only or not yours?)"
    if e.filename is None:
        return _escape_controls(_one_line(str(e)) or reason)
    where = str(e.filename) + (f" -> {e.filename2}" if e.filename2 is not None else "")
    return _escape_controls(f"{where}: {reason}")


def unexpected_message(e: BaseException) -> str:
    """One line for an exception no code turned into a :class:`ThresherError`."""
    if isinstance(e, RecursionError):
        what = "input nested too deeply"
    else:
        what = f"{type(e).__name__}: {_one_line(str(e), 200)}".rstrip(": ")
    return f"unexpected error ({what}); rerun with {DEBUG_ENV}=1 for the traceback"


class RootGroup(LazyGroup):
    """The CLI's error boundary: :class:`ThresherError` becomes a one-line ``Error:`` message
    and exit status 1; an OS error names its path; any other exception becomes one line
    pointing to ``THRESHER_DEBUG=1`` (which lets the traceback through)."""

    def invoke(self, ctx: click.Context) -> Any:
        import os

        try:
            return super().invoke(ctx)
        except ThresherError as e:
            raise click.ClickException(redact(_escape_controls(str(e)))) from None
        except click.exceptions.ClickException as e:
            e.message = redact(_escape_controls(e.message))
            raise
        except (click.exceptions.Abort, click.exceptions.Exit):
            raise
        except Exception as e:
            if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
                raise
            if isinstance(e, OSError):
                raise click.ClickException(redact(os_error_message(e))) from None
            raise click.ClickException(redact(unexpected_message(e))) from None


@click.group(cls=RootGroup, lazy_commands=LAZY, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="thresher")
def cli() -> None:
    """thresher: from a teacher model and raw prompts to a clean, balanced SFT set and a
    LoRA-trained student.

    Every step is a command; `thresher run RECIPE` chains them.
    """


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="thresher")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
