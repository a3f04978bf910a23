"""Benchmark the mix stage: N rows in C categories (skewed sizes), equal weights, rank-by.

Prints the time and rows/s of (1) the selection itself (narrow id/category/score columns,
in memory) and (2) the whole stage from a Parquet file (narrow lazy scan, selection,
gathering the conversations of the kept rows, writing kept/dropped/stats).

    python benchmarks/mix.py --rows 10000000 --categories 50
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_json, record  # noqa: E402

from thresher.schema import MESSAGES_DTYPE

os.environ.setdefault("THRESHER_PROGRESS", "0")


def _messages(s: pl.Series) -> pl.Series:
    """Two-turn conversations built through Arrow offsets (``pl.concat_list`` of structs
    is very slow in polars 2.1: about 8 s per million rows)."""
    import pyarrow as pa

    n = s.len()
    turns = pl.DataFrame(
        {
            "k": np.concatenate([np.arange(0, 2 * n, 2), np.arange(1, 2 * n, 2)]),
            "role": ["user"] * n + ["assistant"] * n,
            "content": pl.concat([("question about topic " + s), ("answer number " + s)]),
        }
    ).sort("k")
    structs = turns.select(pl.struct("role", "content")).to_series().to_arrow()
    offsets = pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32))
    return pl.Series("messages", pa.ListArray.from_arrays(offsets, structs))


def _chunk(
    start: int, n: int, edges: np.ndarray, names: list[str], rng: np.random.Generator
) -> pl.DataFrame:
    code = np.searchsorted(edges, rng.random(n), side="right").astype(np.uint32)
    df = pl.DataFrame({"i": np.arange(start, start + n), "code": code, "score_q": rng.random(n)})
    df = df.with_columns(pl.col("i").cast(pl.String).alias("s"))
    return df.select(
        (pl.lit("row-") + pl.col("s")).alias("id"),
        _messages(df["s"]).cast(MESSAGES_DTYPE),
        pl.col("code")
        .replace_strict(list(range(len(names))), names, return_dtype=pl.String)
        .alias("category"),
        pl.lit("bench").alias("source"),
        "score_q",
    )


def write_rows(path: Path, n: int, cats: int, seed: int = 0, chunk: int = 1_000_000) -> None:
    """Write ``n`` rows to Parquet a million at a time (low memory): Zipf-like category
    sizes, uniform scores, short two-turn conversations."""
    import pyarrow.parquet as pq

    weights = 1.0 / np.arange(1, cats + 1)
    edges = (np.cumsum(weights) / weights.sum())[:-1]
    names = [f"cat{i:02d}" for i in range(cats)]
    rng = np.random.default_rng(seed)
    writer = None
    try:
        for start in range(0, n, chunk):
            table = _chunk(start, min(chunk, n - start), edges, names, rng).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--categories", type=int, default=50)
    ap.add_argument("--total", type=int, default=None, help="mix size (default: rows / 10)")
    ap.add_argument("--max-repeats", type=int, default=2)
    ap.add_argument("--skip-stage", action="store_true", help="time the selection only")
    ap.add_argument("--json", action="store_true", help="print the records as JSON (the table goes to stderr)")
    args = ap.parse_args()
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        records = _run(args)
    if args.json:
        print_json(records)


def _run(args: argparse.Namespace) -> list[dict]:
    """Run the benchmark, print the table, return the ``--json`` records."""

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
        "categories": {c: {"weight": share} for c in names[:-1]}
        | {names[-1]: {"weight": 1 - share * (len(names) - 1)}},
    }
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "rows.parquet"
        t = time.perf_counter()
        write_rows(src, args.rows, args.categories)
        gen = time.perf_counter() - t

        # (1) selection on narrow columns in memory
        df = pl.read_parquet(src, columns=["id", "category", "score_q"])
        t0, c0 = time.perf_counter(), time.process_time()
        spec = load_spec(raw, present=set(names))
        narrow = df.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias(sel.ROW),
            sel.category_expr(spec).alias(sel.CAT),
            pl.col("score_q").alias(sel.SCORE),
        ).with_columns(sel.random_keys(df.height, 0))
        ok = sel.eligible(narrow, spec, spec.names)
        plan = make_plan(spec, dict(ok.group_by(sel.CAT).len().iter_rows()))
        chosen = sel.shuffle(sel.select(ok, plan, ranked=True), 0)
        t_select, c_select = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"wrote {args.rows:,} rows x {args.categories} categories in {gen:.1f} s; mix of {chosen.height:,} rows"
        )
        del df, narrow, ok, chosen

        results = [("selection (narrow columns, in memory)", t_select, c_select)]
        if not args.skip_stage:
            t1, c1 = time.perf_counter(), time.process_time()
            result = run([src], Path(tmp) / "mix", Config(spec=raw, rank_by="score_q"), force=True)
            t_stage, c_stage = time.perf_counter() - t1, time.process_time() - c1
            assert result.stats["rows_out"] == total
            results.append(("whole stage (Parquet in, kept/dropped out)", t_stage, c_stage))
            phases = result.stats["mix"]["seconds"]

    print()
    if not args.skip_stage:
        print("stage phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    print(f"{'step':<44} {'rows':>12} {'seconds':>9} {'cpu s':>7} {'rows/s':>14}")
    for name, secs, cpu in results:
        print(f"{name:<44} {args.rows:>12,} {secs:>9.2f} {cpu:>7.2f} {args.rows / secs:>14,.0f}")
    print(
        f"(cpu s: process CPU time over all threads; {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}: wall times on a shared machine are noisy)"
    )
    bench = f"mix/{args.rows}-rows/{args.categories}-categories"
    return [record(bench, f"thresher mix: {name}", "rows_per_s", args.rows / secs, "rows/s", False)
            for name, secs, _cpu in results]


if __name__ == "__main__":
    main()
