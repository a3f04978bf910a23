"""``thresher export`` (a hub-ready dataset folder) and ``thresher push`` (upload it)."""

from __future__ import annotations

import click


@click.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path())
@click.option("--to", "out", required=True, type=click.Path(file_okay=False),
              help="Folder to write: README.md (dataset card) and data/{train,test}-*.parquet.")
@click.option("--format", "kind", type=click.Choice(["sft", "dpo", "kto"]), default="sft", show_default=True,
              help="sft: the curated rows; dpo/kto: preference pairs from the scored samples per prompt.")
@click.option("--score", default=None, metavar="NAME", help="dpo/kto: ranking score (chosen best, rejected worst).")
@click.option("--verified", default=None, metavar="NAME",
              help="dpo/kto: verifier score (1 = pass): chosen passed, rejected failed.")
@click.option("--min-margin", type=float, default=0.0, show_default=True,
              help="dpo/kto: least score difference between chosen and rejected.")
@click.option("--force", is_flag=True, help="Write into a non-empty folder thresher did not export "
              "(only the export's own files are added or replaced; nothing else is deleted).")
def export(run_dir: str, out: str, kind: str = "sft", score: str | None = None, verified: str | None = None,
           min_margin: float = 0.0, force: bool = False) -> None:
    """Write RUN_DIR's curated dataset as a folder that `datasets.load_dataset(DIR)` and the
    Hugging Face hub read as it is: the card, the train split and the held-out test split.

    Example: thresher export runs/quickstart --to hub/quickstart
    """
    if kind != "sft":
        from thresher.pairs import PairOptions, export_pairs

        res = export_pairs(run_dir, out, PairOptions(kind, score, verified, min_margin))
        click.echo(f"exported {res['pairs']} {kind} pairs from {res['prompts']} prompts ({res['rows']} rows) "
                   f"to {res['out']}")
        return
    from thresher.publish import export_run

    res = export_run(run_dir, out, force=force)
    rows = ", ".join(f"{s}: {n} rows" for s, n in res["rows"].items())
    click.echo(f"exported {rows} with the dataset card to {res['out']}")


@click.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path())
@click.argument("repo_id", metavar="REPO_ID")
@click.option("--private", is_flag=True, help="Create the repos as private.")
@click.option("--adapter-repo", default=None, metavar="REPO_ID",
              help="Also upload the trained adapter to this model repo (its card links the dataset).")
def push(run_dir: str, repo_id: str, private: bool, adapter_repo: str | None) -> None:
    """Export RUN_DIR (see `thresher export`) and upload it to the dataset repo REPO_ID on the
    Hugging Face hub (needs network and a token: `hf auth login` or $HF_TOKEN).

    Example: thresher push runs/quickstart me/quickstart-sft --adapter-repo me/quickstart-lora
    """
    from thresher.publish import push_run

    res = push_run(run_dir, repo_id, private=private, adapter_repo=adapter_repo)
    click.echo("pushed " + ", ".join(f"{k}: {v}" for k, v in res.items()))
