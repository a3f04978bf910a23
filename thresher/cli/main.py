"""The root ``thresher`` command group."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from thresher import __version__
from thresher.cli.lazy import LazyGroup
from thresher.errors import ThresherError
from thresher.redact import redact

#: the commands that are not a stage's (a stage's command comes from the registry: its ``cli``)
LAZY = {
    "convert": ("thresher.cli.data_cmds:convert", "Convert rows between formats, with validation."),
    "stats": ("thresher.cli.data_cmds:stats", "Row counts, categories, sources and lengths of a dataset."),
    "models": ("thresher.cli.models_cmd:models", "Show and prepare cached models (the default SmolLM2)."),
    "distill": ("thresher.distill.cli:cli", "Generate teacher responses (vLLM, OpenAI-compatible, transformers)."),
    "curate": ("thresher.curate.cli:cli", "Score, filter, dedup, decontaminate and mix rows."),
    "train": ("thresher.train.cli:cli", "Train a student with LoRA/DoRA; lint loss masks."),
    "run": ("thresher.recipe.cli:run_cmd", "Run a YAML recipe end to end (resumable)."),
    "recipe": ("thresher.recipe.cli:recipe", "Validate recipes."),
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


def _file_in_the_way(path: Any) -> str | None:
    """``ANCESTOR is a file, not a folder`` for the nearest existing ancestor of ``path`` that
    is a file (why a NotADirectoryError happened), or None."""
    if path is None:
        return None
    for anc in Path(os.fsdecode(path)).parents:
        if anc.exists():
            return None if anc.is_dir() else f"{anc} is a file, not a folder"
    return None


def os_error_message(e: OSError) -> str:
    """``PATH: reason`` for an OS error (read-only folder, OUT is a folder, parent is a file...)."""
    reason = (e.strerror or _one_line(str(e)) or type(e).__name__).lower()
    if isinstance(e, IsADirectoryError):
        reason = "is a folder, not a file"
    elif isinstance(e, NotADirectoryError):
        reason = _file_in_the_way(e.filename) or "a part of this path is a file, not a folder"
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


#: the longest message the CLI prints (a quoted value can make an error huge)
MESSAGE_LIMIT = 2000


def cap(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    more = f"... ({len(text) - limit + 40} more characters)"
    return text[: limit - 40] + more


class Waiting(click.ClickException):
    """A command that stopped to wait for outside work (not an error): the message without
    ``Error:``, exit status :data:`thresher.errors.EXIT_WAITING`."""

    def __init__(self, message: str):
        from thresher.errors import EXIT_WAITING

        super().__init__(message)
        self.exit_code = EXIT_WAITING

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True, file=file)


class RootGroup(LazyGroup):
    """The CLI's error boundary: :class:`ThresherError` becomes a one-line ``Error:`` message
    and exit status 1; an OS error names its path; any other exception becomes one line
    pointing to ``THRESHER_DEBUG=1`` (which lets the traceback through)."""

    def invoke(self, ctx: click.Context) -> Any:
        import os

        from thresher.errors import BatchPending

        try:
            return super().invoke(ctx)
        except BatchPending as e:
            raise Waiting(cap(_escape_controls(str(e)))) from None
        except ThresherError as e:
            raise click.ClickException(cap(redact(_escape_controls(str(e))))) from None
        except click.exceptions.ClickException as e:
            e.message = cap(redact(_escape_controls(e.message)))
            raise
        except (click.exceptions.Abort, click.exceptions.Exit):
            raise
        except Exception as e:
            if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
                raise
            if isinstance(e, OSError):
                raise click.ClickException(cap(redact(os_error_message(e)))) from None
            raise click.ClickException(redact(unexpected_message(e))) from None


@click.group(cls=RootGroup, lazy_commands=LAZY, stage_group="", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="thresher")
def cli() -> None:
    """thresher: from a teacher model and raw prompts to a clean, balanced SFT set and a
    LoRA-trained student.

    Every step is a command; `thresher run RECIPE` chains them.
    """
    quiet_libraries()


#: what the libraries thresher loads read to stay quiet (set unless the user set them)
QUIET_ENV = {"HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
             "TRANSFORMERS_VERBOSITY": "error", "DATASETS_VERBOSITY": "error",
             "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}


def quiet_libraries() -> None:
    """Under ``THRESHER_PROGRESS=0``: no progress bars or advisory warnings from transformers,
    datasets or the hub on stderr (only thresher's own lines and errors)."""
    import os
    import warnings

    if os.environ.get("THRESHER_PROGRESS", "").strip().lower() not in ("0", "false", "no"):
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if os.environ.get(DEBUG_ENV, "").strip() in ("", "0"):
        os.environ["RUST_BACKTRACE"] = "0"  # a library panic is one line; THRESHER_DEBUG=1 keeps it
    for module in ("transformers", "datasets", "huggingface_hub", "peft", "torch", "matplotlib"):
        warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")


def main() -> None:
    """Console-script entry point."""
    from thresher.malloc import fixed_mmap_threshold

    fixed_mmap_threshold()  # batch-sized buffers mapped and given back, not a creeping heap
    quiet_libraries()
    cli(prog_name="thresher")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
