"""The dedup peers of ``benchmarks/dedup.py``: rensa, datatrove's MinHash pipeline, text-dedup.

Each peer gets the same documents, 128 permutations (datatrove: bands x rows = the
datasketch-optimal split of 128 for the threshold), 5-word shingles and threshold 0.8, and
runs single-threaded in this process. Each returns its signatures (for throughput) or the
set of document pairs it puts in one cluster (for precision/recall/F1):

- rensa ``RMinHash``: from text (Python 5-word shingling, then the bulk
  ``digest_matrix_from_token_sets``) and from shingles already given; the pipeline is
  ``RMinHashLSH`` (16 bands x 8 rows: its bands must divide 128) insert + query, verified
  by the estimated Jaccard, union-find;
- datatrove: ``MinhashDedupSignature`` -> ``MinhashDedupBuckets`` -> ``MinhashDedupCluster``
  on local folders (its English word tokenizer needs spacy; sha1 hashing, because its xxhash
  path fails on current xxhash); clusters from the ``.clusters`` file; no verification step;
- text-dedup: its ``embed_func`` per document (the signature step of ``text_dedup.minhash``),
  band tables and union-find as in its ``main``; no verification step.
"""

from __future__ import annotations

import struct
import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np

THRESHOLD, NUM_PERM, NGRAM = 0.8, 128, 5


