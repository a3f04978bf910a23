"""The driver's peak RSS of a streaming mix on Ray beside the local streaming mix (issue 24).

Writes N small synthetic rows (two short turns, eight categories, a ``score_q``, 9-character
ids) as a folder of canonical Parquet parts (100k rows each) under
``$THRESHER_CACHE/bench/mix-ray-N.parquet``, then runs ``thresher curate mix`` on it, streamed
(``THRESHER_STREAM_MIN_BYTES=0``), with a quality-first spec that takes about half of the
rows (one category upsampled), once locally and once with ``--executor ray`` (a local Ray
cluster the driver starts). Reports the peak RSS of the thresher process alone (the driver;
polled every 20 ms with psutil), and, on Ray, the largest of any other process of the tree
(a worker, the raylet, the GCS), and the kept rows with a hash of their ids in order.

    python benchmarks/mix_ray.py --rows 200000 --rows 2000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, print_json, record  # noqa: E402
from stream import kept_ids, rss_of  # noqa: E402

CATEGORIES = ["code", "math", "chat", "reasoning", "writing", "science", "law", "misc"]
SPEC = {"max_repeats": 2, "on_shortfall": "keep",
        "categories": {"code": {"weight": 0.3}, "math": {"weight": 0.2}, "chat": {"weight": 0.2},
                       "reasoning": {"weight": 0.2}, "misc": {"weight": 0.1}}}
PART_ROWS = 100_000


def corpus(rows: int) -> Path:
    """The cached folder of ``rows`` synthetic rows (written on the first run)."""
    import numpy as np
    import polars as pl

    from thresher.io import parts
    from thresher.models import cache_dir
    from thresher.schema import MESSAGES_DTYPE

    out = cache_dir() / "bench" / f"mix-ray-{rows}.parquet"
    if parts.is_dataset(out):
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(rows)
    for p, lo in enumerate(range(0, rows, PART_ROWS)):
        n = min(PART_ROWS, rows - lo)
        i = pl.int_range(lo, lo + n, eager=True)
        df = pl.DataFrame({"id": "r" + i.cast(pl.String).str.zfill(8)}).with_columns(
            pl.concat_list(pl.struct(role=pl.lit("user"), content=pl.format("question {} about things", i)),
                           pl.struct(role=pl.lit("assistant"), content=pl.format("the answer is {}", i)))
            .cast(MESSAGES_DTYPE).alias("messages"),
            pl.Series("category", rng.choice(CATEGORIES, n)), pl.lit("synthetic").alias("source"),
            pl.Series("score_q", rng.integers(0, 1000, n) / 1000))  # ties: 1,000 distinct scores
        parts.write_part(df, tmp, p)
    tmp.replace(out)
    return out


def run(exe: str, data: Path, executor: str) -> tuple[float, dict[str, int], dict]:
    """(seconds, peak RSS of the ``driver`` and of the largest ``other`` process, stats) of a mix."""
    import psutil

    tmp = Path(tempfile.mkdtemp(prefix="thresher-mix-ray-"))
    spec = tmp / "spec.json"
    spec.write_text(json.dumps(SPEC))
    cmd = [exe, "curate", "mix", str(data), "--out", str(tmp / "run"), "--spec", str(spec), "--rank-by", "score_q",
           "--executor", executor]
    env = {**os.environ, "THRESHER_PROGRESS": "0", "THRESHER_STREAM_MIN_BYTES": "0"}
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    ps, peak = psutil.Process(proc.pid), {"driver": 0, "other": 0}
    while proc.poll() is None:
        try:
            driver, *others = rss_of([ps, *ps.children(recursive=True)])
        except psutil.Error:
            continue
        peak = {"driver": max(peak["driver"], driver), "other": max([peak["other"], *others])}
        time.sleep(0.02)
    seconds = time.time() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-800:]}")
    stats = json.loads((tmp / "run" / "stats.json").read_text())
    stats["kept_ids"] = kept_ids(tmp / "run")
    shutil.rmtree(tmp, ignore_errors=True)
    return seconds, peak, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, action="append", help="rows (repeat for several sizes; default 200000)")
    ap.add_argument("--executors", default="local,ray", help="comma-separated: local, ray")
    beside = Path(sys.executable).with_name("thresher")
    ap.add_argument("--thresher", default=str(beside) if beside.exists() else shutil.which("thresher") or "thresher")
    ap.add_argument("--json", action="store_true", help="print JSON records instead of the table")
    args = ap.parse_args()
    records, lines = [], []
    for rows in args.rows or [200_000]:
        data = corpus(rows)
        for executor in args.executors.split(","):
            seconds, peak, stats = run(args.thresher, data, executor)
            bench = f"mix/streamed/{rows}/{executor}"
            records += [record(bench, args.thresher, "rows_per_s", rows / seconds, "rows/s", False),
                        record(bench, args.thresher, "driver_peak_rss_mb", peak["driver"] / 1e6, "MB", False),
                        record(bench, args.thresher, "other_peak_rss_mb", peak["other"] / 1e6, "MB", False)]
            lines.append(f"{executor:8s} {rows:>10,d} {stats['rows_out']:>10,d} {seconds:8.1f} "
                         f"{peak['driver'] / 1e6:10.0f} {peak['other'] / 1e6:9.0f}  {stats['kept_ids']}")
    head = [f"# {machine()}", f"# {args.thresher}",
            f"{'executor':8s} {'rows':>10s} {'kept':>10s} {'seconds':>8s} {'driver MB':>10s} {'other MB':>9s}  kept:ids (in order)"]
    if args.json:
        print("\n".join(head + lines), file=sys.stderr)
        print_json(records)
    else:
        print("\n".join(head + lines))


if __name__ == "__main__":
    main()
