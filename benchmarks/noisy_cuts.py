"""Benchmark: which score cuts of the filter-noisy recipe catch answers to another question
(``mismatch``) and answers cut off mid-sentence (``truncated``) at the lowest loss of good rows.

On the noisy benchmark's dev split (``benchmarks/noisy.py``; several seeds, each a fresh draw
of planted rows from the same dev templates: the eval split is never looked at), the recipe
runs once per seed (score cache shared, so a second seed scores only its new rows). Every
row that reaches the recipe's score-cut filter keeps its scores, normalised per category as
that filter does (``normalize: robust``). A candidate is a set of cuts ``column < limit``
replacing that filter's ``min_scores``; the rows every other stage dropped stay dropped.
Printed per candidate, averaged over the seeds: recall of mismatch and truncated, the least
recall of the other ordinary kinds, and the share of good rows kept (mean and worst seed).

Candidates: the cosine alone (``score_relevance_rz``), the gain alone, their mean, minimum
and a weighted sum (what ``combine`` in the filter makes), the embedder margin (the answer's
cosine to its own question less its best cosine to another question of the set), and for
cut-off answers the raw end-of-turn log-probability (``score_ending``) against the same
normalised per category (``score_ending_rz``).

Usage: ``python benchmarks/noisy_cuts.py [--seeds 0,1,2,3] [--work DIR]`` (a few minutes per
seed on 2 cores for the first run; seconds with the score cache in DIR).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run_seed(seed: int, split: str, recipe: Path, work: Path) -> dict:
    """The recipe on one planted set: the scored rows at the score-cut filter (normalised,
    with kind), and the ids every other stage dropped."""
    import polars as pl
    from noisy import build, run_thresher

    from thresher.curate.filter.rules import normalize

    rows = build(seed, split)
    folder = work / f"{split}-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    run_thresher(rows, recipe, folder, work / "score-cache")
    stages = sorted(p for p in (folder / "run").iterdir() if p.is_dir() and p.name[:2].isdigit())
    at = next(i for i, p in enumerate(stages) if p.name.endswith("-score")) + 1  # the score-cut filter
    df = pl.read_parquet(stages[at - 1] / "kept.parquet")
    for col in [c for c in df.columns if c.startswith("score_")]:
        df = df.with_columns(normalize(df, col, "robust"))
    other = set()
    for p in stages[:at] + stages[at + 1:]:
        if (p / "dropped.parquet").exists():
            other |= set(pl.read_parquet(p / "dropped.parquet")["id"].to_list())
    kind = {r["id"]: r["kind"] for r in rows}
    sig = {c: df[c].to_numpy() for c in df.columns if c.startswith("score_")}
    sig["margin"] = margin(df)
    return {"rows": rows, "ids": np.array(df["id"].to_list()), "kind": np.array([kind[i] for i in df["id"]]),
            "sig": sig, "other": other}


def margin(df) -> np.ndarray:
    """Cosine of the answer to its own question less its best cosine to another question."""
    from thresher.embed import load_embedder

    q = [m[0]["content"] for m in df["messages"].to_list()]
    a = [m[-1]["content"] for m in df["messages"].to_list()]
    texts = list(dict.fromkeys(q + a))
    at = {t: i for i, t in enumerate(texts)}
    emb = load_embedder(device="cpu", batch_size=64).encode(texts)
    qe, ae = emb[[at[t] for t in q]], emb[[at[t] for t in a]]
    qid = np.array([at[t] for t in q])
    others = np.where(qid[None, :] == qid[:, None], -9.0, ae @ qe.T)
    return (qe * ae).sum(1) - others.max(1)


def derived(sig: dict) -> dict:
    """The combined candidates of one seed's signals."""
    r, g = sig["score_relevance_rz"], sig["score_gain_rz"]
    return {"mean(relevance_rz, gain_rz)": (r + g) / 2, "min(relevance_rz, gain_rz)": np.minimum(r, g),
            "0.6 relevance_rz + 0.4 gain_rz": 0.6 * r + 0.4 * g}


