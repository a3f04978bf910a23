"""``thresher curate select``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("select")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--method", type=click.Choice(["top", "diversity", "score-then-diversity"]), default="top",
              show_default=True, help="top: best scores; diversity: k-center greedy on embeddings; "
                                      "score-then-diversity: Deita (best scores, skipping near-duplicates).")
@click.option("--k", "k", type=int, default=None, help="Rows to keep.")
@click.option("--fraction", type=float, default=None, help="Share of rows to keep (instead of --k).")
@click.option("--by", default=None, metavar="COL", help="Score column (top, score-then-diversity).")
@click.option("--ascending", is_flag=True, help="Lowest scores first (e.g. --by score_length for brevity).")
@click.option("--max-similarity", type=float, default=0.9, show_default=True,
              help="score-then-diversity: cosine similarity a new row must stay below.")
@click.option("--on", type=click.Choice(["prompt", "response", "conversation"]), default="conversation",
              show_default=True, help="Text embedded for diversity.")
@click.option("--model", default=None, help="Embedding model (default: SmolLM2, the student).")
@click.option("--embedding-column", default=None, metavar="COL", help="Use ready embeddings from this column.")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--force", is_flag=True, help="Recompute even when a finished result exists.")
def select_cmd(inputs: tuple[Path, ...], method: str, k: int | None, fraction: float | None, by: str | None,
               ascending: bool, max_similarity: float, on: str, model: str | None,
               embedding_column: str | None, out: Path, force: bool) -> None:
    """Keep --k rows (or --fraction) of INPUTS by score, by embedding diversity, or both."""
    from thresher.config import from_dict

    from .stage import Config, run

    cfg = from_dict(Config, {"method": method, "k": k, "fraction": fraction, "by": by, "descending": not ascending,
                             "max_similarity": max_similarity, "on": on, "model": model,
                             "embedding_column": embedding_column})
    res = run(list(inputs), out, cfg, force=force)
    click.echo(f"select ({method}): {res.stats.get('rows_out')} of {res.stats.get('rows_in')} rows kept -> "
               f"{res.kept_path}")
