"""``thresher curate mix IN... --out RUN_DIR --spec MIX.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from thresher.cli.config_options import Opt, config_options, config_values
from thresher.cli.options import read_options, stage_options
from thresher.curate.mix.stage import Config
from thresher.errors import ThresherError


@click.command(name="mix")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@config_options(Config, opts={
    "spec": Opt(type=click.Path(), required=True, metavar="PATH",
                help="Mix spec YAML: per category count or weight, total, max_repeats, on_shortfall."),
    "rank_by": Opt(metavar="COLUMN"),
    "replay": Opt(type=click.Path()),
})
@read_options
@stage_options
def mix(inputs: tuple[Path, ...], out: str, force: bool, read: Any, **options: Any) -> None:
    """Mix categories of one or more INPUTS into a balanced, quality-first set.

    Every problem of the spec is reported at once; categories that cannot fill their
    target are reported (wanted, available, taken) and handled as the spec's on_shortfall
    says (redistribute, keep or fail).
    """
    from thresher.curate.mix.stage import run

    config = Config(**config_values(Config, options))  # run() reports every problem of the spec
    try:
        result = run(list(inputs), Path(out), config, force=force, read=read)
    except ThresherError as exc:
        raise click.ClickException(str(exc)) from None
    mixed = result.stats.get("mix", {})
    click.echo(
        f"mix: {result.stats.get('rows_out', 0)} rows "
        f"({mixed.get('total_taken', 0)} from categories"
        + (f", {mixed['replay']['taken']} replay" if mixed.get("replay") else "")
        + f") -> {result.kept_path}"
    )
