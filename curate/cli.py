"""The ``thresher curate`` command group: the commands of the registered stages whose
``cli_group`` is ``curate`` (imported lazily, see :mod:`thresher.registry`)."""

import click

from thresher.cli.lazy import LazyGroup


@click.group(name="curate", cls=LazyGroup, stage_group="curate")
def cli() -> None:
    """Score, filter, dedup, decontaminate and mix conversation rows."""
