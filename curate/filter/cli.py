"""``thresher curate filter``: keep the good rows; every dropped row gets a reason."""

from __future__ import annotations

from pathlib import Path

import click

from thresher.cli.options import force_option, out_option


def _limits(option: str, items: tuple[str, ...]) -> dict[str, object]:
    """``COL=VALUE`` pairs; values stay strings when not numbers so the config check names them."""
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


@click.command(name="filter")
@click.argument("inputs", metavar="IN...", nargs=-1, required=True)
@click.option("--min", "mins", multiple=True, metavar="COL=VALUE",
              help="Drop rows whose COL is below VALUE (e.g. score_loglik=-2.5). Repeatable.")
@click.option("--max", "maxs", multiple=True, metavar="COL=VALUE",
              help="Drop rows whose COL is above VALUE. Repeatable.")
@click.option("--normalize", type=click.Choice(["none", "zscore", "rank"]), default="none",
              show_default=True,
              help="Add per-category score_X_z / score_X_rank columns that rules may name.")
@click.option("--top-fraction", type=float, default=None, help="Keep this fraction, by --top-by.")
@click.option("--top-k", type=int, default=None, help="Keep this many rows, by --top-by.")
@click.option("--top-by", default=None, metavar="COL", help="Score column for --top-fraction/--top-k.")
@click.option("--per-category", is_flag=True, help="Apply --top-fraction/--top-k in each category.")
@click.option("--best-of", type=int, default=None, metavar="K",
              help="Keep the best K samples per parent_id, by --best-by.")
@click.option("--best-by", default=None, metavar="COL", help="Score column for --best-of.")
@click.option("--margin", type=float, default=0.0, show_default=True,
              help="--best-of keeps a group only if its K-th beats the runner-up by this.")
@click.option("--keep-empty", is_flag=True, help="Do not drop empty responses.")
@click.option("--keep-truncated", is_flag=True, help="Do not drop rows with finish_reason=length.")
@click.option("--min-chars", type=int, default=0, show_default=True)
@click.option("--max-chars", type=int, default=None)
@click.option("--min-tokens", type=int, default=0, show_default=True)
@click.option("--max-tokens", type=int, default=None)
@click.option("--tokenizer", default=None,
              help="Tokenizer (folder or model) for token counts; default counts words and marks.")
@click.option("--trust-remote-code", is_flag=True,
              help="Run the --tokenizer folder's own Python code (auto_map); only for models you trust.")
@click.option("--max-repeat-ratio", type=float, default=None,
              help="Drop responses whose repeated word n-gram share exceeds this (e.g. 0.3).")
@click.option("--ngram", type=int, default=3, show_default=True, help="n for --max-repeat-ratio.")
@click.option("--drop-refusals", is_flag=True, help="Drop responses containing refusal phrases.")
@click.option("--refusal-phrase", "refusal_phrases", multiple=True,
              help="Refusal/boilerplate phrase (repeatable; replaces the built-in list).")
@click.option("--language", default=None, help="Drop responses not in this language (ISO 639-1).")
@click.option("--language-min-prob", type=float, default=0.5, show_default=True,
              help="--language drops a response only when another language is this likely.")
@click.option("--language-min-letters", type=int, default=20, show_default=True,
              help="Shorter responses are not language-checked.")
@click.option("--max-echo-ratio", type=float, default=None,
              help="Drop responses whose 3-grams repeat the prompt above this share (e.g. 0.8).")
@out_option
@force_option
def filter_cmd(inputs: tuple[str, ...], mins: tuple[str, ...], maxs: tuple[str, ...],
               normalize: str, top_fraction: float | None, top_k: int | None,
               top_by: str | None, per_category: bool, best_of: int | None,
               best_by: str | None, margin: float, keep_empty: bool, keep_truncated: bool,
               min_chars: int, max_chars: int | None, min_tokens: int, max_tokens: int | None,
               tokenizer: str | None, trust_remote_code: bool, max_repeat_ratio: float | None, ngram: int,
               drop_refusals: bool, refusal_phrases: tuple[str, ...], language: str | None,
               language_min_prob: float, language_min_letters: int,
               max_echo_ratio: float | None, out: str, force: bool) -> None:
    """Filter IN (a data file or a stage run folder) into OUT/kept.parquet; dropped rows go
    to OUT/dropped.parquet with drop_reason (e.g. "score_loglik=-3.1 < -2.5").

    \b
    Examples:
      thresher curate filter runs/score --min score_loglik=-2.5 --out runs/filter
      thresher curate filter runs/score --normalize zscore --min score_reward_z=-1 --out f
      thresher curate filter runs/score --top-fraction 0.3 --top-by score_reward --per-category --out f
      thresher curate filter runs/score --best-of 1 --best-by score_reward --margin 0.1 --out f
    """
    from thresher.config import from_dict

    from ..score.cli import stage_input
    from .stage import Config, run

    data: dict[str, object] = {
        "min_scores": _limits("--min", mins),
        "max_scores": _limits("--max", maxs),
        "normalize": normalize,
        "top_fraction": top_fraction,
        "top_k": top_k,
        "top_by": top_by,
        "per_category": per_category,
        "best_of": best_of,
        "best_by": best_by,
        "margin": margin,
        "drop_empty": not keep_empty,
        "drop_truncated": not keep_truncated,
        "min_chars": min_chars,
        "max_chars": max_chars,
        "min_tokens": min_tokens,
        "max_tokens": max_tokens,
        "tokenizer": tokenizer,
        "trust_remote_code": trust_remote_code,
        "max_repeat_ratio": max_repeat_ratio,
        "ngram": ngram,
        "drop_refusals": drop_refusals or bool(refusal_phrases),
        "language": language,
        "language_min_prob": language_min_prob,
        "language_min_letters": language_min_letters,
        "max_echo_ratio": max_echo_ratio,
    }
    if refusal_phrases:
        data["refusal_phrases"] = list(refusal_phrases)
    config = from_dict(Config, data)
    result = run([stage_input(p) for p in inputs], Path(out), config, force=force)
    s = result.stats
    click.echo(f"kept {s.get('rows_out')} of {s.get('rows_in')} rows -> {out}")
    for reason, n in (s.get("drop_reasons") or {}).items():
        click.echo(f"  dropped {n}: {reason}")
