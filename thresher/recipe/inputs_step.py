"""The inputs step of a recipe run (``00-inputs``): read, validate and concatenate inputs.

Each recipe input (a local file, a hub dataset or the chatterbot-corpus package) is read
with the core readers, gets its ``source``/``category`` filled, and all are concatenated.
Rows whose id repeats an earlier row are dropped. When the recipe asks for held-out
prompts (``holdout: N``), N prompts are set aside (spread over categories, seeded) into
``heldout.parquet`` for the ``eval`` stage, and every row sharing their prompt text is
kept out of the training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from thresher.errors import InputError
from thresher.executor import GlobalStage, WrittenParts
from thresher.recipe.chatterbot import chatterbot_files, read_chatterbot
from thresher.recipe.spec import InputSpec
from thresher.stage_folder import PARTS_WORK

STAGE_NAME = "inputs"
FOLDER = "00-inputs"


@dataclass(frozen=True)
class Config:
    """What the inputs step reads: the recipe's inputs, held-out count and seed."""

    inputs: tuple[InputSpec, ...] = ()
    holdout: int = 0
    seed: int = 0

    def check(self) -> list[str]:
        """Range problems (one string each)."""
        return [] if self.holdout >= 0 else ["holdout: must be >= 0"]


# ---------------------------------------------------------------- reading


