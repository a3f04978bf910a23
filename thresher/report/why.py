"""``thresher why RUN_DIR ROW_ID``: which stage dropped a row and why, or that it survived.

A row id (or a unique prefix of one) is looked up in every stage's ``dropped.parquet`` in
order; a row in the final dataset survived and is shown with its scores. A prompt id (the
``parent_id`` of generated samples) is explained through the fate of each of its samples.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from thresher.errors import ThresherError
from thresher.report.run import Run, load_run
from thresher.schema import prompt_text, response_text


def _match(df: pl.DataFrame | None, row_id: str, col: str = "id") -> pl.DataFrame:
    if df is None or col not in df.columns or df.height == 0:
        return pl.DataFrame()
    ids = df[col].cast(pl.String)
    exact = df.filter(ids == row_id)
    return exact if exact.height else df.filter(ids.str.starts_with(row_id))


def _short(text: str, n: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _scores(row: dict[str, Any]) -> str:
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
             if k.startswith("score_") and v is not None]
    return ", ".join(parts)


def _describe(row: dict[str, Any]) -> list[str]:
    msgs = row.get("messages") or []
    lines = [f"  prompt:   {_short(prompt_text(msgs))!r}"] if prompt_text(msgs) else []
    resp = response_text(msgs)
    if resp:
        lines.append(f"  response: {_short(resp)!r}")
    if row.get("reference") is not None:  # verified distillation: what the answer was checked against
        lines.append(f"  reference: {_short(str(row['reference']))!r}")
    if row.get("tests") is not None:
        entry = f" (entry point {row['entry_point']})" if row.get("entry_point") else ""
        lines.append(f"  tests:    {_short(str(row['tests']), 60)!r}{entry}")
    extra = [f"category={row.get('category')}"] if row.get("category") is not None else []
    if row.get("parent_id"):
        extra.append(f"parent_id={row['parent_id']}")
    if _scores(row):
        extra.append(_scores(row))
    if extra:
        lines.append("  " + ", ".join(extra))
    return lines


def _resolve_prefix(run: Run, row_id: str) -> str:
    """The one row id ``row_id`` names: itself when some stage has it exactly, else the single
    id starting with it; several ids starting with it are an error listing them."""
    frames = [df for s in run.data_stages for df in (s.dropped(), s.kept())]
    if run.final is not None:
        frames.append(run.final.kept())
    candidates: set[str] = set()
    for df in frames:
        if df is None or "id" not in df.columns or df.height == 0:
            continue
        ids = df["id"].cast(pl.String)
        if (ids == row_id).any():
            return row_id
        candidates.update(x for x in ids.filter(ids.str.starts_with(row_id)).to_list() if x is not None)
    if len(candidates) > 1:
        shown = sorted(candidates)
        more = f", ... ({len(shown)} in all)" if len(shown) > 8 else ""
        raise ThresherError(f"row id prefix {row_id!r} is ambiguous: it starts {', '.join(shown[:8])}{more}; "
                            "give more of the id")
    return next(iter(candidates), row_id)


def explain_row(run: Run, row_id: str, *, fallback: bool = True) -> list[str] | None:
    """Lines explaining one row's fate, or None when no stage has seen ``row_id``."""
    row_id = _resolve_prefix(run, row_id)
    for s in run.lineage:  # the stages the final dataset came through (not a side branch)
        hit = _match(s.dropped(), row_id)
        if hit.height > 1:
            raise ThresherError(f"row id prefix {row_id!r} is ambiguous ({hit.height} rows in {s.folder})")
        if hit.height == 1:
            row = hit.row(0, named=True)
            how = "rejected on read by" if row.get("drop_stage") == "read" else "dropped by"
            lines = [f"row {row['id']} was {how} stage {s.folder}: {row.get('drop_reason')}"]
            return lines + _describe(row)
    final = run.final
    if final is not None:
        hit = _match(final.kept(), row_id)
        if hit.height > 1:
            raise ThresherError(f"row id prefix {row_id!r} is ambiguous ({hit.height} rows in {final.folder})")
        if hit.height == 1:
            row = hit.row(0, named=True)
            lines = [f"row {row['id']} survived every stage: it is in the final dataset ({final.kept_path})"]
            return lines + _describe(row)
    if not fallback:
        return None
    for s in reversed(run.data_stages):  # seen but neither dropped nor final: the run stopped early
        hit = _match(s.kept(), row_id)
        if hit.height == 1:
            row = hit.row(0, named=True)
            first = (f"row {row['id']} was kept by {s.folder}, the last finished stage that saw it "
                     "(the run has not finished the stages after it)")
            return [first, *_describe(row)]
    return None


def explain_prompt(run: Run, prompt_id: str) -> list[str] | None:
    """Lines explaining a prompt through the fate of each sample generated from it."""
    samples: dict[str, dict[str, Any]] = {}
    for s in run.data_stages:
        for df in (s.kept(), s.dropped()):
            hit = _match(df, prompt_id, "parent_id")
            for row in hit.iter_rows(named=True):
                samples.setdefault(row["id"], row)
    if not samples:
        return None
    parent = next(iter(samples.values()))["parent_id"]
    lines = [f"prompt {parent} has {len(samples)} generated samples:"]
    for sid in samples:
        sub = explain_row(run, sid) or [f"row {sid}: not found"]
        lines.append("- " + sub[0])
        lines += ["  " + ln for ln in sub[1:] if "response" in ln or "score_" in ln]
    return lines


def why(run_dir: str, row_id: str) -> str:
    """The explanation for ``row_id`` in the run at ``run_dir`` (raises when unknown)."""
    row_id = row_id.strip()
    if not row_id:
        raise ThresherError("ROW_ID must not be empty")
    run = load_run(run_dir)
    try:
        lines = explain_row(run, row_id, fallback=False)
    except ThresherError:  # an ambiguous row-id prefix may still be one prompt id
        lines = explain_prompt(run, row_id)
        if lines is None:
            raise
    if lines is None:
        lines = explain_prompt(run, row_id)
    if lines is None:
        lines = explain_row(run, row_id)
    if lines is None:
        raise ThresherError(f"row {row_id} is not in any stage of {run_dir}")
    return "\n".join(lines)
