"""``thresher export`` (a hub-ready dataset folder) and ``thresher push`` (upload it)."""

from __future__ import annotations

import click


@click.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path())
@click.option("--to", "out", required=True, type=click.Path(file_okay=False),
              help="Folder to write: README.md (dataset card) and data/{train,test}-*.parquet.")
@click.option("--force", is_flag=True, help="Write into a non-empty folder thresher did not export "
              "(only the export's own files are added or replaced; nothing else is deleted).")
def export(run_dir: str, out: str, force: bool) -> None:
    """Write RUN_DIR's curated dataset as a folder that `datasets.load_dataset(DIR)` and the
    Hugging Face hub read as it is: the card, the train split and the held-out test split.

    Example: thresher export runs/quickstart --to hub/quickstart
    """
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
