"""Fake dedup: rows of one category with the same response word count are duplicates;
writes clusters.parquet."""

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from thresher.io import read_table
from thresher.stage import StageFolder, dropped_frame

from . import count


@dataclass(frozen=True)
class Config:
    threshold: float = 0.8

    def check(self) -> list[str]:
        return [] if 0 < self.threshold <= 1 else ["threshold: must be in (0, 1]"]


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False):
    stage = StageFolder("dedup", out, inputs=inputs, config=config, force=force, quiet=True)
    if stage.done:
        return stage.result()
    count("dedup")
    df = read_table(inputs[0])
    words = pl.col("messages").list.last().struct.field("content").str.split(" ").list.len()
    key = pl.format("{}/{}", pl.col("category"), words)
    df = df.with_columns(key.alias("_k"))
    first = pl.col("_k").is_first_distinct()
    kept, dup = df.filter(first).drop("_k"), df.filter(~first)
    clusters = df.select(pl.col("_k").rank("dense").alias("cluster_id"), pl.col("id").alias("member_id"),
                         first.alias("kept"))
    clusters.write_parquet(stage.path("clusters.parquet"))
    dropped = dropped_frame(dup.drop("_k"), "dedup", "near-duplicate (J=1.00)")
    return stage.finish(kept, dropped, artefacts={"clusters": "clusters.parquet"})
