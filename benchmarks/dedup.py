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
   where the tool takes a seed, and thresher's F1 minus the best peer's; thresher runs with
   ``verify: estimate`` (the default) and ``verify: exact``, and the pipeline docs/s of each
   thresher configuration (the cost of exact verification) follows the table;
4. with ``--e2e-rows N``: ``thresher curate dedup`` end to end (a subprocess, both cores) on
   N real conversations of the evals registry (the Parquet file ``benchmarks/scale.py``
   builds), and rensa (``RMinHashLSH``, 16 x 8, greedy, ``dedup_peers.rensa_end_to_end``) on the
   same file: wall time, rows/s, peak RSS (each child's own ``ru_maxrss``) and the ratios.

Usage: ``python benchmarks/dedup.py --size 3000`` (a few minutes), ``--size 0 --e2e-rows 1000000`` for the 1M run.
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


def thresher_pipeline(texts: list[str], hash: str = "fast", seed: int = 1, bands: int | None = None,
                      rows: int | None = None, verify: str = "estimate") -> set[tuple[int, int]]:
    """The real engine (exact + MinHash/LSH + verification + components) on the raw texts;
    ``verify="exact"`` checks candidates by their true shingle-set Jaccard."""
    from thresher.config import from_dict
    from thresher.curate.dedup.engine import deduplicate
    from thresher.curate.dedup.stage import Config

    df = pl.DataFrame({"id": [str(i) for i in range(len(texts))],
                       "messages": [[{"role": "user", "content": t}] for t in texts]})
    with tempfile.TemporaryDirectory() as tmp:
        lsh = {"bands": bands, "rows": rows} if bands else {}
        cfg = from_dict(Config, {"on": "prompt", "hash": hash, "seed": seed, "verify": verify, **lsh})
        res = deduplicate(df, cfg, spill_dir=Path(tmp))
    labels = [i if k else int(d) for i, (k, d) in enumerate(zip(res.keep, res.duplicate_of))]
    return _cluster_pairs(labels)


def datasketch_pipeline(mins: list, params: tuple[int, int] | None = None) -> set[tuple[int, int]]:
    """MinHashLSH (bands x rows ``params``, default: its own choice): insert all, query each,
    verify estimated Jaccard, union-find."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, params=params)
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


# ----------------------------------------------------------------------------- end to end

def run_child(cmd: list[str], log: Path, timeout: float = 1e9) -> tuple[float, float, int]:
    """Run ``cmd`` (output to ``log``, killed after ``timeout`` s); return wall seconds, its own
    peak RSS (GB, from ``os.wait4``'s rusage of that one child) and the exit status."""
    env = {k: v for k, v in os.environ.items() if k not in ("POLARS_MAX_THREADS", "NUMBA_NUM_THREADS")}
    env["THRESHER_PROGRESS"] = "0"
    t = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t > timeout:
                proc.kill()
            time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t, ru.ru_maxrss / 2**20, proc.returncode


def run_end_to_end(rows: int, memory: str, cluster: str, peers: list[str], workdir: Path,
                   peer_timeout: float) -> list[dict]:
    """thresher curate dedup (and rensa, when installed) end to end on ``rows`` evals rows."""
    from scale import corpus  # the cached Parquet file of registry rows, shared with scale.py

    src = corpus(rows)
    n = pl.scan_parquet(src).select(pl.len()).collect().item()
    out = []
    cmd = [sys.executable, "-m", "thresher.cli.main", "curate", "dedup", str(src), "--out",
           str(workdir / "thresher"), "--memory", memory, "--cluster", cluster, "--force"]
    wall, rss, rc = run_child(cmd, workdir / "thresher.log")
    if rc != 0:
        raise SystemExit(f"thresher end-to-end run failed ({rc}):\n{(workdir / 'thresher.log').read_text()}")
    st = json.loads((workdir / "thresher" / "stats.json").read_text())
    out.append({"contender": "thresher curate dedup", "rows": n, "wall_s": wall, "peak_rss_gb": rss,
                "rows_out": st["rows_out"], "detail": f"phases {st['phase_seconds']}"})
    if "rensa" in peers:
        here = Path(__file__).resolve().parent
        cmd = [sys.executable, str(here / "dedup_peers.py"), "rensa-e2e", str(src), str(workdir / "rensa.parquet")]
        wall, rss, rc = run_child(cmd, workdir / "rensa.log", peer_timeout)
        log = (workdir / "rensa.log").read_text()
        if rc != 0:
            why = f"killed after {peer_timeout:.0f} s" if wall > peer_timeout else f"exit {rc}"
            print(f"rensa end to end: did not finish ({why}) {log.strip().splitlines()[-1:]}")
        else:
            st = json.loads(log.strip().splitlines()[-1])
            out.append({"contender": "rensa RMinHashLSH (16x8, greedy)", "rows": n, "wall_s": wall,
                        "peak_rss_gb": rss, "rows_out": st["rows_out"], "detail": ""})
    return out


# ----------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=3000,
                    help="documents in the planted corpus (0: skip parts 1-3, e.g. with --e2e-rows)")
    ap.add_argument("--pairs", type=int, default=1000, help="pairs for the Jaccard error")
    ap.add_argument("--loop-docs", type=int, default=500, help="documents for the slow update loop")
    ap.add_argument("--seeds", type=int, default=5, help="seeds to average F1 over")
    ap.add_argument("--peers", default="datasketch,rensa,datatrove,text-dedup",
                    help="comma-separated peers to run (skipped with a note when not installed)")
    ap.add_argument("--e2e-rows", type=int, default=0,
                    help="also run the dedup end to end on this many evals-registry rows (e.g. 1000000)")
    ap.add_argument("--e2e-peer-timeout", type=float, default=600, help="seconds before a peer's end-to-end run is killed")
    ap.add_argument("--memory", default="4GB", help="--memory for thresher's end-to-end run")
    ap.add_argument("--cluster", default="components", choices=["components", "star"],
                    help="--cluster for thresher's end-to-end run")
    ap.add_argument("--json", action="store_true", help="print the records as JSON (tables go to stderr)")
    args = ap.parse_args()
    records: list[dict] = []
    out = sys.stderr if args.json else sys.stdout
    with contextlib.redirect_stdout(out):
        if args.size > 0:
            compare(args, records)
        if args.e2e_rows:
            end_to_end(args, records)
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
    rmins = None
    if "rensa" in peers:
        from rensa import RMinHash

        rmins = RMinHash.from_token_sets(P.shingle_lists(norm), NUM_PERM, 1)
    jaccard_error(texts, norm, cluster, sig, mins, args, rmins)

    # 3. precision / recall / F1: every verifying pipeline at its default bands and at 16 x 8
    b, r = P.lsh_params()
    dflt, eq = f"{b}x{r}", "16x8"
    pipelines = {f"thresher (default {dflt} bands)": (dflt, lambda s: thresher_pipeline(texts, seed=s)),
                 f"thresher ({eq} bands)": (eq, lambda s: thresher_pipeline(texts, seed=s, bands=16, rows=8)),
                 f"thresher ({eq} bands, sha1 hash)":
                     (eq, lambda s: thresher_pipeline(texts, "sha1", seed=s, bands=16, rows=8)),
                 f"thresher (default {dflt} bands, exact verify)":
                     (dflt, lambda s: thresher_pipeline(texts, seed=s, verify="exact")),
                 f"thresher ({eq} bands, exact verify)":
                     (eq, lambda s: thresher_pipeline(texts, seed=s, bands=16, rows=8, verify="exact"))}
    if "datasketch" in peers:
        pipelines[f"datasketch MinHashLSH (default {dflt} bands)"] = (
            dflt, lambda s: datasketch_pipeline(datasketch_bulk(norm, seed=s)))
        pipelines[f"datasketch MinHashLSH ({eq} bands)"] = (
            eq, lambda s: datasketch_pipeline(datasketch_bulk(norm, seed=s), (16, 8)))
    if "rensa" in peers:
        sh = P.shingle_lists(norm)
        pipelines[f"rensa RMinHashLSH ({eq} bands)"] = (eq, lambda s: P.rensa_pipeline(sh, seed=s))
        pipelines["rensa RMinHashLSH (8x16 bands, its README's)"] = (
            "8x16", lambda s: P.rensa_pipeline(sh, seed=s, bands=8))
    if "datatrove" in peers:
        pipelines[f"datatrove MinHash ({dflt}, no verification)"] = (dflt, lambda s: P.datatrove_pipeline(texts))
    if "text-dedup" in peers:
        pipelines[f"text-dedup minhash ({dflt}, no verification)"] = (dflt, lambda s: P.textdedup_pipeline(texts))
    f1_table(pipelines, truth, args.seeds, bench, records, len(texts))


def f1_table(pipelines: dict, truth: set, seeds: int, bench: str, records: list[dict], docs: int) -> None:
    """Part 3's table, then thresher's mean F1 minus the best peer's at the same bands and overall."""
    print(f"\n3. Pair precision / recall / F1 against the planted truth ({len(truth):,} pairs), "
          f"seed 1 (mean F1 over {seeds} seeds where the tool takes a seed)")
    print(f"{'pipeline':46} {'precision':>9} {'recall':>8} {'F1':>8} {'mean F1':>8} {'pairs':>8} {'seconds':>8}")
    f1s: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for name, (_bands, fn) in pipelines.items():
        pred, secs = _timed(fn, 1)
        seconds[name] = secs
        p, r, f = prf(pred, truth)
        seeded = name.startswith(("thresher", "datasketch", "rensa"))
        fs = [f] + ([prf(fn(s), truth)[2] for s in range(2, seeds + 1)] if seeded else [])
        f1s[name] = float(np.mean(fs))
        print(f"{name:46} {p:9.4f} {r:8.4f} {f:8.4f} {f1s[name]:8.4f} {len(pred):8,} {secs:8.2f}")
        peer = not name.startswith("thresher")
        for metric, value in (("precision", p), ("recall", r), ("f1", f1s[name]), ("seconds", secs)):
            records.append(record(bench, name, metric, value, "s" if metric == "seconds" else "", peer))
    for name in (k for k in f1s if k.startswith("thresher")):
        rate = docs / seconds[name]
        print(f"{name}: whole pipeline {rate:,.0f} docs/s (seed 1, one thread)")
        records.append(record(bench, name, "pipeline_docs_per_s", rate, "docs/s", False))
    peers = [k for k in f1s if not k.startswith("thresher")]
    for mine in (k for k in f1s if k.startswith("thresher")):
        same = [k for k in peers if pipelines[k][0] == pipelines[mine][0]]
        shown = set()
        for label, pool in (("same bands", same), ("any bands", peers)):
            best = max(pool, key=f1s.get, default=None)
            if best is not None and best not in shown:
                shown.add(best)
                d = f1s[mine] - f1s[best]
                print(f"{mine} - {best} ({label}): {d:+.4f} (goal: >= -0.01)")
                records.append(record(bench, mine, f"f1_minus_{best}", d, "", False))


def jaccard_error(texts: list[str], norm: list[str], cluster: list[int], sig: np.ndarray, mins: list | None,
                  args: argparse.Namespace, rmins: list | None = None) -> None:
    """Part 2: Jaccard estimation error on pairs of known Jaccard (the spread of the estimate
    decides F1 near the threshold: an RMSE below sqrt(J(1-J)/num_perm) is a variance-reduced scheme)."""
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
    if rmins is not None:
        ests["rensa"] = np.array([rmins[i].jaccard(rmins[j]) for i, j in pairs])
    print(f"\n2. Jaccard estimation error on {len(pairs):,} pairs (true J mean {true.mean():.3f}, "
          f"range {true.min():.2f}-{true.max():.2f})")
    theory = np.sqrt((true * (1 - true)).mean() / NUM_PERM)
    print(f"{'method':36} {'mean |err|':>10} {'bias':>8} {'max |err|':>10} {'RMSE':>8} (independent "
          f"permutations: {theory:.4f})")
    for k, est in ests.items():
        e = est - true
        print(f"{k:36} {np.abs(e).mean():10.4f} {e.mean():+8.4f} {np.abs(e).max():10.4f} {np.sqrt((e ** 2).mean()):8.4f}")


def end_to_end(args: argparse.Namespace, records: list[dict]) -> None:
    """Part 4: the end-to-end runs on real conversations, side by side."""
    peers = [p.strip() for p in args.peers.split(",") if p.strip() == "rensa" and _peer_available("rensa")]
    with tempfile.TemporaryDirectory() as tmp:
        res = run_end_to_end(args.e2e_rows, args.memory, args.cluster, peers, Path(tmp), args.e2e_peer_timeout)
    bench = f"dedup/evals-{res[0]['rows']}"
    print(f"\n4. End to end on {res[0]['rows']:,} real conversations (evals registry), {machine()}; "
          f"thresher --memory {args.memory} --cluster {args.cluster}; peak RSS = the child's ru_maxrss")
    print(f"{'contender':40} {'wall s':>8} {'rows/s':>9} {'peak RSS GB':>12} {'rows kept':>10}")
    ref = res[0]
    for r in res:
        rate = r["rows"] / r["wall_s"]
        print(f"{r['contender']:40} {r['wall_s']:8.1f} {rate:9,.0f} {r['peak_rss_gb']:12.2f} {r['rows_out']:10,}")
        peer = not r["contender"].startswith("thresher")
        for metric, value, unit in (("wall_s", r["wall_s"], "s"), ("rows_per_s", rate, "rows/s"),
                                    ("peak_rss_gb", r["peak_rss_gb"], "GB"), ("rows_kept", r["rows_out"], "rows")):
            records.append(record(bench, r["contender"], metric, value, unit, peer))
        if peer:
            x = r["wall_s"] / ref["wall_s"]
            m = r["peak_rss_gb"] / ref["peak_rss_gb"]
            print(f"thresher rows/s / {r['contender']}: {x:.2f}x; its peak RSS / thresher's: {m:.2f}x")
            records.append(record(bench, ref["contender"], f"rows_per_s_vs_{r['contender']}", x, "x", False))
            records.append(record(bench, ref["contender"], f"peak_rss_ratio_{r['contender']}_over_thresher",
                                  m, "x", False))
    print(f"thresher phases: {ref['detail']}")


if __name__ == "__main__":
    main()
