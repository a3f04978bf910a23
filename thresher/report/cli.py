"""``thresher report RUN_DIR`` and ``thresher why RUN_DIR ROW_ID``."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
@click.option("--out", "-o", "out", default=None, type=click.Path(file_okay=False),
              help="Folder for report.md and report.html (default: RUN_DIR).")
def report(run_dir: str, out: str | None) -> None:
    """Write report.md (a dataset card) and report.html (with plots) for RUN_DIR.

    Example: thresher report runs/quickstart
    """
    from thresher.report.report import write_report

    md, page = write_report(run_dir, out)
    click.echo(f"wrote {md}\nwrote {page}")


@click.command("why")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
@click.argument("row_id", metavar="ROW_ID")
def why(run_dir: str, row_id: str) -> None:
    """Say which stage dropped ROW_ID and why, or that it survived (with its scores).

    ROW_ID may be a unique prefix, or a prompt id (then each of its samples is explained).

    Example: thresher why runs/quickstart 3f2a9c
    """
    from thresher.report.why import why as explain

    click.echo(explain(run_dir, row_id))
