"""``thresher curate mix IN... --out RUN_DIR --spec MIX.yaml``."""

from __future__ import annotations

from pathlib import Path

import click

from thresher.cli.options import stage_options
from thresher.errors import ThresherError


@click.command(name="mix")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--spec",
    "spec",
    required=True,
    type=click.Path(path_type=Path),
    help="Mix spec YAML: per category count or weight, total, max_repeats, on_shortfall.",
)
@click.option(
    "--rank-by",
    default=None,
    metavar="COLUMN",
    help="Score column: take the top-scored rows of each category first (default: seeded random).",
)
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed for sampling and output order."
)
@click.option(
    "--replay",
    default=None,
    type=click.Path(path_type=Path),
    help="General rows to mix back in (marked source=replay) against forgetting.",
)
@click.option(
    "--replay-fraction",
    default=0.0,
    show_default=True,
    type=float,
    help="Share of the output made of replay rows, e.g. 0.1.",
)
@stage_options
def mix(
    inputs: tuple[Path, ...],
    spec: Path,
    rank_by: str | None,
    seed: int,
    replay: Path | None,
    replay_fraction: float,
    out: str,
    force: bool,
) -> None:
    """Mix categories of one or more INPUTS into a balanced, quality-first set.

    Every problem of the spec is reported at once; categories that cannot fill their
    target are reported (wanted, available, taken) and handled as the spec's on_shortfall
    says (redistribute, keep or fail).
    """
    from thresher.curate.mix.stage import Config, run

    config = Config(
        spec=str(spec),
        rank_by=rank_by,
        seed=seed,
        replay=str(replay) if replay else None,
        replay_fraction=replay_fraction,
    )
    try:
        result = run(list(inputs), Path(out), config, force=force)
    except ThresherError as exc:
        raise click.ClickException(str(exc)) from None
    mixed = result.stats.get("mix", {})
    click.echo(
        f"mix: {result.stats.get('rows_out', 0)} rows "
        f"({mixed.get('total_taken', 0)} from categories"
        + (f", {mixed['replay']['taken']} replay" if mixed.get("replay") else "")
        + f") -> {result.kept_path}"
    )
