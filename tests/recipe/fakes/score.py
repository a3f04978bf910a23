"""Fake score: score_len = words in the response; score_fake = length of the teacher name."""

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from thresher.io import read_table
from thresher.schema import response_text
from thresher.stage import StageFolder

from . import count


@dataclass(frozen=True)
class Config:
    scorers: tuple[str, ...] = ()
    scale: float = 1.0

    def check(self) -> list[str]:
        return [] if self.scale > 0 else ["scale: must be > 0"]


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False):
    stage = StageFolder("score", out, inputs=inputs, config=config, force=force, quiet=True)
    if stage.done:
        return stage.result()
    count("score")
    df = read_table(inputs[0])
    words = [len(response_text(m).split()) * config.scale for m in df["messages"].to_list()]
    teachers = df["teacher"].to_list() if "teacher" in df.columns else [""] * df.height
    bonus = [3.0 if t and "curated" in t else (1.0 if t and "random" in t else 0.0) for t in teachers]
    df = df.with_columns(pl.Series("score_fake", bonus, dtype=pl.Float64),
                         pl.Series("score_len", words, dtype=pl.Float64))
    return stage.finish(df, None)
