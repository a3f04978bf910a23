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
}, recipe_only=("prices",))
@read_options
@out_option
@force_option
@click.option("--estimate", is_flag=True,
              help="Print prompt tokens, expected completion tokens, requests and cost; send no request.")
def generate(inputs: tuple[Path, ...], out: str, force: bool, read: Any, estimate: bool, **options: Any) -> None:
    """Answer the prompts of INPUTS with a teacher: one row per sample, resumable.

    Kill it at any moment and run the same command again: finished samples are reused.
    """
    from .stage import make_config, run

    config = make_config(**config_values(Config, options))
    if estimate:
        from .estimate import estimate as estimate_run
        from .estimate import estimate_lines

        for line in estimate_lines(estimate_run(list(inputs), Path(out), config, read)):
            click.echo(line)
        return
    result = run(list(inputs), Path(out), config, force=force, read=read)
    s = result.stats
    reused = s.get("reused", 0)
    split = f" ({reused} reused, {s.get('generated', 0)} generated)" if reused else ""
    click.echo(f"generate: {s.get('samples', 0)} samples for {s.get('prompts', 0)} prompts{split}, "
               f"{s.get('rows_out', 0)} kept -> {result.kept_path}")
    if s.get("requests"):
        from thresher.pricing import usd

        click.echo(f"generate: {s['requests']} requests, {s.get('prompt_tokens', 0)} prompt + "
                   f"{s.get('completion_tokens_total', 0)} completion tokens, {usd(s.get('cost_usd'))}")
    structured = s.get("structured")
    if structured:
        click.echo(f"generate: structured output: {structured['invalid_first_try']} of "
                   f"{structured['checked_first_try']} answers failed the schema at first, "
                   f"{structured['retried']} asked again, {structured['invalid_dropped']} dropped")
