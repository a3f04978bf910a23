"""``thresher distill``: the ``generate`` command (same code as the recipe stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from thresher.cli.config_options import Opt, config_options, config_values
from thresher.cli.options import force_option, out_option, read_options

from .stage import Config


@click.group(name="distill")
def cli() -> None:
    """Generate teacher responses for prompt rows."""


@cli.command("generate")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@config_options(Config, opts={
    "teacher": Opt(decls=("--teacher", "-t")),
    "backend": Opt(decls=("--backend", "-b")),
    "n": Opt(decls=("-n",)),
    "system_in_rows": Opt(decls=("--system-in-rows/--system-not-in-rows",)),
})
@read_options
@out_option
@force_option
def generate(inputs: tuple[Path, ...], out: str, force: bool, read: Any, **options: Any) -> None:
    """Answer the prompts of INPUTS with a teacher: one row per sample, resumable.

    Kill it at any moment and run the same command again: finished samples are reused.
    """
    from .stage import make_config, run

    config = make_config(**config_values(Config, options))
    result = run(list(inputs), Path(out), config, force=force, read=read)
    s = result.stats
    reused = s.get("reused", 0)
    split = f" ({reused} reused, {s.get('generated', 0)} generated)" if reused else ""
    click.echo(f"generate: {s.get('samples', 0)} samples for {s.get('prompts', 0)} prompts{split}, "
               f"{s.get('rows_out', 0)} kept -> {result.kept_path}")
