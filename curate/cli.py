"""The ``thresher curate`` command group (subcommands imported lazily)."""

import click

from thresher.cli.lazy import LazyGroup

LAZY = {
    "score": ("thresher.curate.score.cli:score", "Add score columns (reward model, loglik, judge)."),
    "filter": ("thresher.curate.filter.cli:filter_cmd", "Keep good rows; every dropped row keeps a reason."),
    "dedup": ("thresher.curate.dedup.cli:dedup", "Exact and MinHash/LSH near-duplicate removal."),
    "decontam": ("thresher.curate.decontam.cli:decontam", "Remove rows that leak benchmark data."),
    "mix": ("thresher.curate.mix.cli:mix", "Mix categories into a balanced, quality-first set."),
    "select": ("thresher.curate.select.cli:select_cmd", "Keep k rows by score, embedding diversity or both (Deita)."),
}


@click.group(name="curate", cls=LazyGroup, lazy_commands=LAZY)
def cli() -> None:
    """Score, filter, dedup, decontaminate and mix conversation rows."""
