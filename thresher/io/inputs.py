"""The one input path of every stage: files of any format, run folders, or several.

``ReadOptions`` (``--format``, ``--on-bad-rows``, ``--split``) travel with a stage and are part
of its fingerprint. :func:`resolve_input` turns a run folder into the table it stands for
(a stage folder's ``kept.parquet``, a recipe run's final dataset); :func:`read_inputs` reads
every input into one table and returns the rows rejected on read as a dropped-rows frame
(``drop_stage = "read"``, a ``drop_code`` and a ``drop_reason`` naming file:line), so that
``rows in + rejected = records in the files`` always holds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import polars as pl

from thresher.errors import InputError
from thresher.io.shapes import Shape

READ_STAGE = "read"


#: what a stage does with a bad input row: stop, or skip it and record why
OnBadRows = Literal["error", "skip"]


@dataclass(frozen=True)
class ReadOptions:
    """How a stage reads its inputs (part of the stage fingerprint). The fields are the
    ``--format``, ``--on-bad-rows`` and ``--split`` options of every command that reads rows
    (:func:`thresher.cli.options.read_options`); the docstrings are their help."""

    fmt: Shape | None = None
    """Force the input record format (default: the format most records have)."""
    on_bad_rows: OnBadRows = "error"
    """Stop at the first bad row (error), or skip bad rows and record each with its reason
    (stages: in dropped.parquet as drop_stage=read; convert: beside the output)."""
    split: str | None = None
    """Split to read from a DatasetDict folder or hub dataset (default: train)."""

    def as_dict(self) -> dict[str, Any]:
        """Plain mapping (for manifests): :func:`thresher.config.to_dict`."""
        from thresher.config import to_dict

        return to_dict(self)

    @classmethod
    def coerce(cls, value: ReadOptions | dict[str, Any] | None) -> ReadOptions:
        """A ReadOptions from itself, a mapping of its fields, or None (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, ReadOptions):
            return value
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in dict(value).items() if k in names})


def resolve_input(path: str | os.PathLike) -> Path:
    """The table a path stands for: a stage run folder gives its ``kept.parquet``; a recipe
    run folder gives its final dataset (``summary.json``'s ``dataset``); anything else is itself."""
    p = Path(path)
    if not p.is_dir():
        return p
    from thresher.io import parts

    if parts.exists(p / "kept.parquet"):  # one file, or a folder of parts
        return p / "kept.parquet"
    summary = p / "summary.json"
    if summary.is_file():
        try:
            dataset = json.loads(summary.read_text(encoding="utf-8")).get("dataset")
        except (OSError, ValueError):
            dataset = None
        if dataset and parts.exists(dataset):
            return Path(dataset)
        raise InputError(f"{p}: recipe run folder has no finished dataset yet (run `thresher run` first)")
    if (p / "manifest.json").is_file():
        raise InputError(f"{p}: stage folder has no kept.parquet (the stage has not finished)")
    return p


def resolve_inputs(paths: list[str | os.PathLike] | tuple) -> list[Path]:
    """:func:`resolve_input` of each path."""
    return [resolve_input(p) for p in paths]


def rejects_frame(rejects: list[dict[str, Any]]) -> pl.DataFrame:
    """Dropped rows for rows rejected on read: ``id`` (when the record had one), ``raw``
    (the record's text), ``drop_stage = "read"``, ``drop_code`` and ``drop_reason`` (file:line: why)."""
    schema = {"id": pl.String, "raw": pl.String, "drop_stage": pl.String,
              "drop_code": pl.String, "drop_reason": pl.String}
    rows = [{
        "id": r.get("id"),
        "raw": r.get("raw"),
        "drop_stage": READ_STAGE,
        "drop_code": r.get("code") or "bad-row",
        "drop_reason": f"{r['file']}:{r['where']}: {r['reason']}",
    } for r in rejects]
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def read_inputs(paths: list[str | os.PathLike] | tuple,
                options: ReadOptions | dict[str, Any] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read every input into one row table; returns ``(table, rejected_rows_frame)``.

    Columns missing from some inputs are null. Ids are unique across all inputs (one
    :class:`~thresher.schema.IdAssigner`: a given id seen in an earlier input is a bad row, a
    derived one gets the next occurrence index). With ``on_bad_rows="error"`` the first bad row
    raises a one-line :class:`InputError`; with ``skip`` it lands in the rejected frame (so do
    OpenAI Batch requests without a result).
    """
    from thresher.io.openai_batch import join
    from thresher.io.readers import read_rows
    from thresher.schema import IdAssigner

    opts = ReadOptions.coerce(options)
    if not paths:
        raise InputError("no input given")
    ids = IdAssigner()  # one id space: a given id twice across files is a bad row, content ids get occurrences
    results = [read_rows(p, opts.fmt, on_bad_rows=opts.on_bad_rows, split=opts.split, ids=ids)
               for p in resolve_inputs(paths)]
    frames = join(results, on_bad_rows=opts.on_bad_rows)  # OpenAI Batch results meet their requests (by custom_id)
    table = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
    from thresher.io.references import normalize_references

    rejects = [r for res in results for r in res.rejects]
    return normalize_references(table), rejects_frame(rejects)  # reference/tests columns: one name each
