"""Memory of a row-wise stage against its input size: peak RSS, rows/s, RSS / input bytes.

Generates N synthetic conversation rows of realistic sizes (most 1-8 KB, one in ten a ~30 KB
reasoning trace; ``--small`` gives the two-turn ~350-byte rows of issue 24's first
measurement) as JSONL under ``$THRESHER_CACHE/bench``, then runs ``thresher curate filter``
and ``thresher curate score -s length`` on it in a subprocess and reports the peak RSS of the
whole process tree (polled every 20 ms with psutil) beside the input size.

``--thresher PATH`` runs another install's executable on the same data (e.g. the main
checkout's ``.venv/bin/thresher``): run the script twice for a before/after table.

    python benchmarks/stream.py --rows 100000 --rows 300000
    python benchmarks/stream.py --rows 300000 --small --thresher /work/main/.venv/bin/thresher
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, print_json, record  # noqa: E402

WORDS = ("the of and to in is that for it as with was on be by this are from at or an not but have "
         "function return value model data train loss step answer because therefore we check").split()
STAGES = {"filter": ["curate", "filter", "--min-chars", "5"], "score": ["curate", "score", "-s", "length"]}


def _text(rng: random.Random, size: int) -> str:
    out, n = [], 0
    while n < size:
        w = rng.choice(WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out)


def _row(rng: random.Random, i: int, small: bool) -> dict:
    if small:
        return {"messages": [{"role": "user", "content": _text(rng, rng.randint(60, 180))},
                             {"role": "assistant", "content": _text(rng, rng.randint(150, 330))}]}
    answer = rng.randint(700, 7000) if rng.random() < 0.9 else rng.randint(25_000, 35_000)  # reasoning traces
    msgs = [{"role": "user", "content": _text(rng, rng.randint(100, 1000))},
            {"role": "assistant", "content": _text(rng, answer)}]
    if rng.random() < 0.2:
        msgs.insert(0, {"role": "system", "content": _text(rng, 120)})
    return {"messages": msgs, "category": rng.choice(["code", "math", "chat", "reasoning"]), "source": "synthetic"}


def corpus(rows: int, small: bool) -> Path:
    """The cached JSONL file of ``rows`` synthetic rows (written on the first run)."""
    from thresher.models import cache_dir

    out = cache_dir() / "bench" / f"stream-{'small' if small else 'real'}-{rows}.jsonl"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(rows)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for i in range(rows):
            fh.write(json.dumps(_row(rng, i, small), ensure_ascii=False) + "\n")
    tmp.replace(out)
    return out


def _tree_rss(proc) -> int:
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(exe: str, stage: str, data: Path) -> tuple[float, int]:
    """(seconds, peak RSS bytes of the process tree) of one stage run into a fresh folder."""
    import psutil

    out = Path(tempfile.mkdtemp(prefix="thresher-stream-"))
    cmd = [exe, *STAGES[stage][:2], str(data), "--out", str(out / "run"), *STAGES[stage][2:]]
    env = {**os.environ, "THRESHER_PROGRESS": "0"}
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, _tree_rss(ps))
        except psutil.Error:
            pass
        time.sleep(0.02)
    seconds = time.time() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-500:]}")
    return seconds, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, action="append", help="rows (repeat for several sizes; default 100000)")
    ap.add_argument("--stages", default="filter,score", help="comma-separated: filter, score")
    ap.add_argument("--small", action="store_true", help="two-turn ~350-byte rows (issue 24's first figures)")
    beside = Path(sys.executable).with_name("thresher")  # this environment's install
    ap.add_argument("--thresher", default=str(beside) if beside.exists() else shutil.which("thresher") or "thresher",
                    help="the thresher executable to measure (another install for a before/after)")
    ap.add_argument("--json", action="store_true", help="print JSON records instead of the table")
    args = ap.parse_args()
    records, lines = [], []
    for rows in args.rows or [100_000]:
        data = corpus(rows, args.small)
        mb = data.stat().st_size / 1e6
        for stage in args.stages.split(","):
            seconds, peak = run(args.thresher, stage, data)
            bench = f"stream/{stage}/{'small' if args.small else 'real'}/{rows}"
            records += [record(bench, args.thresher, "rows_per_s", rows / seconds, "rows/s", False),
                        record(bench, args.thresher, "peak_rss_mb", peak / 1e6, "MB", False),
                        record(bench, args.thresher, "rss_vs_input", peak / 1e6 / mb, "x", False)]
            lines.append(f"{stage:7s} {rows:>9,d} {mb:9.1f} {rows / seconds:10,.0f} {peak / 1e6:9.0f} "
                         f"{peak / 1e6 / mb:8.1f}x")
    head = [f"# {machine()}", f"# {args.thresher}",
            f"{'stage':7s} {'rows':>9s} {'input MB':>9s} {'rows/s':>10s} {'peak MB':>9s} {'RSS/in':>9s}"]
    if args.json:
        print("\n".join(head + lines), file=sys.stderr)
        print_json(records)
    else:
        print("\n".join(head + lines))


if __name__ == "__main__":
    main()
