"""The root ``thresher`` command group."""

from __future__ import annotations

import sys
from typing import Any

import click

from thresher import __version__
from thresher.cli.lazy import LazyGroup
from thresher.errors import ThresherError

LAZY = {
    "convert": ("thresher.cli.data_cmds:convert", "Convert rows between formats, with validation."),
    "stats": ("thresher.cli.data_cmds:stats", "Row counts, categories, sources and lengths of a dataset."),
    "models": ("thresher.cli.models_cmd:models", "Show and prepare cached models (the default SmolLM2)."),
    "distill": ("thresher.distill.cli:cli", "Generate teacher responses (vLLM, OpenAI-compatible, transformers)."),
    "curate": ("thresher.curate.cli:cli", "Score, filter, dedup, decontaminate and mix rows."),
    "train": ("thresher.train.cli:cli", "Train a student with LoRA/DoRA; lint loss masks."),
    "run": ("thresher.recipe.cli:run_cmd", "Run a YAML recipe end to end (resumable)."),
    "recipe": ("thresher.recipe.cli:recipe", "Validate recipes."),
    "report": ("thresher.report.cli:report", "Write report.md and report.html for a run folder."),
    "why": ("thresher.report.cli:why", "Say which stage dropped a row and why."),
}


class RootGroup(LazyGroup):
    """Turns :class:`ThresherError` into a one-line ``Error:`` message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ThresherError as e:
            raise click.ClickException(str(e)) from None


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
