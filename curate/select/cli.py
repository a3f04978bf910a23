"""``thresher curate select``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from thresher.cli.config_options import Opt, config_options, config_values
from thresher.cli.options import read_options, wait_option

from .stage import Config


@click.command("select")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@config_options(Config, opts={
    "by": Opt(metavar="COL"),
    "descending": Opt(decls=("--ascending",), help="Lowest scores first (e.g. --by score_length for brevity)."),
    "embedding_column": Opt(metavar="COL"),
})
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--force", is_flag=True, help="Recompute even when a finished result exists.")
@wait_option
@read_options
def select_cmd(inputs: tuple[Path, ...], out: Path, force: bool, read: Any, **options: Any) -> None:
    """Keep --k rows (or --fraction) of INPUTS by score, by embedding diversity, or both."""
    from thresher.config import from_dict

    from .stage import run

    cfg = from_dict(Config, config_values(Config, options))
    res = run(list(inputs), out, cfg, force=force, read=read)
    click.echo(f"select ({cfg.method}): {res.stats.get('rows_out')} of {res.stats.get('rows_in')} rows kept -> "
               f"{res.kept_path}")