def evaluate(seeds: list[dict], cuts: list[tuple[str, float]]) -> dict:
    """Recall per kind and good rows kept, averaged over seeds, with these cuts."""
    from noisy import ORDINARY, score

    recalls, kept = [], []
    for s in seeds:
        sig = {**s["sig"], **derived(s["sig"])}
        drop = np.zeros(len(s["ids"]), bool)
        for col, limit in cuts:
            drop |= sig[col] < limit
        res = score(s["rows"], s["other"] | set(s["ids"][drop]))
        recalls.append(res["recall"])
        kept.append(res["good_kept"])
    mean = {k: float(np.mean([r[k] for r in recalls])) for k in recalls[0]}
    others = min(v for k, v in mean.items() if k in ORDINARY and k not in ("mismatch", "truncated"))
    return {"mismatch": mean["mismatch"], "truncated": mean["truncated"], "others_min": others,
            "good_kept": float(np.mean(kept)), "good_kept_worst": float(np.min(kept))}


CANDIDATES: dict[str, list[tuple[str, float]]] = {
    "relevance_rz -1.8, ending -24 (before)": [("score_relevance_rz", -1.8), ("score_ending", -24)],
    "relevance_rz -1.8, ending_rz -5.5": [("score_relevance_rz", -1.8), ("score_ending_rz", -5.5)],
    "gain_rz -1.8, ending_rz -5.5": [("score_gain_rz", -1.8), ("score_ending_rz", -5.5)],
    "margin -0.6, ending_rz -5.5": [("margin", -0.6), ("score_ending_rz", -5.5)],
    "min -2.0, ending_rz -5.5": [("min(relevance_rz, gain_rz)", -2.0), ("score_ending_rz", -5.5)],
    "0.6r+0.4g -1.5, ending_rz -5.5": [("0.6 relevance_rz + 0.4 gain_rz", -1.5), ("score_ending_rz", -5.5)],
    "mean -1.55, ending_rz -5.5": [("mean(relevance_rz, gain_rz)", -1.55), ("score_ending_rz", -5.5)],
    "mean -1.5, ending_rz -5.5 (recipe)": [("mean(relevance_rz, gain_rz)", -1.5), ("score_ending_rz", -5.5)],
    "mean -1.45, ending_rz -5.5": [("mean(relevance_rz, gain_rz)", -1.45), ("score_ending_rz", -5.5)],
    "mean -1.5, ending -20": [("mean(relevance_rz, gain_rz)", -1.5), ("score_ending", -20)],
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--split", choices=("dev",), default="dev", help="tuning happens on dev only")
    ap.add_argument("--recipe", type=Path, default=Path("recipes/filter-noisy.yaml"))
    ap.add_argument("--work", type=Path, default=Path("runs/noisy-cuts"))
    ap.add_argument("--json", type=Path, help="also write the table as JSON")
    args = ap.parse_args(argv)
    seeds = [run_seed(int(s), args.split, args.recipe, args.work) for s in args.seeds.split(",")]
    table = {name: evaluate(seeds, cuts) for name, cuts in CANDIDATES.items()}
    planted = sum(r["kind"] == "mismatch" for s in seeds for r in s["rows"])
    print(f"{args.split} split, seeds {args.seeds} ({planted} planted mismatches in all); recall and good rows "
          "kept averaged over the seeds, worst seed's good rows kept")
    print(f"{'cuts':42s} {'mismatch':>8s} {'truncated':>9s} {'others':>6s} {'good kept':>9s} {'worst':>6s}")
    for name, r in table.items():
        print(f"{name:42s} {r['mismatch']:8.3f} {r['truncated']:9.3f} {r['others_min']:6.3f} "
              f"{r['good_kept']:9.4f} {r['good_kept_worst']:6.4f}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
