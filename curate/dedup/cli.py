"""``thresher curate dedup IN --out RUN_DIR [options]``."""

from __future__ import annotations

from pathlib import Path

import click

from thresher.cli.options import force_option, input_options, out_option


@click.command(name="dedup")
@click.argument("input_path", metavar="IN", type=click.Path(exists=True))
@out_option
@click.option("--on", type=click.Choice(["conversation", "prompt", "response"]), default="conversation",
              show_default=True, help="Text to compare: all turns with role markers, the prompt, or the response.")
@click.option("--threshold", type=float, default=0.8, show_default=True,
              help="Jaccard similarity at or above which two rows are near-duplicates, in (0, 1].")
@click.option("--num-perm", type=int, default=128, show_default=True, help="MinHash permutations (>= 2).")
@click.option("--ngram", type=int, default=5, show_default=True, help="Shingle size (words or characters).")
@click.option("--shingle", type=click.Choice(["word", "char"]), default="word", show_default=True,
              help="Word or character n-gram shingles.")
@click.option("--bands", type=int, default=None,
              help="LSH bands (with --rows); default: chosen from the threshold like datasketch.")
@click.option("--rows", "rows_per_band", type=int, default=None, help="LSH rows per band (with --bands).")
@click.option("--hash", "hash_mode", type=click.Choice(["fast", "sha1"]), default="fast", show_default=True,
              help="Shingle hash: fast, or sha1 to reproduce datasketch's default signatures exactly.")
@click.option("--seed", type=int, default=1, show_default=True, help="MinHash permutation seed (as datasketch).")
@click.option("--keep-by", default=None, metavar="COLUMN",
              help="Keep the copy with the highest value of this column (ties: first seen).")
@click.option("--cluster", type=click.Choice(["components", "star"]), default="components", show_default=True,
              help="components: one survivor per connected component of verified pairs; star: drop only "
                   "rows that are direct near-duplicates of a survivor.")
@click.option("--against", type=click.Path(exists=True), default=None, metavar="REF",
              help="Also drop rows that duplicate rows of REF (REF itself is not deduplicated).")
@click.option("--memory", default="2GB", show_default=True,
              help="Memory budget; signatures and band keys spill to disk above it.")
@click.option("--no-nfkc", is_flag=True, help="Skip Unicode NFKC normalisation.")
@click.option("--no-casefold", is_flag=True, help="Keep letter case.")
@click.option("--no-punctuation", is_flag=True, help="Keep punctuation and symbols.")
@click.option("--no-whitespace", is_flag=True, help="Do not collapse whitespace.")
@input_options
@force_option
def dedup(input_path: str, out: str, on: str, threshold: float, num_perm: int, ngram: int, shingle: str,
          bands: int | None, rows_per_band: int | None, hash_mode: str, seed: int, keep_by: str | None,
          cluster: str, against: str | None, memory: str, no_nfkc: bool, no_casefold: bool, no_punctuation: bool,
          no_whitespace: bool, fmt: str | None, on_bad_rows: str, force: bool) -> None:
    """Remove exact and near-duplicate rows of IN, keeping the best copy of each cluster.

    Writes kept.parquet, dropped.parquet (reason per row), clusters.parquet and stats.json
    under --out.
    """
    from thresher.config import from_dict
    from thresher.curate.dedup.stage import Config, run

    options = {
        "on": on, "threshold": threshold, "num_perm": num_perm, "ngram": ngram, "shingle": shingle,
        "bands": bands, "rows": rows_per_band, "hash": hash_mode, "seed": seed, "keep_by": keep_by,
        "cluster": cluster, "against": against, "memory": memory, "nfkc": not no_nfkc, "casefold": not no_casefold,
        "punctuation": not no_punctuation, "whitespace": not no_whitespace,
    }
    config = from_dict(Config, options)
    result = run([Path(input_path)], Path(out), config, force=force,
                 read_options={"fmt": fmt, "on_bad_rows": on_bad_rows})
    s = result.stats
    click.echo(
        f"dedup: {s.get('rows_in')} rows in, {s.get('rows_out')} kept "
        f"({s.get('exact_duplicates', 0)} exact, {s.get('near_duplicates', 0)} near-duplicates, "
        f"{s.get('against_exact', 0) + s.get('against_near', 0)} matching the reference) -> {result.out}"
    )
