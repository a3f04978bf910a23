"""``thresher curate filter``: keep the good rows; every dropped row gets a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from thresher.cli.config_options import Opt, config_options, config_values
from thresher.cli.options import force_option, out_option, read_options

from .stage import Config


def _limits(_ctx: Any, param: click.Parameter, items: tuple[str, ...]) -> dict[str, object] | None:
    """``COL=VALUE`` pairs; values stay strings when not numbers so the config check names them."""
    if not items:
        return None
    option = param.opts[0] if param.opts else param.name
    out: dict[str, object] = {}
    for item in items:
        col, sep, value = item.partition("=")
        if not sep or not col.strip():
            raise click.BadParameter(f"{item!r}: expected COLUMN=VALUE", param_hint=option)
        try:
            out[col.strip()] = float(value)
        except ValueError:
            out[col.strip()] = value
    return out


def _combine(_ctx: Any, param: click.Parameter, items: tuple[str, ...]) -> dict[str, list[str]] | None:
    """``NAME=COL,COL`` pairs: the combined column and the columns it averages."""
    if not items:
        return None
    option = param.opts[0] if param.opts else param.name
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, cols = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r}: expected NAME=COL,COL", param_hint=option)
        out[name.strip()] = [c.strip() for c in cols.split(",") if c.strip()]
    return out


@click.command(name="filter")
@click.argument("inputs", metavar="IN...", nargs=-1, required=True)
@config_options(Config, recipe_only=("language_candidates",), opts={
    "min_scores": Opt(decls=("--min",), multiple=True, metavar="COL=VALUE", callback=_limits),
    "max_scores": Opt(decls=("--max",), multiple=True, metavar="COL=VALUE", callback=_limits),
    "combine": Opt(multiple=True, metavar="NAME=COL,COL", callback=_combine),
    "top_by": Opt(metavar="COL"),
    "best_of": Opt(metavar="K"),
    "best_by": Opt(metavar="COL"),
    "only_passing": Opt(metavar="COL"),
    "passrate_by": Opt(metavar="COL"),
    "drop_empty": Opt(decls=("--keep-empty",), help="Do not drop empty responses."),
    "drop_truncated": Opt(decls=("--keep-truncated",), help="Do not drop rows with finish_reason=length."),
    "refusal_phrases": Opt(decls=("--refusal-phrase",), default_text="the built-in list",
                           help="Refusal/boilerplate phrase (repeatable; replaces the built-in list)."),
})
@read_options
@out_option
@force_option
def filter_cmd(inputs: tuple[str, ...], out: str, force: bool, read: Any, **options: Any) -> None:
    """Filter IN (a data file or a stage run folder) into OUT/kept.parquet; dropped rows go
    to OUT/dropped.parquet with drop_reason (e.g. "score_loglik=-3.1 < -2.5").

    \b
    Examples:
      thresher curate filter runs/score --min score_loglik=-2.5 --out runs/filter
      thresher curate filter runs/score --normalize zscore --min score_reward_z=-1 --out f
      thresher curate filter runs/score --normalize robust --combine score_fit=score_relevance_rz,score_gain_rz --min score_fit=-1.5 --out f
      thresher curate filter runs/score --top-fraction 0.3 --top-by score_reward --per-category --out f
      thresher curate filter runs/score --best-of 1 --best-by score_reward --margin 0.1 --out f
    """
    from thresher.config import from_dict

    from .stage import run

    data = config_values(Config, options)
    if data.get("refusal_phrases"):  # giving phrases turns the refusal check on
        data["drop_refusals"] = True
    config = from_dict(Config, data)
    result = run([Path(p) for p in inputs], Path(out), config, force=force, read=read)
    s = result.stats
    click.echo(f"kept {s.get('rows_out')} of {s.get('rows_in')} rows -> {out}")
    for reason, n in (s.get("drop_reasons") or {}).items():
        click.echo(f"  dropped {n}: {reason}")
