"""Benchmark the mix stage: N rows in C categories (skewed sizes), equal weights, rank-by.

Prints the time and rows/s of (1) the selection itself (narrow id/category/score columns,
in memory) and (2) the whole stage from a Parquet file (narrow lazy scan, selection,
gathering the conversations of the kept rows, writing kept/dropped/stats).

    python benchmarks/mix.py --rows 10000000 --categories 50
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

os.environ.setdefault("THRESHER_PROGRESS", "0")


def make_rows(n: int, cats: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, cats + 1)  # Zipf-like category sizes
    code = rng.choice(cats, size=n, p=weights / weights.sum())
    names = [f"cat{i:02d}" for i in range(cats)]
    df = pl.DataFrame({"i": np.arange(n), "code": code.astype(np.uint32), "score_q": rng.random(n)})
    return df.select(
        pl.format("row-{}", "i").alias("id"),
        pl.concat_list(
            pl.struct(pl.lit("user").alias("role"), pl.format("question {} about topic {}", "i", "code").alias("content")),
            pl.struct(pl.lit("assistant").alias("role"), pl.format("answer number {}", "i").alias("content")),
        ).alias("messages"),
        pl.col("code").replace_strict(list(range(cats)), names, return_dtype=pl.String).alias("category"),
        pl.lit("bench").alias("source"),
        "score_q",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--categories", type=int, default=50)
    ap.add_argument("--total", type=int, default=None, help="mix size (default: rows / 10)")
    ap.add_argument("--max-repeats", type=int, default=2)
    ap.add_argument("--skip-stage", action="store_true", help="time the selection only")
    args = ap.parse_args()

    from thresher.curate.mix import select as sel
    from thresher.curate.mix.plan import make_plan
    from thresher.curate.mix.spec import load_spec
    from thresher.curate.mix.stage import Config, run

    total = args.total or args.rows // 10
    names = [f"cat{i:02d}" for i in range(args.categories)]
    share = 1.0 / args.categories
    raw = {
        "total": total,
        "max_repeats": args.max_repeats,
        "categories": {c: {"weight": share} for c in names[:-1]} | {names[-1]: {"weight": 1 - share * (len(names) - 1)}},
    }
    t = time.perf_counter()
    df = make_rows(args.rows, args.categories)
    gen = time.perf_counter() - t

    # (1) selection on narrow columns in memory
    t0 = time.perf_counter()
    spec = load_spec(raw, present=set(names))
    narrow = df.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias(sel.ROW),
        sel.category_expr(spec).alias(sel.CAT),
        pl.col("score_q").alias(sel.SCORE),
    ).with_columns(sel.random_keys(df.height, 0))
    ok = sel.eligible(narrow, spec, spec.names)
    plan = make_plan(spec, dict(ok.group_by(sel.CAT).len().iter_rows()))
    chosen = sel.shuffle(sel.select(ok, plan, ranked=True), 0)
    t_select = time.perf_counter() - t0
    print(f"generated {args.rows:,} rows x {args.categories} categories in {gen:.1f} s; mix of {chosen.height:,} rows")

    results = [("selection (narrow columns, in memory)", t_select)]
    if not args.skip_stage:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "rows.parquet"
            df.write_parquet(src)
            del df, narrow, ok
            t1 = time.perf_counter()
            result = run([src], Path(tmp) / "mix", Config(spec=raw, rank_by="score_q"), force=True)
            t_stage = time.perf_counter() - t1
            assert result.stats["rows_out"] == total
            results.append(("whole stage (Parquet in, kept/dropped out)", t_stage))

    print()
    print(f"{'step':<44} {'rows':>12} {'seconds':>9} {'rows/s':>14}")
    for name, secs in results:
        print(f"{name:<44} {args.rows:>12,} {secs:>9.2f} {args.rows / secs:>14,.0f}")


if __name__ == "__main__":
    main()
