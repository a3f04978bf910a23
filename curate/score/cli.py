"""``thresher curate score``: add score columns with reward, log-likelihood, judge, verifier
and pass-rate scorers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from thresher.cli.config_options import Opt, config_options, config_values
from thresher.cli.options import force_option, out_option, read_options

from .stage import Config


def _pairs(_ctx: Any, param: click.Parameter, items: tuple[str, ...]) -> dict[str, str] | None:
    """``NAME=ROWS`` pairs into a mapping."""
    if not items:
        return None
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise click.BadParameter(f"{item!r}: expected NAME=ROWS", param_hint=param.opts[0])
        out[name.strip()] = value.strip()
    return out


@click.command(name="score")
@click.argument("inputs", metavar="IN...", nargs=-1, required=True)
@config_options(Config, opts={
    "scorers": Opt(decls=("--scorer", "-s"), metavar="SPEC"),
    "sort_by_length": Opt(decls=("--no-sort",)),
    "judge_rubric": Opt(type=click.Path(dir_okay=False)),
    "cache_dir": Opt(type=click.Path(file_okay=False)),
    "passrate_from": Opt(multiple=True, metavar="NAME=ROWS", callback=_pairs),
})
@read_options
@out_option
@force_option
def score(inputs: tuple[str, ...], out: str, force: bool, read: Any, **options: Any) -> None:
    """Score every row of IN (a data file or a stage run folder) and write OUT/kept.parquet with
    a score_NAME and NAME_error column per scorer. Scores are cached per row, so a re-run
    only scores what is missing.

    \b
    Examples:
      thresher curate score data.parquet --out runs/score
      thresher curate score data.parquet -s loglik -s rm=reward:./my-rm --out runs/score
      thresher curate score data.parquet -s judge:transformers:smollm2 --out runs/judge
      thresher curate score runs/gen -s m=verify:math -s passrate:m --out runs/verified
      thresher curate score runs/gen -s m=verify:math -s student=passrate:m \\
          --passrate-from student=runs/student-gen --out runs/difficulty
    """
    from thresher.config import from_dict

    from .stage import run

    config = from_dict(Config, config_values(Config, options))
    result = run([Path(p) for p in inputs], Path(out), config, force=force, read=read)
    for name, s in result.stats.get("scorers", {}).items():
        line = f"score_{name}: {s.get('scored', 0)} scored, {s.get('errors', 0)} without score"
        if s.get("cached"):
            line += f", {s['cached']} from cache"
        if "mean" in s:
            line += f"; mean {s['mean']:.4g}, min {s['min']:.4g}, max {s['max']:.4g}"
        per = s.get("per_prompt") or {}
        if per.get("prompts"):
            line += (f"; {per['prompts']} prompts, mean rate {per['mean']:.4g}, {per['none_pass']} with no "
                     f"sample passing, {per['all_pass']} with every sample passing")
        click.echo(line)
