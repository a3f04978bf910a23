"""Train's tokenisation: in memory (every example's tokens in Python lists) vs the token cache.

N synthetic short chats (system, user, assistant; every third row a second exchange) are
linted and tokenised with SmolLM2's real tokenizer and chat template (the test tokenizer
folder of ``tests/train/fetch_tokenizers.py``), then packed (first-fit-decreasing, lengths
only). Contenders, each in its own subprocess so its peak RSS (``ru_maxrss``) is its own:

- ``in memory``: :func:`thresher.train.data.lint_rows` (what train did before the cache);
- ``cache (cold)``: :func:`thresher.train.data.token_cache.cached_lint` into an empty folder
  (tokens appended to memory-mapped files batch by batch);
- ``cache (reused)``: the same call again, as a restart does (no tokenisation).

Printed per row count: seconds, peak RSS, its growth while tokenising and packing (over the
RSS with the rows read from Parquet and the tokenizer loaded), tokens, and the ratios to
``in memory``.

Usage: ``python benchmarks/token_cache.py`` (20,000 rows), ``--rows 20000,100000``,
``--answer-scale 10`` (answers ten times longer: the tokens outweigh the per-row overhead), ``--json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("THRESHER_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORDS = ("the cat sat on a mat while dogs ran over green hills and blue rivers under bright skies "
         "every morning before small birds sang quiet songs about numbers proofs code and tea").split()
KW = {"max_length": 4096, "train_on": "all", "overlong": "drop", "allow_special_in_content": False,
      "train_reasoning": True, "max_reasoning_tokens": 0}


def make_rows(n: int, seed: int = 0, scale: int = 1) -> list[dict]:
    """``n`` short chats (about 80 tokens each; answers ``scale`` times longer)."""
    rng = random.Random(seed)

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choices(WORDS, k=rng.randint(lo, hi)))

    rows = []
    for i in range(n):
        msgs = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": text(5, 20)},
                {"role": "assistant", "content": text(10 * scale, 60 * scale)}]
        if i % 3 == 0:
            msgs += [{"role": "user", "content": text(3, 10)}, {"role": "assistant", "content": text(5, 30)}]
        rows.append({"id": f"row{i}", "messages": msgs})
    return rows


def _rss_mb() -> float:
    """This process's current resident set (MB)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(mode: str, folder: str) -> None:
    """One contender: tokenise and pack the rows of ``folder/rows.parquet``; print seconds,
    peak RSS, its growth over the RSS before tokenising (MB) and tokens as JSON."""
    import gc
    import resource

    import polars as pl

    from tests.train.fetch_tokenizers import ensure
    from thresher.train.data import lint_rows, load_tokenizer, pack_examples
    from thresher.train.data.token_cache import cached_lint

    tok = load_tokenizer(str(ensure()["smollm2"]))
    df = pl.read_parquet(Path(folder) / "rows.parquet")
    gc.collect()
    before = _rss_mb()
    t0 = time.perf_counter()
    if mode == "memory":
        report = lint_rows(tok, df, **KW)
    else:
        report, _ = cached_lint(tok, df, Path(folder) / "cache", **KW)
    bins = pack_examples([len(e) for e in report.examples], KW["max_length"])
    units = [[report.examples[i] for i in b] for b in bins]
    seconds = time.perf_counter() - t0
    tokens = sum(len(e) for u in units for e in u)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "growth_mb": peak - before, "tokens": tokens}))


def run_child(mode: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--dir", str(folder)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="20000", help="comma-separated row counts")
    ap.add_argument("--answer-scale", type=int, default=1, help="answers this many times longer")
    ap.add_argument("--json", action="store_true", help="print JSON records (the table goes to stderr)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.dir)
    from benchmarks._common import machine, print_json, record

    out = sys.stderr if args.json else sys.stdout
    print(f"# machine: {machine()}", file=out)
    print(f"{'rows':>8} {'contender':<15} {'seconds':>8} {'peak RSS MB':>12} {'growth MB':>10} "
          f"{'tokens':>11} {'time x':>7} {'growth x':>8}", file=out)
    records = []
    for n in [int(x) for x in args.rows.split(",")]:
        import polars as pl

        folder = Path(tempfile.mkdtemp(prefix="thresher-tokcache-"))
        try:
            pl.DataFrame(make_rows(n, scale=args.answer_scale)).write_parquet(folder / "rows.parquet")
            res = {name: run_child(mode, folder) for name, mode in
                   (("in memory", "memory"), ("cache (cold)", "cache"), ("cache (reused)", "cache"))}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        base = res["in memory"]
        for name, r in res.items():
            tx, rx = r["seconds"] / base["seconds"], r["growth_mb"] / max(base["growth_mb"], 1e-9)
            print(f"{n:>8} {name:<15} {r['seconds']:>8.2f} {r['peak_rss_mb']:>12.0f} {r['growth_mb']:>10.0f} "
                  f"{r['tokens']:>11,} {tx:>7.2f} {rx:>8.2f}", file=out)
            bench = f"train/token_cache/{n}_rows_x{args.answer_scale}"
            records += [record(bench, name, "seconds", r["seconds"], "s", False),
                        record(bench, name, "peak_rss_mb", r["peak_rss_mb"], "MB", name == "in memory"),
                        record(bench, name, "rss_growth_mb", r["growth_mb"], "MB", name == "in memory")]
            if name != "in memory":
                records.append(record(bench, name, "rss_growth_vs_in_memory", rx, "x", False))
    if args.json:
        print_json(records)


if __name__ == "__main__":
    main()
