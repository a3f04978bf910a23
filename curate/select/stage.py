"""The ``select`` stage: keep ``k`` rows (or a ``fraction``) by one of three methods.

- ``top``: the best ``by`` scores (``descending: false`` for the lowest, e.g. the shortest);
- ``diversity``: k-center greedy on embeddings (mean-pooled hidden states of ``model``, the
  student; or a ready ``embedding_column``), which covers the data's spread;
- ``score-then-diversity`` (Deita): from the best ``by`` score down, a row is taken when its
  cosine similarity to every row taken is below ``max_similarity``.

Rows not selected go to ``dropped.parquet`` with the reason. ``top`` and the methods given an
``embedding_column`` stream large inputs (:mod:`thresher.executors.stream`): they choose from
a projection (row number, id, category, the score and the embedding), about 60 bytes a row
plus the id and ``8 x dim`` for an embedding, and the rows are written part by part in input
order, as the whole-table run writes them. Randomness is a strong baseline
(Xia et al. 2025): the eval stage's random-subset student is the comparison to make.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from thresher.errors import ConfigError, InputError
from thresher.executor import ROW_INDEX, GlobalStage, run_stage
from thresher.schema import DROP_COLUMNS
from thresher.stage import StageResult, dropped_frame

NAME = "select"
METHODS = ("top", "diversity", "score-then-diversity")


@dataclass(frozen=True)
class Config:
    """Options of ``thresher curate select`` (the recipe keys are the field names)."""

    method: Literal["top", "diversity", "score-then-diversity"] = "top"
    """top: best scores; diversity: k-center greedy on embeddings; score-then-diversity: Deita (best
    scores, skipping near-duplicates)."""
    k: int | None = None
    """Rows to keep (or give fraction)."""
    fraction: float | None = None
    """Share of the rows to keep, in (0, 1] (or give k)."""
    by: str | None = None
    """Score column for top and score-then-diversity."""
    descending: bool = True
    """True: the highest scores first; False: the lowest first."""
    max_similarity: float = 0.9
    """score-then-diversity: a row is taken only below this cosine similarity to every row taken."""
    on: Literal["prompt", "response", "conversation"] = "conversation"
    """The text embedded for diversity."""
    model: str | None = None
    """Embedding model (default: SmolLM2, the student), mean-pooled hidden states."""
    embedding_column: str | None = None
    """A column of ready embeddings (lists of floats) used instead of a model."""
    max_length: int = 256
    """Tokens per row embedded."""
    batch_size: int = 16
    """Rows per embedding batch."""

    def check(self) -> list[str]:
        """Range and consistency problems, one string each."""
        p = []
        if self.method not in METHODS:
            p.append(f"method: must be one of {', '.join(METHODS)} (got {self.method!r})")
        if (self.k is None) == (self.fraction is None):
            p.append("k / fraction: give exactly one of them")
        if self.k is not None and self.k < 1:
            p.append("k: must be >= 1")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            p.append("fraction: must be in (0, 1]")
        if self.method in ("top", "score-then-diversity") and not self.by:
            p.append(f"by: needed with method {self.method} (a score column)")
        if not 0 < self.max_similarity <= 1:
            p.append("max_similarity: must be in (0, 1]")
        if self.max_length < 8 or self.batch_size < 1:
            p.append("max_length: must be >= 8 and batch_size >= 1")
        return p

    def size(self, n: int) -> int:
        """How many of ``n`` rows to keep."""
        return min(n, self.k) if self.k is not None else max(1, math.floor(n * float(self.fraction) + 0.5))


def _embeddings(df, config: Config, where: str):
    import numpy as np

    from .embed import mean_pooled, texts_for

    if config.embedding_column:
        if config.embedding_column not in df.columns:
            raise InputError(f"{where}: no embedding column {config.embedding_column!r}")
        return np.asarray(df[config.embedding_column].to_list(), dtype=np.float32)
    return mean_pooled(texts_for(df["messages"].to_list(), config.on), config.model,
                       max_length=config.max_length, batch_size=config.batch_size)


def choose(df, config: Config, where: str) -> tuple[list[int], dict]:
    """Row positions to keep and the stats of the choice."""

    from . import methods as M

    k = config.size(df.height)
    scores = None
    if config.by:
        _check_by(df, config, where)
        scores = df[config.by].cast(float).fill_null(float("nan")).to_numpy()
    stats: dict = {"method": config.method, "k": k}
    if config.method == "top":
        return M.top(scores, k, descending=config.descending), stats
    x = _embeddings(df, config, where)
    if config.method == "diversity":
        first = None if scores is None else M.top(scores, 1, descending=config.descending)[0]
        return M.kcenter_greedy(x, k, first=first), stats
    chosen, filled = M.score_then_diversity(x, scores, k, max_similarity=config.max_similarity,
                                            descending=config.descending)
    stats["filled_below_threshold"] = filled
    e = M.normalize_rows(x[chosen])
    sims = e @ e.T
    stats["mean_pairwise_similarity"] = float((sims.sum() - len(chosen)) / max(1, len(chosen) * (len(chosen) - 1)))
    return chosen, stats


class SelectStage(GlobalStage):
    """Global: k rows are chosen among all the rows at once."""

    name = NAME
    config_cls = Config
    cli = "thresher.curate.select.cli:select_cmd"
    cli_group = "curate"
    summary = "Keep k rows by score, embedding diversity or both (Deita)."
    position = 70

    def models(self, config: Config) -> list[tuple[str, str | None]]:
        """The embedding model (diversity methods without a ready embedding column)."""
        uses = config.method != "top" and not config.embedding_column
        return [("model", config.model)] if uses else []

    def reads(self, config: Config) -> list[tuple[str, str]]:
        """The ``by`` score column and the ``embedding_column``."""
        return [(opt, v) for opt in ("by", "embedding_column") if (v := getattr(config, opt))]

    def writes(self, config: Config) -> set[str]:
        return set()

    def run_table(self, df: Any, context: Any) -> tuple[Any, Any, dict]:
        """The chosen rows of the whole input table, the others dropped with the reason."""
        first = context.inputs[0] if context.inputs else context.where
        chosen, stats = _chosen(df, context.config, str(first), df.columns)
        return _split(df, chosen, stats, context.config)

    # -- streaming: top-k (and diversity on a ready embedding column) decide from a projection

    def streams(self, config: Config) -> bool:
        """True when the choice needs no conversation: ``top``, or an ``embedding_column``."""
        return config.method == "top" or bool(config.embedding_column)

    def projection_columns(self, config: Config, columns: list[str]) -> list[str]:
        """The ``by`` score column and the ``embedding_column``."""
        return [c for c in (config.by, config.embedding_column) if c and c in columns]

    def setup(self, config: Config, where: str = "", stage: Any = None) -> Any:
        """The streaming context; a single Parquet input has the same columns in every batch,
        so its score column is checked on the first batch (before any part is reported)."""
        from thresher.io import parts

        context = super().setup(config, where, stage)
        one = Path(where)
        context.state["fixed_columns"] = one.suffix.lower() in (".parquet", ".pq") or parts.is_dataset(one)
        return context

    def project(self, batch: Any, context: Any) -> None:
        """Nothing computed; the input's columns are noted for the error messages."""
        seen = context.state.setdefault("columns", [])
        if not seen and context.state.get("fixed_columns"):
            _check_by(batch.drop(ROW_INDEX, strict=False), context.config, context.where)
        seen.extend(c for c in batch.columns if c not in seen and c != ROW_INDEX)
        return None

    def run_projection(self, table: Any, context: Any) -> tuple[Any, Any, dict]:
        """The whole-table choice on the projection (row order, ``by``, embeddings)."""
        chosen, stats = _chosen(table, context.config, context.where, context.state.get("columns", table.columns))
        kept, dropped, stats = _split(table, chosen, stats, context.config)
        keep = [ROW_INDEX, "id", "category"]
        return kept.select(keep), dropped.select(*keep, *DROP_COLUMNS), stats


