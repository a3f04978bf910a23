"""The ``report`` recipe stage: writes the run report into the stage folder and the run directory.

Its kept.parquet is the final dataset it was given (unchanged), so the stage contract holds;
the report itself is ``report.md`` and ``report.html`` (see :mod:`thresher.report.report`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAGE_NAME = "report"


@dataclass(frozen=True)
class Config:
    """Options of the report stage."""

    copy_to_run_dir: bool = True  # also place report.md / report.html at the top of the run directory

    def check(self) -> list[str]:
        """No range checks (kept for the stage contract)."""
        return []


def _upstream(out: Path) -> list[Path]:
    """stats.json of every stage folder before this one (the report depends on all of them)."""
    run_dir = out.parent
    if not run_dir.is_dir():
        return []
    return sorted(p / "stats.json" for p in run_dir.iterdir()
                  if p.is_dir() and p.name[:2].isdigit() and p.name < out.name and (p / "stats.json").exists())


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False):
    """Write the report for the run directory holding ``out`` (the final dataset is ``inputs[0]``)."""
    import polars as pl

    from thresher.report.report import write_report
    from thresher.stage import Stage

    out = Path(out)
    stage = Stage(STAGE_NAME, out, inputs=[*inputs, *_upstream(out)], config=config, force=force)
    if stage.done:
        return stage.result()
    md, page = write_report(out.parent, out, also=(out.parent,) if config.copy_to_run_dir else ())
    kept = pl.read_parquet(inputs[0]) if inputs and Path(inputs[0]).exists() else None
    if kept is None:
        from thresher.schema import empty_table

        kept = empty_table()
    return stage.finish(kept, None, stats={"report_md": str(md), "report_html": str(page)}, rows_in=kept.height)
