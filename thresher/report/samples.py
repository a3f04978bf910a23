"""Sample rows of every stage for the report: a few kept and a few dropped, with the drop
reason and the row's scores, so a reader sees what each stage actually did.

The rows are chosen deterministically (the first ones by id hash), texts are cut to
:data:`MAX_CHARS`. In report.html each stage's samples are a collapsible ``<details>`` block.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from thresher.report.run import Run

N_KEPT = 3
N_DROPPED = 3
MAX_CHARS = 160


def _cut(text: Any) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= MAX_CHARS else s[: MAX_CHARS - 1] + "…"


def _turn(msgs: Any, role: str, last: bool = True) -> str:
    seq = [m for m in (msgs or []) if m.get("role") == role]
    return "" if not seq else _cut(seq[-1 if last else 0].get("content"))


def _scores(row: dict[str, Any], cols: list[str]) -> str:
    parts = []
    for c in cols:
        v = row.get(c)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            parts.append(f"{c.removeprefix('score_')}={v:.3g}")
    return ", ".join(parts)


def _pick(df: pl.DataFrame | None, n: int) -> list[dict[str, Any]]:
    if df is None or df.height == 0 or "id" not in df.columns:
        return []
    picked = df.with_columns(pl.col("id").cast(pl.String).hash(seed=0).alias("__h")).sort("__h").head(n)
    return picked.drop("__h").to_dicts()


def _rows(rows: list[dict[str, Any]], status: str, cols: list[str]) -> list[list[Any]]:
    out = []
    for r in rows:
        msgs = r.get("messages") or []
        reason = "" if status == "kept" else _cut(r.get("drop_reason"))
        out.append([status, str(r.get("id", "")), r.get("category") or "", _turn(msgs, "user"),
                    _turn(msgs, "assistant"), _scores(r, cols), reason])
    return out


HEADER = ["status", "id", "category", "prompt", "response", "scores", "drop reason"]


def stage_samples(run: Run) -> list[tuple[str, list[list[Any]]]]:
    """``[(stage folder, rows)]`` for every finished stage with rows: kept first, then dropped."""
    out = []
    for s in run.stages:
        if s.name in ("report",):
            continue
        try:
            kept = s.kept()  # one file or a folder of parts; None when there is none
            dropped = s.dropped()
        except Exception:  # noqa: BLE001 - an unreadable file must not break the report
            continue
        if kept is None:
            continue
        cols = sorted({c for df in (kept, dropped) if df is not None for c in df.columns
                       if c.startswith("score_") and not c.endswith(("_z", "_rank", "_rz"))})
        rows = _rows(_pick(kept, N_KEPT), "kept", cols) + _rows(_pick(dropped, N_DROPPED), "dropped", cols)
        if rows:
            out.append((s.folder, rows))
    return out


def samples(run: Run) -> Any:
    """The "Sample rows" section (None when no stage has rows)."""
    from thresher.report.sections import Section

    found = stage_samples(run)
    if not found:
        return None
    sec = Section("Sample rows")
    sec.text(f"For every stage, up to {N_KEPT} rows it kept and {N_DROPPED} it dropped (chosen by id hash), "
             "with their scores and the drop reason. `thresher why RUN_DIR ROW_ID` follows one row through "
             "the whole run.")
    for folder, rows in found:
        n_kept = sum(1 for r in rows if r[0] == "kept")
        sec.blocks.append(("details", (f"{folder}: {n_kept} kept, {len(rows) - n_kept} dropped", HEADER, rows)))
    return sec
