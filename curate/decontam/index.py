"""An index of benchmark n-gram hashes and the linear scan of data texts against it.

The index holds every n-gram hash of the benchmark texts in a :class:`.ngrams.KeySet` (a
sorted array plus a bitmap of the hashes' top bits that rejects almost every data n-gram
with one cached lookup), so scanning data is linear in its number of words (one numba pass:
:func:`.ngrams.scan_hits`); only the rare hits go through the polars join that names the
benchmark item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from thresher.curate.decontam.ngrams import KeySet, ngram_hashes, scan_hits, segment_words


@dataclass(frozen=True)
class Overlap:
    """How much overlap makes a row contaminated.

    A row is contaminated by a benchmark item when it contains at least ``min_count``
    distinct n-grams of that item and, when ``min_fraction`` is set, at least that fraction
    of the item's distinct n-grams.
    """

    n: int = 13
    min_count: int = 1
    min_fraction: float | None = None


class BenchmarkIndex:
    """Sorted n-gram hashes of benchmark texts (see :func:`BenchmarkIndex.build`)."""

    def __init__(self, n: int, entries: pl.DataFrame, items: pl.DataFrame, words: pl.Series):
        self.n = n
        # entries: hash (u64), item_idx (u32), start (i64: word position of the n-gram), unique per (hash, item_idx)
        self.entries = entries
        # items: item_idx, benchmark, item, ngrams (distinct n-grams of that item)
        self.items = items
        self._words = words
        self.keys = KeySet.build(entries["hash"].to_numpy())

    @classmethod
    def build(cls, bench: pl.DataFrame, n: int = 13) -> BenchmarkIndex:
        """Index the texts of ``bench`` (columns benchmark, item, text) for word n-grams."""
        items = (
            bench.select("benchmark", "item").unique(maintain_order=True).with_row_index("item_idx")
        )
        rows = bench.join(items, on=["benchmark", "item"], how="left", maintain_order="left")
        words = segment_words(rows["text"], keep_words=True)
        hashes, starts = ngram_hashes(words, n)
        seg_item = rows["item_idx"].to_numpy()
        entries = (
            pl.LazyFrame(
                {
                    "hash": hashes,
                    "item_idx": seg_item[words.seg[starts]].astype(np.uint32),
                    "start": starts,
                }
            )
            .unique(["hash", "item_idx"], keep="first", maintain_order=True)
            .collect()
        )
        counts = entries.group_by("item_idx").agg(pl.len().cast(pl.Int64).alias("ngrams"))
        items = (
            items.join(counts, on="item_idx", how="left")
            .with_columns(pl.col("ngrams").fill_null(0))
            .with_columns(pl.col("item_idx").cast(pl.UInt32))
        )
        return cls(n, entries, items, words.words)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def unmatchable(self) -> int:
        """Items with no n-gram at all (fewer than n words): they can never match."""
        return int((self.items["ngrams"] == 0).sum())

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``hashes`` are benchmark n-grams."""
        return self.keys.contains(hashes)

    def ngram_text(self, start: int) -> str:
        """The normalised benchmark n-gram that starts at word ``start``."""
        return " ".join(self._words.slice(start, self.n).to_list())

    def match(self, texts: pl.DataFrame, overlap: Overlap) -> pl.DataFrame:
        """Find the contaminated rows of ``texts`` (columns ``row`` (int) and ``text``).

        A row may have several texts (segments: n-grams never cross two). Returns one line
        per contaminated row: ``row``, ``benchmark``, ``benchmark_item``, ``matched_ngram``
        (one of the shared n-grams) and ``overlap`` (distinct shared n-grams), for the item
        that shares the most n-grams with the row.
        """
        seg, hashes = scan_hits(texts["text"], self.n, self.keys)
        if len(hashes) == 0:
            return _empty_match()
        seg_row = texts["row"].to_numpy()
        hits = pl.DataFrame({"row": seg_row[seg], "hash": hashes}).unique(
            maintain_order=True
        )
        per_item = (
            hits.join(self.entries, on="hash", how="inner")
            .group_by("row", "item_idx")
            .agg(pl.len().alias("overlap"), pl.col("start").first())
            .join(self.items, on="item_idx", how="left")
            .filter(pl.col("overlap") >= overlap.min_count)
        )
        if overlap.min_fraction is not None:
            per_item = per_item.filter(pl.col("overlap") >= overlap.min_fraction * pl.col("ngrams"))
        best = per_item.sort(
            ["row", "overlap", "item_idx"], descending=[False, True, False]
        ).unique("row", keep="first", maintain_order=True)
        return best.select(
            pl.col("row"),
            pl.col("benchmark"),
            pl.col("item").alias("benchmark_item"),
            pl.col("start")
            .map_elements(self.ngram_text, return_dtype=pl.String)
            .alias("matched_ngram"),
            pl.col("overlap").cast(pl.Int64),
        )


def _empty_match() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "row": pl.Int64,
            "benchmark": pl.String,
            "benchmark_item": pl.String,
            "matched_ngram": pl.String,
            "overlap": pl.Int64,
        }
    )