def lsh_params(threshold: float = THRESHOLD, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows) minimising false positives + negatives (datasketch's choice)."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, 0.5, 0.5)


def shingle_lists(norm: list[str]) -> list[list[str]]:
    """5-word shingles of each normalised text, in plain Python (what a rensa user writes)."""
    out = []
    for t in norm:
        w = t.split()
        out.append([" ".join(w[i:i + NGRAM]) for i in range(max(1, len(w) - NGRAM + 1))] if w else [])
    return out


def pairs_of(labels: list[int]) -> set[tuple[int, int]]:
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        groups.setdefault(c, []).append(i)
    return {p for g in groups.values() if len(g) > 1 for p in combinations(sorted(g), 2)}


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        p = self.parent
        while p[x] != x:
            p[x] = p[p[x]]
            x = p[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def labels(self) -> list[int]:
        return [self.find(i) for i in range(len(self.parent))]


# ----------------------------------------------------------------------------- rensa

def rensa_from_text(norm: list[str], seed: int = 1):
    """rensa signatures from normalised text: Python shingling + the bulk digest matrix."""
    from rensa import RMinHash

    return RMinHash.digest_matrix_from_token_sets(shingle_lists(norm), NUM_PERM, seed)


def rensa_from_shingles(shingles: list[list[str]], seed: int = 1):
    """rensa signatures from shingles already computed."""
    from rensa import RMinHash

    return RMinHash.digest_matrix_from_token_sets(shingles, NUM_PERM, seed)


def rensa_pipeline(shingles: list[list[str]], seed: int = 1, bands: int = 16) -> set[tuple[int, int]]:
    """RMinHashLSH: insert all, query each, keep candidates with estimated J >= threshold
    (``bands`` must divide 128: 16 x 8 finds candidates from J ~0.71; 8 x 16 is the setting of
    rensa's README benchmark)."""
    from rensa import RMinHash, RMinHashLSH

    mins = RMinHash.from_token_sets(shingles, NUM_PERM, seed)
    lsh = RMinHashLSH(THRESHOLD, NUM_PERM, bands)
    for i, m in enumerate(mins):
        lsh.insert(i, m)
    uf = _UnionFind(len(mins))
    for i, m in enumerate(mins):
        for j in lsh.query(m):
            if j > i and m.jaccard(mins[j]) >= THRESHOLD:
                uf.union(i, j)
    return pairs_of(uf.labels())


# ----------------------------------------------------------------------------- datatrove

def _datatrove_config():
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.hashing import HashConfig

    bands, rows = lsh_params()
    return MinhashConfig(n_grams=NGRAM, num_buckets=bands, hashes_per_bucket=rows,
                         hash_config=HashConfig(precision=64, hash_fc="sha1"))


def _drain(result) -> None:
    if result is not None:
        for _ in result:
            pass


def datatrove_signature_step(texts: list[str], folder: Path):
    """Build the step (tokenizer load excluded from timing) and return a runner."""
    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    step = MinhashDedupSignature(output_folder=str(folder / "sigs"), config=_datatrove_config())
    step.word_tokenizer.word_tokenize("warm up the tokenizer")
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    return lambda: _drain(step.run(iter(docs), rank=0, world_size=1))


def datatrove_pipeline(texts: list[str]) -> set[tuple[int, int]]:
    """Signatures, buckets (one task per band), clusters; labels from the .clusters file."""
    from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets, MinhashDedupCluster

    cfg = _datatrove_config()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        datatrove_signature_step(texts, d)()
        buckets = MinhashDedupBuckets(input_folder=str(d / "sigs"), output_folder=str(d / "buckets"), config=cfg)
        for b in range(cfg.num_buckets):
            _drain(buckets.run(None, rank=b, world_size=cfg.num_buckets))
        _drain(MinhashDedupCluster(input_folder=str(d / "buckets"), output_folder=str(d / "clusters"),
                                   config=cfg, save_cluster_id=True).run(None, 0, 1))
        labels = list(range(len(texts)))
        f = d / "clusters" / "000000.clusters"
        if f.exists():
            raw = f.read_bytes()
            vals = struct.unpack(f"<{len(raw) // 4}I", raw)
            for doc, cluster in zip(vals[::2], vals[1::2]):
                labels[doc] = len(texts) + cluster
    return pairs_of(labels)


# ----------------------------------------------------------------------------- text-dedup

def _textdedup_args():
    from text_dedup.utils import xxh3_32hash

    bands, rows = lsh_params()
    dtype, max_hash, prime = np.uint64, np.uint32((1 << 32) - 1), np.uint64((1 << 61) - 1)
    rng = np.random.RandomState(42)
    perms = (rng.randint(1, prime, size=(NUM_PERM,), dtype=dtype), rng.randint(0, prime, size=(NUM_PERM,), dtype=dtype))
    return {"num_perm": NUM_PERM, "ngram_size": NGRAM, "min_length": 0, "permutations": perms,
            "hashranges": [(i * rows, (i + 1) * rows) for i in range(bands)], "hash_func": xxh3_32hash,
            "dtype": dtype, "max_hash": max_hash, "modulo_prime": prime}


def textdedup_signatures(texts: list[str]) -> list[list[bytes]]:
    """text-dedup's per-document ``embed_func`` (band keys of the signature) on raw text."""
    from text_dedup.minhash import SIGNATURE_COLUMN, embed_func

    kw = _textdedup_args()
    return [embed_func(t, i, **kw)[SIGNATURE_COLUMN] for i, t in enumerate(texts)]


def textdedup_pipeline(texts: list[str]) -> set[tuple[int, int]]:
    """Band tables and union-find over every band collision, as ``text_dedup.minhash.main``."""
    sigs = textdedup_signatures(texts)
    tables: list[dict[bytes, list[int]]] = [{} for _ in range(len(sigs[0]) if sigs else 0)]
    for i, hs in enumerate(sigs):
        for b, h in enumerate(hs):
            tables[b].setdefault(h, []).append(i)
    uf = _UnionFind(len(texts))
    for table in tables:
        for members in table.values():
            for x in members[1:]:
                uf.union(members[0], x)
    return pairs_of(uf.labels())


# ----------------------------------------------------------------------------- end to end

def rensa_end_to_end(src: Path, out: Path, seed: int = 1) -> dict:
    """rensa on a Parquet file of conversations, end to end: read, text, shingle, sign, LSH,
    verify, write the kept rows to ``out``; returns counts.

    The text is thresher's (``text_column(on="conversation")`` + ``normalize``, vectorised in
    polars), so both tools compare the same strings; from there on it is the streaming
    pattern of rensa's own deduplication example: Python shingling, ``RMinHash.from_token_sets``
    in chunks, and for each row in order an ``RMinHashLSH`` (16 x 8) query against the rows
    kept so far: dropped at the first candidate with estimated J >= threshold, else inserted
    and kept (a greedy star, like ``--cluster star``; inserting every row and querying each
    instead is quadratic in the size of the large template clusters of this corpus).
    """
    import polars as pl
    from rensa import RMinHash, RMinHashLSH

    from thresher.curate.dedup.normalize import normalize, text_column

    df = pl.read_parquet(src)
    norm = normalize(text_column(df, "conversation")).to_list()
    lsh = RMinHashLSH(THRESHOLD, NUM_PERM, 16)
    keep = np.zeros(len(norm), dtype=bool)
    kept: dict[int, object] = {}
    for s in range(0, len(norm), 50_000):  # sign in chunks: all the shingle lists at once do not fit
        mins = RMinHash.from_token_sets(shingle_lists(norm[s:s + 50_000]), NUM_PERM, seed)
        for k, m in enumerate(mins):
            if not any(m.jaccard(kept[j]) >= THRESHOLD for j in lsh.query(m)):
                i = s + k
                lsh.insert(i, m)
                kept[i] = m
                keep[i] = True
    df.filter(pl.Series(keep)).write_parquet(out)
    return {"rows_in": df.height, "rows_out": int(keep.sum())}


if __name__ == "__main__":  # python dedup_peers.py rensa-e2e SRC.parquet OUT.parquet (run by dedup.py)
    import json
    import sys

    if sys.argv[1:2] == ["rensa-e2e"]:
        print(json.dumps(rensa_end_to_end(Path(sys.argv[2]), Path(sys.argv[3]))))
