"""Benchmark the decontam stage: N rows of real English prose against MMLU (+ HumanEval).

Rows are built from sentences of CPython's pydoc topics (a prompt of 1-3 sentences, a
response of 2-5); every 10,000th row has a lightly reformatted MMLU question planted in
its prompt. Prints index and scan times, rows/s and how many planted rows were caught.

    python benchmarks/decontam.py --rows 1000000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_json, record  # noqa: E402

os.environ.setdefault("THRESHER_PROGRESS", "0")


def sentences() -> list[str]:
    from pydoc_data.topics import topics

    out = []
    for text in topics.values():
        for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
            if 6 <= len(s.split()) <= 60:
                out.append(s)
    return out


def _messages(user: pl.Series, assistant: pl.Series) -> pl.Series:
    """Two-turn conversations through Arrow offsets (fast for millions of rows)."""
    import pyarrow as pa

    from thresher.schema import MESSAGES_DTYPE

    n = user.len()
    turns = pl.DataFrame(
        {
            "k": np.concatenate([np.arange(0, 2 * n, 2), np.arange(1, 2 * n, 2)]),
            "role": ["user"] * n + ["assistant"] * n,
            "content": pl.concat([user, assistant]),
        }
    ).sort("k")
    structs = turns.select(pl.struct("role", "content")).to_series().to_arrow()
    offsets = pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32))
    return pl.Series("messages", pa.ListArray.from_arrays(offsets, structs)).cast(MESSAGES_DTYPE)


def make_rows(n: int, seed: int = 0, plant_every: int = 10_000) -> tuple[pl.DataFrame, int]:
    from thresher.curate.decontam.benchmarks import load_mmlu

    rng = np.random.default_rng(seed)
    pool = pl.Series(sentences())

    def text(k_min: int, k_max: int) -> pl.Series:
        k = rng.integers(k_min, k_max + 1, n)
        parts = [pool[rng.integers(0, pool.len(), n)] for _ in range(k_max)]
        frame = pl.DataFrame({f"p{j}": parts[j] for j in range(k_max)}).with_columns(
            pl.Series("k", k)
        )
        return frame.select(
            pl.concat_str(
                [pl.when(pl.col("k") > j).then(pl.col(f"p{j}")) for j in range(k_max)],
                separator=" ",
                ignore_nulls=True,
            )
        ).to_series()

    user, assistant = text(1, 3), text(2, 5)
    planted = np.arange(0, n, plant_every)
    mmlu = load_mmlu()
    long_q = mmlu.filter(pl.col("text").str.split(" ").list.len() >= 40)["text"]
    questions = long_q[rng.integers(0, long_q.len(), len(planted))]
    reformatted = ("Q:  " + questions.str.to_uppercase().str.replace_all(r"\n", " | ")).to_list()
    user = user.scatter(planted, reformatted)
    df = pl.DataFrame({"id": [f"r{i}" for i in range(n)]}).with_columns(
        _messages(user, assistant),
        pl.lit(None, dtype=pl.String).alias("category"),
        pl.lit("bench").alias("source"),
    )
    return df, len(planted)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--against", nargs="+", default=["mmlu", "humaneval"])
    ap.add_argument("-n", type=int, default=13)
    ap.add_argument("--json", action="store_true", help="print the records as JSON (the table goes to stderr)")
    args = ap.parse_args()
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        records = _run(args)
    if args.json:
        print_json(records)


def _run(args: argparse.Namespace) -> list[dict]:
    """Run the benchmark, print the table, return the ``--json`` records."""

    from thresher.curate.decontam.stage import Config, run

    t = time.perf_counter()
    df, planted = make_rows(args.rows)
    words = df.select(
        pl.col("messages")
        .list.eval(pl.element().struct.field("content").str.split(" ").list.len())
        .list.sum()
        .sum()
    ).item()
    gen = time.perf_counter() - t
    print(
        f"built {args.rows:,} rows ({words:,} words, {planted} planted MMLU questions) in {gen:.1f} s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "rows.parquet"
        df.write_parquet(src)
        del df
        t0, c0 = time.perf_counter(), time.process_time()
        result = run(
            [src], Path(tmp) / "decontam", Config(against=tuple(args.against), n=args.n), force=True
        )
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        dropped = pl.read_parquet(Path(tmp) / "decontam" / "dropped.parquet")
    st = result.stats["decontam"]
    caught = dropped.filter(pl.col("id").str.slice(1).cast(pl.Int64) % 10_000 == 0).height
    print()
    print(f"{'step':<36} {'seconds':>9} {'rows/s':>12}")
    print(f"{'index (' + '+'.join(args.against) + ')':<36} {st['index_seconds']:>9.2f} {'':>12}")
    print(f"{'scan':<36} {st['scan_seconds']:>9.2f} {args.rows / st['scan_seconds']:>12,.0f}")
    print(
        f"{'whole stage (read, index, scan, write)':<36} {total:>9.2f} {args.rows / total:>12,.0f}"
    )
    print(
        f"whole stage CPU time (all threads): {cpu:.1f} s; {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} (wall times on a shared machine are noisy)"
    )
    print()
    print(
        f"n-grams indexed: {st['ngrams_indexed']:,}; rows dropped: {dropped.height:,}; "
        f"planted caught: {caught} of {planted}; other rows dropped: {dropped.height - caught}"
    )
    bench = f"decontam/{args.rows}-rows/{'+'.join(args.against)}"
    return [record(bench, "thresher curate decontam", "rows_per_s", args.rows / total, "rows/s", False),
            record(bench, "thresher curate decontam", "scan_rows_per_s", args.rows / st["scan_seconds"], "rows/s", False),
            record(bench, "thresher curate decontam", "planted_caught", caught / max(planted, 1), "", False)]


if __name__ == "__main__":
    main()
