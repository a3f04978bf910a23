"""``thresher curate score``: add score columns with reward, log-likelihood and judge scorers."""

from __future__ import annotations

from pathlib import Path

import click

from thresher.cli.options import force_option, out_option

SCORER_HELP = (
    "Scorer as [NAME=]KIND[:ARGS], repeatable; adds column score_NAME (NAME defaults to KIND). "
    "KIND: loglik[:MODEL] (default; SmolLM2 when MODEL is omitted), reward:MODEL "
    "(sequence-classification reward model, hub name or folder), judge:BACKEND[:MODEL] "
    "(LLM judge through a distill backend: transformers, vllm, openai)."
)


def stage_input(path: str) -> Path:
    """A data file, or a stage run folder (its kept.parquet)."""
    p = Path(path)
    if p.is_dir() and (p / "kept.parquet").is_file():
        return p / "kept.parquet"
    return p


@click.command(name="score")
@click.argument("inputs", metavar="IN...", nargs=-1, required=True)
@click.option("--scorer", "-s", "scorers", multiple=True, metavar="SPEC", help=SCORER_HELP)
@click.option("--label", default=None,
              help="Reward models with several labels: the label index or name to use.")
@click.option("--max-length", type=int, default=2048, show_default=True,
              help="Token limit per row for reward and loglik scorers.")
@click.option("--overflow", type=click.Choice(["truncate_left", "truncate_right", "skip"]),
              default="truncate_left", show_default=True,
              help="Rows over --max-length: keep the end, keep the start, or skip with a reason.")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--max-batch-tokens", type=int, default=16384, show_default=True,
              help="Padded tokens per batch (rows x longest row).")
@click.option("--no-sort", is_flag=True,
              help="Batch rows in input order instead of by length (slower; for comparison).")
@click.option("--engine", type=click.Choice(["auto", "transformers", "vllm"]), default="auto",
              show_default=True,
              help="Reward-model engine: vllm's pooling runner, transformers, or auto (vllm when "
                   "installed and a GPU is visible).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
              default="auto", show_default=True, help="auto: bfloat16 on GPU, float32 on CPU.")
@click.option("--judge-rubric", type=click.Path(dir_okay=False), default=None,
              help="Text file with the judge's rubric (replaces the default).")
@click.option("--judge-scale", type=int, default=10, show_default=True,
              help="The judge scores from 1 to this.")
@click.option("--judge-retries", type=int, default=2, show_default=True,
              help="Extra attempts when a judge answer has no readable score.")
@click.option("--judge-max-tokens", type=int, default=128, show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Score cache folder (default $THRESHER_CACHE/scores or ~/.cache/thresher/scores).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the score cache.")
@click.option("--trust-remote-code", is_flag=True, help="Allow model repositories' own code.")
@out_option
@force_option
def score(inputs: tuple[str, ...], scorers: tuple[str, ...], label: str | None, max_length: int,
          overflow: str, batch_size: int, max_batch_tokens: int, no_sort: bool, engine: str,
          device: str,
          dtype: str, judge_rubric: str | None, judge_scale: int, judge_retries: int,
          judge_max_tokens: int, cache_dir: str | None, no_cache: bool, trust_remote_code: bool,
          out: str, force: bool) -> None:
    """Score every row of IN (a data file or a stage run folder) and write OUT/kept.parquet with
    a score_NAME and NAME_error column per scorer. Scores are cached per row, so a re-run
    only scores what is missing.

    \b
    Examples:
      thresher curate score data.parquet --out runs/score
      thresher curate score data.parquet -s loglik -s rm=reward:./my-rm --out runs/score
      thresher curate score data.parquet -s judge:transformers:smollm2 --out runs/judge
    """
    from thresher.config import from_dict

    from .stage import Config, run

    config = from_dict(Config, {
        "scorers": list(scorers),
        "label": label,
        "max_length": max_length,
        "overflow": overflow,
        "batch_size": batch_size,
        "max_batch_tokens": max_batch_tokens,
        "sort_by_length": not no_sort,
        "engine": engine,
        "device": device,
        "dtype": dtype,
        "judge_rubric": judge_rubric,
        "judge_scale": judge_scale,
        "judge_retries": judge_retries,
        "judge_max_tokens": judge_max_tokens,
        "cache": not no_cache,
        "cache_dir": cache_dir,
        "trust_remote_code": trust_remote_code,
    })
    result = run([stage_input(p) for p in inputs], Path(out), config, force=force)
    for name, s in result.stats.get("scorers", {}).items():
        line = f"score_{name}: {s.get('scored', 0)} scored, {s.get('errors', 0)} without score"
        if s.get("cached"):
            line += f", {s['cached']} from cache"
        if "mean" in s:
            line += f"; mean {s['mean']:.4g}, min {s['min']:.4g}, max {s['max']:.4g}"
        click.echo(line)
