"""The ``report`` recipe stage: writes the run report into the stage folder and the run directory.

Its kept.parquet is the final dataset it was given (unchanged), so the stage contract holds;
the report itself is ``report.md`` and ``report.html`` (see :mod:`thresher.report.report`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thresher.executor import GlobalStage, run_stage

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


class ReportStage(GlobalStage):
    """Global: the report of the run folder holding this stage's folder (it reads every
    earlier stage's folder itself)."""

    name = STAGE_NAME
    config_cls = Config
    cli = "thresher.report.cli:report"
    summary = "Write report.md and report.html for a run folder."
    makes_data = False
    reads_rows = False
    position = 110

    def writes(self, config: Config) -> set[str]:
        return set()  # the dataset it was given, unchanged

    def run_table(self, table: Any, context: Any) -> tuple[Any, Any, dict[str, Any]]:
        from thresher.io import parts
        from thresher.report.report import write_report

        out, inputs = context.stage.out, context.inputs
        also = (out.parent,) if context.config.copy_to_run_dir else ()
        md, page = write_report(out.parent, out, also=also)
        kept = parts.read(inputs[0]) if inputs and parts.exists(inputs[0]) else None  # a file or parts
        if kept is None:
            from thresher.schema import empty_table

            kept = empty_table()
        context.state["rows_in"] = kept.height
        return kept, None, {"report_md": str(md), "report_html": str(page)}

    def rows_in(self, table: Any, context: Any) -> int | None:
        return context.state["rows_in"]


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False):
    """Write the report for the run directory holding ``out`` (the final dataset is ``inputs[0]``)."""
    out = Path(out)
    return run_stage(ReportStage(), inputs, out, config, force=force, extra_inputs=_upstream(out))