def read_input(spec: InputSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read one recipe input (through the stages' one input path: any format, compressed or
    not, a run folder) into a validated row table with source/category filled; returns
    ``(rows, rejected)``, the rows rejected on read (``on_bad_rows: skip``) as dropped rows."""
    from thresher.io.inputs import ReadOptions, read_inputs, rejects_frame
    from thresher.schema import conform, make_rows

    rejected = rejects_frame([])
    if spec.kind == "chatterbot":
        df = make_rows(
            read_chatterbot(spec.value, spec.categories, responses=spec.responses),
            source=spec.source or "chatterbot-corpus",
        )
    else:
        if spec.kind == "path" and not Path(spec.value).exists():
            raise InputError(f"{spec.value}: file not found")
        df, rejected = read_inputs([spec.value], ReadOptions(fmt=spec.format, on_bad_rows=spec.on_bad_rows,
                                                             split=spec.split))
    if spec.limit is not None:
        df = df.head(spec.limit)
    if spec.source is not None:
        df = df.with_columns(pl.lit(spec.source, dtype=pl.String).alias("source"))
    if spec.category is not None:
        df = df.with_columns(pl.lit(spec.category, dtype=pl.String).alias("category"))
    return conform(df), rejected


def _prompt_key() -> pl.Expr:
    """Text of the conversation's last user turn before a final assistant turn."""
    msgs = pl.col("messages")
    prompt = pl.when(msgs.list.last().struct.field("role") == "assistant").then(
        msgs.list.head(msgs.list.len() - 1)
    ).otherwise(msgs)
    return prompt.list.eval(
        pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")
    ).list.last()


def split_holdout(df: pl.DataFrame, n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Set aside ``n`` distinct prompts spread across categories (seeded); return
    ``(rest, heldout)``. Rows of ``rest`` never share a prompt text with ``heldout``."""
    if n <= 0 or df.height == 0:
        return df, df.head(0)
    keyed = df.with_columns(_prompt_key().alias("_prompt"))
    prompts = (
        keyed.unique("_prompt", keep="first", maintain_order=True)
        .with_columns(pl.col("_prompt").hash(seed=seed).alias("_h"))
        .with_columns(pl.col("_h").rank("ordinal").over("category").alias("_r"))
        .sort(["_r", "_h"])
    )
    if n >= prompts.height:
        raise InputError(
            f"holdout: {n} held-out prompts asked for but the inputs have only {prompts.height} distinct prompts"
        )
    chosen = prompts.head(n)
    held = chosen.drop("_h", "_r", "_prompt")
    rest = keyed.filter(~pl.col("_prompt").is_in(chosen["_prompt"].implode())).drop("_prompt")
    return rest, held


class InputsStage(GlobalStage):
    """The recipe's inputs step (``00-inputs``): not a recipe stage of its own; it reads the
    recipe's inputs itself (files, hub datasets, chatterbot-corpus)."""

    name = STAGE_NAME
    config_cls = Config
    in_recipe = False
    position = 0
    reads_rows = False

    def run_table(self, table: pl.DataFrame, context: Any) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
        from thresher.io import write_table
        from thresher.stage import dropped_frame

        config = context.config
        read = [read_input(spec) for spec in config.inputs]
        frames = [f for f, _ in read]
        extra = sorted({c for f in frames for c in f.columns} - {"id", "messages", "category", "source"})
        df = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
        if df.height == 0:
            raise InputError("the recipe's inputs hold no rows")
        dup = df.filter(~pl.col("id").is_first_distinct())
        df = df.filter(pl.col("id").is_first_distinct())
        kept, held = split_holdout(df, config.holdout, config.seed)
        held_ids = held["id"].implode()
        held_out_rows = df.filter(pl.col("id").is_in(held_ids) | ~pl.col("id").is_in(kept["id"].implode()))
        write_table(held, context.stage.path("heldout.parquet"))
        context.artefacts["heldout"] = "heldout.parquet"
        dropped = pl.concat([dropped_frame(dup, STAGE_NAME, "repeated id from an earlier input"),
                             dropped_frame(held_out_rows, STAGE_NAME, "held out for evaluation"),
                             *(rej for _, rej in read if rej.height)], how="diagonal_relaxed")
        stats = {
            "inputs": [{"kind": s.kind, "value": s.value, "rows": f.height, "rejected_on_read": r.height}
                       for s, (f, r) in zip(config.inputs, read)],
            "extra_columns": extra,
            "repeated_ids": dup.height,
            "heldout": held.height,
        }
        return kept, dropped, stats

    def rows_in(self, table: pl.DataFrame, context: Any) -> int | None:
        return None  # kept + dropped

    def run_parts(self, context: Any) -> WrittenParts | None:
        """Stream large file inputs into parts (no held-out prompts: those need every row)."""
        config: Config = context.config
        if not _streams(config):
            return None
        return stream_inputs(config, context.stage.out / PARTS_WORK / "inputs")


def _read_options(spec: InputSpec) -> Any:
    from thresher.io.inputs import ReadOptions

    return ReadOptions(fmt=spec.format, on_bad_rows=spec.on_bad_rows, split=spec.split)


def _streams(config: Config) -> bool:
    """True when every input is a file read in batches and they are large enough to stream
    (:func:`thresher.executors.stream.should_stream`'s threshold), with no held-out prompts."""
    import os

    from thresher.executors.stream import MIN_BYTES_ENV, STREAM_MIN_BYTES
    from thresher.io.stream import input_bytes, streamable

    if config.holdout or not config.inputs or any(s.kind != "path" for s in config.inputs):
        return False
    if not all(streamable([s.value], _read_options(s)) for s in config.inputs):
        return False
    floor = int(os.environ.get(MIN_BYTES_ENV) or STREAM_MIN_BYTES)
    return floor <= 0 or input_bytes([s.value for s in config.inputs]) >= floor


def _fill(df: pl.DataFrame, spec: InputSpec) -> pl.DataFrame:
    from thresher.schema import conform

    if spec.source is not None:
        df = df.with_columns(pl.lit(spec.source, dtype=pl.String).alias("source"))
    if spec.category is not None:
        df = df.with_columns(pl.lit(spec.category, dtype=pl.String).alias("category"))
    return conform(df)


def stream_inputs(config: Config, work: Path) -> WrittenParts:
    """Every input a batch at a time into parts under ``work``: rows whose id an earlier input
    gave are dropped (the ids of every input but the last are kept in memory to find them)."""
    import shutil

    from thresher.io import parts

    shutil.rmtree(work, ignore_errors=True)
    run = _Streamed(work)
    for n, spec in enumerate(config.inputs):
        run.read(spec, last=n == len(config.inputs) - 1)
    if run.rows == 0:
        raise InputError("the recipe's inputs hold no rows")
    for name in ("kept.parquet", "dropped.parquet"):
        parts.seal(work / name)
    stats = {"inputs": run.per_input, "extra_columns": sorted(run.columns - {"id", "messages", "category", "source"}),
             "repeated_ids": run.repeated, "heldout": 0, "streamed": {"parts": run.index}}
    return WrittenParts(work, pl.concat(run.kept, how="diagonal_relaxed"),
                        pl.concat(run.dropped, how="diagonal_relaxed"), stats)


class _Streamed:
    """The state of :func:`stream_inputs`: parts written, projections, ids of earlier inputs."""

    def __init__(self, work: Path):
        self.work, self.seen, self.columns = work, set(), set()
        self.kept: list[pl.DataFrame] = []
        self.dropped: list[pl.DataFrame] = []
        self.per_input: list[dict[str, Any]] = []
        self.index = self.rows = self.repeated = 0

    def read(self, spec: InputSpec, last: bool) -> None:
        """Stream one input into parts (its ids remembered unless it is the ``last``)."""
        from thresher.executors.stream import part_rows
        from thresher.io.stream import iter_inputs

        left, rows, rejected_n, ids = spec.limit, 0, 0, set()
        for batch, rejected in iter_inputs([spec.value], _read_options(spec), part_rows()):
            batch = _fill(batch if left is None else batch.head(left), spec)
            self.write(batch, rejected)
            rows, rejected_n = rows + batch.height, rejected_n + rejected.height
            if not last:
                ids.update(batch["id"].to_list())
            if left is not None:
                left -= batch.height
                if left <= 0:
                    break
        self.seen |= ids
        self.rows += rows
        self.per_input.append({"kind": spec.kind, "value": spec.value, "rows": rows, "rejected_on_read": rejected_n})

    def write(self, batch: pl.DataFrame, rejected: pl.DataFrame) -> None:
        """One batch as the next part: rows whose id an earlier input gave are dropped."""
        from thresher.io import parts
        from thresher.schema import DROP_COLUMNS
        from thresher.stage import dropped_frame

        seen = self.seen
        dup = pl.Series([i in seen for i in batch["id"].to_list()], dtype=pl.Boolean) if seen \
            else pl.Series([False] * batch.height, dtype=pl.Boolean)
        kept = batch.filter(~dup)
        dropped = pl.concat([rejected, dropped_frame(batch.filter(dup), STAGE_NAME,
                                                     "repeated id from an earlier input")], how="diagonal_relaxed")
        dropped = dropped.select([*(c for c in dropped.columns if c not in DROP_COLUMNS), *DROP_COLUMNS])
        parts.write_part(kept, self.work / "kept.parquet", self.index)
        parts.write_part(dropped, self.work / "dropped.parquet", self.index)
        self.kept.append(kept.select("category"))
        self.dropped.append(dropped.select([c for c in ("category", "drop_stage", "drop_code", "drop_reason")
                                            if c in dropped.columns]))
        self.columns |= set(batch.columns)
        self.index += 1
        self.repeated += int(dup.sum())


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False):
    """Read every recipe input, concatenate, drop repeated ids and set aside held-out prompts.

    ``inputs`` (:func:`stage_inputs`) are fingerprinted as they are, not read."""
    from thresher.executor import run_stage

    return run_stage(InputsStage(), [], out, config, force=force, extra_inputs=list(inputs))


def stage_inputs(config: Config) -> list[Path]:
    """The files the inputs step depends on (for the stage manifest's hash)."""
    files: list[Path] = []
    for spec in config.inputs:
        if spec.kind == "path" and Path(spec.value).exists():
            files.append(Path(spec.value))
        elif spec.kind == "chatterbot":
            files.extend(chatterbot_files(spec.value, spec.categories))
    return files
