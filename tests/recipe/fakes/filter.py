"""Fake filter: drop rows with score_len below min_len (reason in the real filter's format)."""

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from thresher.io import read_table
from thresher.stage import StageFolder, dropped_frame

from . import count


@dataclass(frozen=True)
class Config:
    min_len: float = 0.0
    best_of: int | None = None

    def check(self) -> list[str]:
        return [] if self.min_len >= 0 else ["min_len: must be >= 0"]


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False):
    stage = StageFolder("filter", out, inputs=inputs, config=config, force=force, quiet=True)
    if stage.done:
        return stage.result()
    count("filter")
    df = read_table(inputs[0])
    bad = pl.col("score_len") < config.min_len
    dropped = dropped_frame(df.filter(bad), "filter",
                            pl.format("score_len={} < " + f"{config.min_len:g}", pl.col("score_len")))
    kept = df.filter(~bad)
    if config.best_of:
        ranked = kept.with_columns(pl.col("score_len").rank("ordinal", descending=True).over("parent_id").alias("_r"))
        extra = ranked.filter(pl.col("_r") > config.best_of).drop("_r")
        kept = ranked.filter(pl.col("_r") <= config.best_of).drop("_r")
        dropped = pl.concat([dropped, dropped_frame(extra, "filter", "best_of: not among the best")],
                            how="diagonal_relaxed")
    return stage.finish(kept, dropped)
