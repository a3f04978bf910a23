"""Benchmark ``thresher curate dedup`` against datasketch on real offline text.

Corpus: real English paragraphs from CPython's ``pydoc_data/topics.py`` plus, when the
``evals`` package is installed, prompts from its registry; base documents are kept pairwise
dissimilar (5-shingle Jaccard < 0.3), then near-duplicates are planted (edits of 1-15% of
words, sentence shuffles, boilerplate additions). Everything runs single-threaded
(``POLARS_MAX_THREADS=1``), num_perm 128, 5-word shingles, threshold 0.8.

Printed, side by side with datasketch:

1. signature throughput (docs/s) of thresher (fast and sha1 hash), ``MinHash.update`` in a
   loop and ``MinHash.bulk``, with the ratio to ``MinHash.bulk``;
2. Jaccard estimation error on ``--pairs`` pairs of known Jaccard;
3. pair precision / recall / F1 against the planted truth (pairs inside a planted cluster
   whose true Jaccard is >= the threshold) for the thresher pipeline and a datasketch
   ``MinHashLSH`` pipeline (insert, query, verify, union-find);
4. with ``--scale``: ``thresher curate dedup`` end to end (a subprocess, both cores) on
   ``--scale-rows`` real conversations from the evals registry: time and peak RSS.

Usage: ``python benchmarks/dedup.py --size 3000`` (a few minutes), ``--scale`` for the 1M run.
"""

from __future__ import annotations

import os

