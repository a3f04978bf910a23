"""``thresher curate dedup IN --out RUN_DIR [options]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from thresher.cli.config_options import Opt, config_options, config_values
from thresher.cli.options import force_option, out_option, read_options
from thresher.curate.dedup.stage import Config


@click.command(name="dedup")
@click.argument("inputs", metavar="IN...", nargs=-1, required=True)
@out_option
@config_options(Config, opts={
    "keep_by": Opt(metavar="COLUMN"),
    "against": Opt(type=click.Path(exists=True), metavar="REF"),
})
@read_options
@force_option
def dedup(inputs: tuple[str, ...], out: str, read: Any, force: bool, **options: Any) -> None:
    """Remove exact and near-duplicate rows of IN (files or run folders), keeping the best
    copy of each cluster.

    Writes kept.parquet, dropped.parquet (reason per row), clusters.parquet and stats.json
    under --out.
    """
    from thresher.config import from_dict
    from thresher.curate.dedup.stage import run

    config = from_dict(Config, config_values(Config, options))
    result = run([Path(p) for p in inputs], Path(out), config, force=force, read=read)
    s = result.stats
    click.echo(
        f"dedup: {s.get('rows_in')} rows in, {s.get('rows_out')} kept "
        f"({s.get('exact_duplicates', 0)} exact, {s.get('near_duplicates', 0)} near-duplicates, "
        f"{s.get('against_exact', 0) + s.get('against_near', 0)} matching the reference) -> {result.out}"
    )
