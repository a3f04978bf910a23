"""``thresher curate decontam IN --against BENCH... --out RUN_DIR``."""

from __future__ import annotations

from pathlib import Path

import click

from thresher.cli.options import stage_options
from thresher.errors import ThresherError


@click.command(name="decontam")
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.option(
    "--against",
    "against",
    multiple=True,
    metavar="BENCH",
    help="Benchmark: humaneval, mmlu, or a JSONL/JSON/Parquet file (repeat; default: humaneval and mmlu).",
)
@click.option(
    "-n", "--ngram", "n", default=13, show_default=True, type=int, help="Words per n-gram."
)
@click.option(
    "--min-overlap",
    default=1,
    show_default=True,
    type=int,
    help="Distinct n-grams shared with one benchmark item to drop a row.",
)
@click.option(
    "--min-fraction",
    default=None,
    type=float,
    help="Also require this share of the item's n-grams (0-1).",
)
@click.option(
    "--text-field",
    "text_fields",
    multiple=True,
    metavar="FIELD",
    help="Text field(s) of benchmark files (repeat; default: text).",
)
@click.option(
    "--id-field", default="id", show_default=True, help="Item id field of benchmark files."
)
@stage_options
def decontam(
    input_path: Path,
    against: tuple[str, ...],
    n: int,
    min_overlap: int,
    min_fraction: float | None,
    text_fields: tuple[str, ...],
    id_field: str,
    out: str,
    force: bool,
) -> None:
    """Remove rows of IN that share word n-grams with benchmark data.

    Each dropped row records the benchmark, the item id and a matched n-gram.
    """
    from thresher.config import from_dict
    from thresher.curate.decontam.stage import Config, run

    options = {
        "n": n,
        "min_overlap": min_overlap,
        "min_fraction": min_fraction,
        "id_field": id_field,
    }
    if against:
        options["against"] = list(against)
    if text_fields:
        options["text_fields"] = list(text_fields)
    try:
        config = from_dict(Config, options)
        result = run([input_path], Path(out), config, force=force)
    except ThresherError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"decontam: {result.stats.get('rows_dropped', 0)} of {result.stats.get('rows_in', 0)} rows "
        f"dropped -> {result.kept_path}"
    )