os.environ.setdefault("POLARS_MAX_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("THRESHER_PROGRESS", "0")

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path

import numpy as np
import polars as pl

THRESHOLD, NUM_PERM, NGRAM = 0.8, 128, 5
BOILERPLATE = [
    "Sure! Here is the answer you asked for.",
    "I hope this helps, let me know if you have any other questions.",
    "Note: this response was generated automatically.",
    "As an AI assistant, I am happy to help with that.",
]


# ----------------------------------------------------------------------------- corpus

def _evals_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("evals")
    if spec is None or spec.origin is None:
        return None
    d = Path(spec.origin).parent / "registry" / "data"
    return d if d.is_dir() else None


def _evals_records() -> Iterator[tuple[str, int, dict]]:
    d = _evals_dir()
    if d is None:
        return
    for f in sorted(d.rglob("*.jsonl")):
        name = str(f.relative_to(d))
        with open(f, encoding="utf-8", errors="replace") as fh:
            for i, line in enumerate(fh):
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    yield name, i, rec


def _messages(rec: dict) -> list[dict] | None:
    inp = rec.get("input")
    if isinstance(inp, str):
        msgs = [{"role": "user", "content": inp}]
    elif isinstance(inp, list):
        msgs = [{"role": m.get("role"), "content": m.get("content")} for m in inp if isinstance(m, dict)]
    else:
        return None
    ideal = rec.get("ideal")
    if isinstance(ideal, list) and ideal and isinstance(ideal[0], str):
        ideal = ideal[0]
    if isinstance(ideal, str) and ideal.strip():
        msgs.append({"role": "assistant", "content": ideal})
    from thresher.schema import validate_messages

    return msgs if validate_messages(msgs) is None else None


def base_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` real texts (30-300 words), pairwise 5-shingle Jaccard < 0.3."""
    from pydoc_data.topics import topics

    pool: list[str] = []
    for key in sorted(topics):
        pool += [" ".join(p.split()) for p in re.split(r"\n\s*\n", topics[key])]
    seen = 0
    for _name, _i, rec in _evals_records():
        msgs = _messages(rec)
        if msgs:
            pool.append(" ".join(" ".join(m["content"] for m in msgs).split()))
            seen += 1
            if seen > 40 * n:
                break
    random.Random(seed).shuffle(pool)
    index: dict[str, list[int]] = {}
    out: list[str] = []
    for text in pool:
        words = text.split()
        if len(words) < 30:
            continue
        text = " ".join(words[:300])
        sh = _shingle_set(text)
        counts: dict[int, int] = {}
        for s in sh:
            for j in index.get(s, ()):
                counts[j] = counts.get(j, 0) + 1
        if any(c / (len(sh) + len(_sets[j]) - c) >= 0.3 for j, c in counts.items()):
            continue
        j = len(out)
        out.append(text)
        _sets.append(sh)
        for s in sh:
            index.setdefault(s, []).append(j)
        if len(out) >= n:
            break
    _sets.clear()
    return out


_sets: list[set[str]] = []


def _norm(text: str) -> str:
    from thresher.curate.dedup.normalize import normalize_text

    return normalize_text(text)


def _shingle_set(text: str) -> set[str]:
    from thresher.curate.dedup.shingles import shingle_texts

    return set(shingle_texts(_norm(text), NGRAM))


def variant(text: str, rng: random.Random) -> str:
    """A planted near-duplicate: word edits (1-15%), a sentence shuffle or boilerplate."""
    kind = rng.choice(["edit", "edit", "shuffle", "boiler"])
    words = text.split()
    if kind == "shuffle":
        sents = re.split(r"(?<=[.!?])\s+", text)
        if len(sents) >= 3:
            i = rng.randrange(len(sents) - 1)
            sents[i], sents[i + 1] = sents[i + 1], sents[i]
            return " ".join(sents)
        kind = "edit"
    if kind == "boiler":
        b = rng.choice(BOILERPLATE)
        return f"{b} {text}" if rng.random() < 0.5 else f"{text} {b}"
    k = max(1, round(len(words) * rng.uniform(0.01, 0.15)))
    for _ in range(k):
        op = rng.random()
        i = rng.randrange(len(words))
        if op < 0.6:
            words[i] = rng.choice(["data", "value", "system", "thing", "result", "item", "point"])
        elif op < 0.8 and len(words) > 5:
            del words[i]
        else:
            words.insert(i, rng.choice(["very", "also", "simply", "indeed"]))
    return " ".join(words)


def build_corpus(size: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """Texts and their planted cluster (index of the original): 30% of originals get 1-3 copies."""
    rng = random.Random(seed)
    n_base = int(size / 1.6)
    base = base_texts(n_base, seed)
    texts, cluster = list(base), list(range(len(base)))
    for i in rng.sample(range(len(base)), int(0.3 * len(base))):
        for _ in range(rng.randint(1, 3)):
            texts.append(variant(base[i], rng))
            cluster.append(i)
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order], [cluster[i] for i in order]


def true_jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def truth_pairs(texts: list[str], cluster: list[int]) -> set[tuple[int, int]]:
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(cluster):
        groups.setdefault(c, []).append(i)
    sets = {}
    out = set()
    for members in groups.values():
        for i, j in combinations(sorted(members), 2):
            for k in (i, j):
                if k not in sets:
                    sets[k] = _shingle_set(texts[k])
            if true_jaccard(sets[i], sets[j]) >= THRESHOLD:
                out.add((i, j))
    return out


# ----------------------------------------------------------------------------- pipelines

def _timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def thresher_signatures(norm: list[str], hash: str = "fast") -> np.ndarray:
    from thresher.curate.dedup.minhash import text_signatures

    return text_signatures(norm, num_perm=NUM_PERM, ngram=NGRAM, hash=hash)


def datasketch_update_loop(norm: list[str]) -> list:
    from datasketch import MinHash

    from thresher.curate.dedup.shingles import shingle_texts

    out = []
    for t in norm:
        m = MinHash(num_perm=NUM_PERM)
        for s in shingle_texts(t, NGRAM):
            m.update(s.encode("utf-8"))
        out.append(m)
    return out


def datasketch_bulk(norm: list[str], seed: int = 1) -> list:
    from datasketch import MinHash

    from thresher.curate.dedup.shingles import shingle_texts

    return MinHash.bulk([[s.encode("utf-8") for s in shingle_texts(t, NGRAM)] for t in norm],
                        num_perm=NUM_PERM, seed=seed)


def _cluster_pairs(labels: list[int]) -> set[tuple[int, int]]:
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        groups.setdefault(c, []).append(i)
    return {p for g in groups.values() if len(g) > 1 for p in combinations(sorted(g), 2)}


def thresher_pipeline(texts: list[str], hash: str = "fast", seed: int = 1) -> set[tuple[int, int]]:
    """The real engine (exact + MinHash/LSH + verification + components) on the raw texts."""
    from thresher.config import from_dict
    from thresher.curate.dedup.engine import deduplicate
    from thresher.curate.dedup.stage import Config

    df = pl.DataFrame({"id": [str(i) for i in range(len(texts))],
                       "messages": [[{"role": "user", "content": t}] for t in texts]})
    with tempfile.TemporaryDirectory() as tmp:
        cfg = from_dict(Config, {"on": "prompt", "hash": hash, "seed": seed})
        res = deduplicate(df, cfg, spill_dir=Path(tmp))
    labels = [i if k else int(d) for i, (k, d) in enumerate(zip(res.keep, res.duplicate_of))]
    return _cluster_pairs(labels)


def datasketch_pipeline(mins: list) -> set[tuple[int, int]]:
    """MinHashLSH: insert all, query each, verify estimated Jaccard, union-find."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    with lsh.insertion_session() as s:
        for i, m in enumerate(mins):
            s.insert(i, m)
    parent = list(range(len(mins)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, m in enumerate(mins):
        for j in lsh.query(m):
            if j > i and m.jaccard(mins[j]) >= THRESHOLD:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    return _cluster_pairs([find(i) for i in range(len(mins))])


def prf(pred: set, truth: set) -> tuple[float, float, float]:
    tp = len(pred & truth)
    p = tp / len(pred) if pred else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


# ----------------------------------------------------------------------------- scale

def build_scale_parquet(rows: int, path: Path) -> int:
    """Write up to ``rows`` real evals-registry conversations to ``path``; return the count."""
    if path.exists():
        return pl.scan_parquet(path).select(pl.len()).collect().item()
    ids, msgs, cats = [], [], []
    for name, i, rec in _evals_records():
        m = _messages(rec)
        if m:
            ids.append(f"{name}:{i + 1}")
            msgs.append(m)
            cats.append(name.split("/")[0])
            if len(ids) >= rows:
                break
    from thresher.schema import MESSAGES_DTYPE

    df = pl.DataFrame({"id": ids, "messages": msgs, "category": cats,
                       "source": ["evals"] * len(ids)},
                      schema={"id": pl.String, "messages": MESSAGES_DTYPE, "category": pl.String,
                              "source": pl.String})
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write_parquet(path)
    return df.height


def run_scale(rows: int, memory: str, cache: Path, cluster: str = "components") -> dict:
    import psutil

    data = cache / f"evals-{rows}.parquet"
    t = time.perf_counter()
    n = build_scale_parquet(rows, data)
    print(f"scale corpus: {n:,} conversations in {data} ({time.perf_counter() - t:.0f}s to prepare)")
    out = cache / f"run-{rows}"
    env = {k: v for k, v in os.environ.items() if k not in ("POLARS_MAX_THREADS", "NUMBA_NUM_THREADS")}
    env["THRESHER_PROGRESS"] = "0"
    cmd = [sys.executable, "-m", "thresher.cli.main", "curate", "dedup", str(data), "--out", str(out),
           "--memory", memory, "--cluster", cluster, "--force"]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - t
    output = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise SystemExit(f"scale run failed ({proc.returncode}):\n{output}")
    stats = json.loads((out / "stats.json").read_text())
    return {"rows": n, "wall_s": wall, "peak_rss_gb": peak / 2**30,
            "child_maxrss_gb": stats.get("peak_rss_mb", 0) / 1024, "stats": stats, "output": output.strip()}


# ----------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=3000,
                    help="documents in the planted corpus (0: skip parts 1-3, e.g. with --scale)")
    ap.add_argument("--pairs", type=int, default=1000, help="pairs for the Jaccard error")
    ap.add_argument("--loop-docs", type=int, default=500, help="documents for the slow update loop")
    ap.add_argument("--seeds", type=int, default=5, help="seeds to average F1 over")
    ap.add_argument("--scale", action="store_true", help="also run the end-to-end scale benchmark")
    ap.add_argument("--scale-rows", type=int, default=1_000_000)
    ap.add_argument("--memory", default="4GB", help="--memory for the scale run")
    ap.add_argument("--cluster", default="components", choices=["components", "star"],
                    help="--cluster for the scale run")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "thresher-bench-dedup")
    args = ap.parse_args()
    if args.size > 0:
        compare(args)
    if args.scale:
        scale(args)


def compare(args: argparse.Namespace) -> None:
    """Parts 1-3: throughput, Jaccard error, precision/recall/F1 against datasketch."""
    t = time.perf_counter()
    texts, cluster = build_corpus(args.size)
    norm = [_norm(x) for x in texts]
    truth = truth_pairs(texts, cluster)
    words = np.mean([len(x.split()) for x in norm])
    print(f"corpus: {len(texts):,} docs ({len(set(cluster)):,} originals, mean {words:.0f} words), "
          f"{len(truth):,} true pairs (J >= {THRESHOLD}); built in {time.perf_counter() - t:.1f}s")

    thresher_signatures(norm[:10])          # JIT warm-up (numba caches compiled kernels on disk)
    sig, t_fast = _timed(thresher_signatures, norm)
    _, t_sha1 = _timed(thresher_signatures, norm, "sha1")
    loop_docs = norm[: args.loop_docs]
    _, t_loop = _timed(datasketch_update_loop, loop_docs)
    mins, t_bulk = _timed(datasketch_bulk, norm)
    rate = {"thresher (fast hash)": len(norm) / t_fast, "thresher (sha1 hash)": len(norm) / t_sha1,
            "datasketch MinHash.update loop": len(loop_docs) / t_loop,
            "datasketch MinHash.bulk": len(norm) / t_bulk}
    bulk = rate["datasketch MinHash.bulk"]
    print("\n1. Signature throughput (one thread, from normalised text, num_perm 128, 5-word shingles)")
    print(f"{'method':34} {'docs/s':>12} {'x bulk':>8}")
    for k, v in rate.items():
        print(f"{k:34} {v:12,.0f} {v / bulk:8.1f}")

    # 2. Jaccard estimation error on pairs of known Jaccard
    rng = random.Random(1)
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(cluster):
        groups.setdefault(c, []).append(i)
    pairs = [p for g in groups.values() for p in combinations(g, 2)]
    rng.shuffle(pairs)
    while len(pairs) < args.pairs:   # not enough planted pairs: add random pairs too
        pairs.append(tuple(rng.sample(range(len(norm)), 2)))
    pairs = pairs[: args.pairs]
    sets = {}
    for i, j in pairs:
        for k in (i, j):
            if k not in sets:
                sets[k] = _shingle_set(texts[k])
    true = np.array([true_jaccard(sets[i], sets[j]) for i, j in pairs])
    ours = np.array([(sig[i] == sig[j]).mean() for i, j in pairs])
    theirs = np.array([mins[i].jaccard(mins[j]) for i, j in pairs])
    print(f"\n2. Jaccard estimation error on {len(pairs):,} pairs (true J mean {true.mean():.3f}, "
          f"range {true.min():.2f}-{true.max():.2f})")
    print(f"{'method':34} {'mean |err|':>10} {'bias':>8} {'max |err|':>10}")
    for k, est in (("thresher", ours), ("datasketch", theirs)):
        e = est - true
        print(f"{k:34} {np.abs(e).mean():10.4f} {e.mean():+8.4f} {np.abs(e).max():10.4f}")
    print(f"{'difference (thresher - datasketch)':34} {np.abs(ours - true).mean() - np.abs(theirs - true).mean():+10.4f}")

    # 3. precision / recall / F1
    pred_t, t_tp = _timed(thresher_pipeline, texts)
    pred_s, _ = _timed(thresher_pipeline, texts, hash="sha1")
    pred_d, t_dp = _timed(datasketch_pipeline, mins)
    print(f"\n3. Pair precision / recall / F1 against the planted truth ({len(truth):,} pairs), seed 1")
    print(f"{'pipeline':34} {'precision':>9} {'recall':>8} {'F1':>8} {'pairs':>8} {'seconds':>8}")
    rows = (("thresher (fast hash, from raw text)", pred_t, f"{t_tp:8.2f}"),
            ("thresher (sha1 hash, from raw text)", pred_s, "" if pred_s != pred_d else "  = datasketch's pairs"),
            ("datasketch MinHashLSH", pred_d, f"{t_dp:8.2f} (+ bulk)"))
    for k, pred, note in rows:
        p, r, f = prf(pred, truth)
        print(f"{k:34} {p:9.4f} {r:8.4f} {f:8.4f} {len(pred):8,} {note}")
    # F1 depends on which random permutations were drawn: average over seeds for both
    f_t, f_d = [], []
    for seed in range(1, args.seeds + 1):
        f_t.append(prf(thresher_pipeline(texts, seed=seed), truth)[2])
        f_d.append(prf(datasketch_pipeline(datasketch_bulk(norm, seed=seed)), truth)[2])
    print(f"{'mean F1 over seeds 1-' + str(args.seeds):34} thresher {np.mean(f_t):.4f} (sd {np.std(f_t):.4f}), "
          f"datasketch {np.mean(f_d):.4f} (sd {np.std(f_d):.4f}), difference {np.mean(f_t) - np.mean(f_d):+.4f}")


def scale(args: argparse.Namespace) -> None:
    """Part 4: the end-to-end run on real conversations."""
    s = run_scale(args.scale_rows, args.memory, args.cache, args.cluster)
    st = s["stats"]
    print(f"\n4. Scale: thresher curate dedup on {s['rows']:,} real conversations (evals registry), "
          f"{os.cpu_count()} cores, --memory {args.memory} --cluster {args.cluster}")
    print(f"{'wall time':34} {s['wall_s']:10.1f} s  (target < 600)")
    print(f"{'peak RSS (sampled)':34} {s['peak_rss_gb']:10.2f} GB (target < 6)")
    print(f"{'peak RSS (getrusage in process)':34} {s['child_maxrss_gb']:10.2f} GB")
    print(f"{'rows kept / in':34} {st['rows_out']:,} / {st['rows_in']:,}")
    print(f"{'exact / near duplicates':34} {st['exact_duplicates']:,} / {st['near_duplicates']:,} "
          f"in {st['clusters']:,} clusters (largest {st['largest_cluster']:,})")
    print(f"{'candidate / verified pairs':34} {st['candidate_pairs']:,} / {st['verified_pairs']:,}")
    print(f"{'phase seconds':34} {st['phase_seconds']}")
    cl = pl.read_parquet(args.cache / f"run-{args.scale_rows}" / "clusters.parquet")
    near = cl.filter(pl.col("match") == "near")["jaccard"]
    if len(near):
        print(f"{'near drops with J < threshold':34} {(near < THRESHOLD).mean():10.1%} "
              f"(J to survivor: median {near.median():.2f})")


if __name__ == "__main__":
    main()
