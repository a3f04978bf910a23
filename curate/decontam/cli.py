"""``thresher curate decontam IN --against BENCH... --out RUN_DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from thresher.cli.config_options import Opt, config_options, config_values
from thresher.cli.options import read_options, stage_options
from thresher.curate.decontam.stage import Config
from thresher.errors import ThresherError


@click.command(name="decontam")
@click.argument("inputs", metavar="IN...", nargs=-1, required=True, type=click.Path(path_type=Path))
@config_options(Config, opts={
    "against": Opt(metavar="BENCH", default_text="humaneval, mmlu"),
    "n": Opt(decls=("-n", "--ngram")),
    "text_fields": Opt(decls=("--text-field",), metavar="FIELD"),
})
@read_options
@stage_options
def decontam(inputs: tuple[Path, ...], out: str, force: bool, read: Any, **options: Any) -> None:
    """Remove rows of IN (files or run folders) that share word n-grams with benchmark data.

    Each dropped row records the benchmark, the item id and a matched n-gram.
    """
    from thresher.config import from_dict
    from thresher.curate.decontam.stage import run

    options = config_values(Config, options)
    try:
        config = from_dict(Config, options)
        result = run(list(inputs), Path(out), config, force=force, read=read)
    except ThresherError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"decontam: {result.stats.get('rows_dropped', 0)} of {result.stats.get('rows_in', 0)} rows "
        f"dropped -> {result.kept_path}"
    )