def _check_by(df: Any, config: Config, where: str, columns: list[str] | None = None) -> None:
    """Raise when ``df`` (the input's ``columns``) has no numeric ``by`` column."""
    if not config.by:
        return
    if config.by not in df.columns:
        raise InputError(f"{where}: no score column {config.by!r} (columns: {', '.join(columns or df.columns)})")
    if not df.schema[config.by].is_numeric():
        raise InputError(f"{where}: score column {config.by} is not numeric")


def _chosen(df: Any, config: Config, where: str, columns: list[str]) -> tuple[list[int], dict]:
    """:func:`choose`, after the checks that name the input and its ``columns`` (``df`` may
    be a projection of them)."""
    if df.height == 0:
        raise InputError(f"{where}: no rows to select from")
    _check_by(df, config, where, columns)
    return choose(df, config, where)


def _split(df: Any, chosen: list[int], stats: dict, config: Config) -> tuple[Any, Any, dict]:
    """``df`` split into the ``chosen`` rows (in input order) and the others, with the reason."""
    import polars as pl

    pos = pl.Series("_pos", range(df.height))
    mask = pos.is_in(pl.Series(chosen).implode())
    what = {"top": f"not in the top {stats['k']} by {config.by}", "diversity": "not among the k-center picks",
            "score-then-diversity": "not selected (score-then-diversity)"}[config.method]
    return df.filter(mask), dropped_frame(df.filter(~mask), NAME, what), stats


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False, read: Any = None) -> StageResult:
    """Keep the selected rows of ``inputs`` (see the module docstring)."""
    problems = config.check()
    if problems:
        raise ConfigError(problems, where=NAME)
    return run_stage(SelectStage(), inputs, out, config, force=force, read=read)
