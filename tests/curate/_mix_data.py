"""Row tables for the mix tests: categories of known sizes with known scores."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from thresher.io import write_table
from thresher.schema import make_rows


def rows(
    sizes: dict[str, int], *, prefix: str = "", source: str | None = "data", scores: bool = True
) -> pl.DataFrame:
    """``sizes[c]`` rows per category ``c``; row ``i`` of ``c`` has id ``<prefix><c>-<i>``
    and ``score_q = i / size`` (so the top-scored rows are the last ones)."""
    recs = []
    for cat, n in sizes.items():
        for i in range(n):
            rec = {
                "id": f"{prefix}{cat}-{i}",
                "messages": [
                    {"role": "user", "content": f"{cat} question number {i}"},
                    {"role": "assistant", "content": f"answer {i}"},
                ],
                "category": cat,
                "source": source,
            }
            if scores:
                rec["score_q"] = i / n
            recs.append(rec)
    return make_rows(recs)


def write(df: pl.DataFrame, path: Path) -> Path:
    write_table(df, path)
    return path


def origin(ids: pl.Series) -> pl.Series:
    """The original row id of each output id (upsampled copies are ``<id>#<copy>``)."""
    return ids.str.replace(r"#\d+$", "")
