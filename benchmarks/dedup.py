"""Benchmark ``thresher curate dedup`` against datasketch, rensa, datatrove and text-dedup.

Corpus: real English paragraphs from CPython's ``pydoc_data/topics.py`` plus, when the
``evals`` package is installed, prompts from its registry; base documents are kept pairwise
dissimilar (5-shingle Jaccard < 0.3), then near-duplicates are planted (edits of 1-15% of
words, sentence shuffles, boilerplate additions). Everything runs single-threaded
(``POLARS_MAX_THREADS=1``), num_perm 128, 5-word shingles, threshold 0.8; the peers are
described in ``benchmarks/dedup_peers.py`` (``pip install '.[bench]'``; a missing peer is
skipped with a note).

Printed, side by side:

1. signature throughput per core (docs/s) of thresher from text (fast and sha1 hash),
   datasketch (``MinHash.update`` loop, ``MinHash.bulk``), rensa (from text, shingles
   given), datatrove's signature step and text-dedup's ``embed_func``, with the ratio to
   rensa from text;
2. Jaccard estimation error on ``--pairs`` pairs of known Jaccard (thresher, datasketch);
3. pair precision / recall / F1 against the planted truth (pairs inside a planted cluster
   whose true Jaccard is >= the threshold) for every pipeline, F1 averaged over ``--seeds``
   where the tool takes a seed, and thresher's F1 minus the best peer's;
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
import contextlib
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_json, record  # noqa: E402

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


def thresher_pipeline(texts: list[str], hash: str = "fast", seed: int = 1,
                      bands: int | None = None, rows: int | None = None) -> set[tuple[int, int]]:
    """The real engine (exact + MinHash/LSH + verification + components) on the raw texts."""
    from thresher.config import from_dict
    from thresher.curate.dedup.engine import deduplicate
    from thresher.curate.dedup.stage import Config

    df = pl.DataFrame({"id": [str(i) for i in range(len(texts))],
                       "messages": [[{"role": "user", "content": t}] for t in texts]})
    with tempfile.TemporaryDirectory() as tmp:
        lsh = {"bands": bands, "rows": rows} if bands else {}
        cfg = from_dict(Config, {"on": "prompt", "hash": hash, "seed": seed, **lsh})
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
    ap.add_argument("--peers", default="datasketch,rensa,datatrove,text-dedup",
                    help="comma-separated peers to run (skipped with a note when not installed)")
    ap.add_argument("--scale", action="store_true", help="also run the end-to-end scale benchmark")
    ap.add_argument("--scale-rows", type=int, default=1_000_000)
    ap.add_argument("--memory", default="4GB", help="--memory for the scale run")
    ap.add_argument("--cluster", default="components", choices=["components", "star"],
                    help="--cluster for the scale run")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "thresher-bench-dedup")
    ap.add_argument("--json", action="store_true", help="print the records as JSON (tables go to stderr)")
    args = ap.parse_args()
    records: list[dict] = []
    out = sys.stderr if args.json else sys.stdout
    with contextlib.redirect_stdout(out):
        if args.size > 0:
            compare(args, records)
        if args.scale:
            scale(args, records)
    if args.json:
        print_json(records)


def _peer_available(name: str) -> bool:
    import importlib.util

    module = {"datasketch": "datasketch", "rensa": "rensa", "datatrove": "datatrove",
              "text-dedup": "text_dedup"}[name]
    if importlib.util.find_spec(module) is None:
        print(f"{name}: skipped (not installed; pip install '.[bench]')")
        return False
    return True


def throughput(texts: list[str], norm: list[str], args: argparse.Namespace, peers: list[str]) -> dict:
    """Part 1: docs/s of each signature path, one thread."""
    import dedup_peers as P

    thresher_signatures(norm[:10])          # JIT warm-up (numba caches compiled kernels on disk)
    rate: dict[str, float] = {}
    _, t = _timed(thresher_signatures, norm)
    rate["thresher (from text)"] = len(norm) / t
    _, t = _timed(thresher_signatures, norm, "sha1")
    rate["thresher (from text, sha1 hash)"] = len(norm) / t
    if "datasketch" in peers:
        loop_docs = norm[: args.loop_docs]
        _, t = _timed(datasketch_update_loop, loop_docs)
        rate["datasketch MinHash.update loop"] = len(loop_docs) / t
        _, t = _timed(datasketch_bulk, norm)
        rate["datasketch MinHash.bulk"] = len(norm) / t
    if "rensa" in peers:
        P.rensa_from_text(norm[:10])
        _, t = _timed(P.rensa_from_text, norm)
        rate["rensa RMinHash (from text)"] = len(norm) / t
        sh = P.shingle_lists(norm)
        _, t = _timed(P.rensa_from_shingles, sh)
        rate["rensa RMinHash (shingles given)"] = len(norm) / t
    if "datatrove" in peers:
        with tempfile.TemporaryDirectory() as tmp:
            run = P.datatrove_signature_step(texts, Path(tmp))
            _, t = _timed(run)
        rate["datatrove MinhashDedupSignature"] = len(texts) / t
    if "text-dedup" in peers:
        _, t = _timed(P.textdedup_signatures, texts)
        rate["text-dedup embed_func"] = len(texts) / t
    return rate


def compare(args: argparse.Namespace, records: list[dict]) -> None:
    """Parts 1-3: throughput, Jaccard error, precision/recall/F1 against every peer."""
    import dedup_peers as P

    peers = [p.strip() for p in args.peers.split(",") if p.strip() and _peer_available(p.strip())]
    t = time.perf_counter()
    texts, cluster = build_corpus(args.size)
    norm = [_norm(x) for x in texts]
    truth = truth_pairs(texts, cluster)
    words = np.mean([len(x.split()) for x in norm])
    bench = f"dedup/planted-{len(texts)}"
    print(f"corpus: {len(texts):,} docs ({len(set(cluster)):,} originals, mean {words:.0f} words), "
          f"{len(truth):,} true pairs (J >= {THRESHOLD}); built in {time.perf_counter() - t:.1f}s; {machine()}")

    rate = throughput(texts, norm, args, peers)
    ref = rate.get("rensa RMinHash (from text)") or rate.get("datasketch MinHash.bulk")
    ref_name = "rensa from text" if "rensa RMinHash (from text)" in rate else "datasketch bulk"
    print("\n1. Signature throughput (one thread, num_perm 128, 5-word shingles)")
    print(f"{'method':36} {'docs/s':>12} {'x ' + ref_name:>18}")
    for k, v in rate.items():
        print(f"{k:36} {v:12,.0f} {v / ref if ref else float('nan'):18.2f}")
        records.append(record(bench, k, "signatures_per_s_per_core", v, "docs/s", not k.startswith("thresher")))
    if ref:
        records.append(record(bench, "thresher (from text)", f"signatures_per_s_vs_{ref_name}",
                              rate["thresher (from text)"] / ref, "x", False))

    sig = thresher_signatures(norm)
    mins = datasketch_bulk(norm) if "datasketch" in peers else None
    jaccard_error(texts, norm, cluster, sig, mins, args)

    # 3. precision / recall / F1
    pipelines = {"thresher (from raw text)": lambda s: thresher_pipeline(texts, seed=s),
                 "thresher (from raw text, 16x8 bands)": lambda s: thresher_pipeline(texts, seed=s, bands=16, rows=8)}
    if "datasketch" in peers:
        pipelines["datasketch MinHashLSH"] = lambda s: datasketch_pipeline(datasketch_bulk(norm, seed=s))
    if "rensa" in peers:
        sh = P.shingle_lists(norm)
        pipelines["rensa RMinHashLSH"] = lambda s: P.rensa_pipeline(sh, seed=s)
    if "datatrove" in peers:
        pipelines["datatrove MinHash (stages 1-3)"] = lambda s: P.datatrove_pipeline(texts)
    if "text-dedup" in peers:
        pipelines["text-dedup minhash"] = lambda s: P.textdedup_pipeline(texts)
    print(f"\n3. Pair precision / recall / F1 against the planted truth ({len(truth):,} pairs), "
          f"seed 1 (mean F1 over {args.seeds} seeds where the tool takes a seed)")
    print(f"{'pipeline':38} {'precision':>9} {'recall':>8} {'F1':>8} {'mean F1':>8} {'pairs':>8} {'seconds':>8}")
    f1s: dict[str, float] = {}
    for name, fn in pipelines.items():
        pred, secs = _timed(fn, 1)
        p, r, f = prf(pred, truth)
        seeded = name.startswith(("thresher", "datasketch", "rensa"))
        fs = [f] + ([prf(fn(s), truth)[2] for s in range(2, args.seeds + 1)] if seeded else [])
        f1s[name] = float(np.mean(fs))
        print(f"{name:38} {p:9.4f} {r:8.4f} {f:8.4f} {f1s[name]:8.4f} {len(pred):8,} {secs:8.2f}")
        peer = not name.startswith("thresher")
        for metric, value in (("precision", p), ("recall", r), ("f1", f1s[name]), ("seconds", secs)):
            records.append(record(bench, name, metric, value, "s" if metric == "seconds" else "", peer))
    best_peer = max((k for k in f1s if not k.startswith("thresher")), key=f1s.get, default=None)
    for mine in (k for k in f1s if k.startswith("thresher")):
        if best_peer:
            d = f1s[mine] - f1s[best_peer]
            print(f"{mine + ' F1 - ' + best_peer:60} {d:+.4f} (goal: >= -0.01)")
            records.append(record(bench, mine, f"f1_minus_{best_peer}", d, "", False))


def jaccard_error(texts: list[str], norm: list[str], cluster: list[int], sig: np.ndarray, mins: list | None,
                  args: argparse.Namespace) -> None:
    """Part 2: Jaccard estimation error on pairs of known Jaccard."""
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
    ests = {"thresher": np.array([(sig[i] == sig[j]).mean() for i, j in pairs])}
    if mins is not None:
        ests["datasketch"] = np.array([mins[i].jaccard(mins[j]) for i, j in pairs])
    print(f"\n2. Jaccard estimation error on {len(pairs):,} pairs (true J mean {true.mean():.3f}, "
          f"range {true.min():.2f}-{true.max():.2f})")
    print(f"{'method':36} {'mean |err|':>10} {'bias':>8} {'max |err|':>10}")
    for k, est in ests.items():
        e = est - true
        print(f"{k:36} {np.abs(e).mean():10.4f} {e.mean():+8.4f} {np.abs(e).max():10.4f}")


def scale(args: argparse.Namespace, records: list[dict]) -> None:
    """Part 4: the end-to-end run on real conversations."""
    s = run_scale(args.scale_rows, args.memory, args.cache, args.cluster)
    st = s["stats"]
    bench = f"dedup/evals-{s['rows']}"
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
    for metric, value, unit in (("wall_s", s["wall_s"], "s"), ("peak_rss_gb", s["peak_rss_gb"], "GB"),
                                ("rows_per_s", s["rows"] / s["wall_s"], "rows/s")):
        records.append(record(bench, "thresher curate dedup", metric, value, unit, False))
    cl = pl.read_parquet(args.cache / f"run-{args.scale_rows}" / "clusters.parquet")
    near = cl.filter(pl.col("match") == "near")["jaccard"]
    if len(near):
        print(f"{'near drops with J < threshold':34} {(near < THRESHOLD).mean():10.1%} "
              f"(J to survivor: median {near.median():.2f})")


if __name__ == "__main__":
    main()
