"""Memory of a row-wise stage against its input size: peak RSS, rows/s, RSS / input bytes.

Generates N synthetic conversation rows of realistic sizes (most 1-8 KB, one in ten a ~30 KB
reasoning trace; ``--small`` gives the two-turn ~350-byte rows of issue 24's first
measurement) as JSONL under ``$THRESHER_CACHE/bench``, then runs ``thresher curate filter``
and ``thresher curate score -s length`` on it in a subprocess and reports the peak RSS of the
whole process tree (polled every 20 ms with psutil) beside the input size.

``--thresher PATH`` runs another install's executable on the same data (e.g. the main
checkout's ``.venv/bin/thresher``): run the script twice for a before/after table.

``--executor ray`` runs the stage with ``--executor ray`` (a local Ray cluster started by the
driver) and reports the driver's peak RSS (the thresher process alone) beside the largest peak
of any other process of the tree (a Ray worker, the raylet, the GCS) and the whole tree's;
``--no-stream`` reads the input whole (the executors' path before streaming) for a before/after;
``--from-parts`` gives the measured stage a finished stage's folder of parts (the JSONL filtered
once with ``--min-chars 1``, cached) instead of the JSONL: on Ray its workers then read the rows
and the driver none. ``--stages dedup`` runs ``thresher curate dedup`` (its defaults); with
``--dups F`` a fraction F of the rows copies one of the 1,000 rows before it (exact once
normalised, or one word changed), and each run prints its kept rows and a hash of their ids in
order, so a local and a Ray run can be compared.

    python benchmarks/stream.py --rows 100000 --rows 300000
    python benchmarks/stream.py --rows 300000 --small --thresher /work/main/.venv/bin/thresher
    python benchmarks/stream.py --rows 200000 --rows 600000 --small --stages filter --executor ray
    python benchmarks/stream.py --rows 1000000 --small --dups 0.05 --from-parts --stages dedup --executor ray
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, print_json, record  # noqa: E402

WORDS = ("the of and to in is that for it as with was on be by this are from at or an not but have "
         "function return value model data train loss step answer because therefore we check").split()
STAGES = {"filter": ["curate", "filter", "--min-chars", "5"], "score": ["curate", "score", "-s", "length", "--no-cache"],
          "dedup": ["curate", "dedup"], "decontam": ["curate", "decontam", "--against", "mmlu"]}


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


def _copy(rng: random.Random, row: dict) -> dict:
    """A duplicate of ``row`` for dedup: an exact copy once normalised (the prompt upper-cased,
    so its content and id differ), or a near copy (one word of the answer changed)."""
    (user, answer) = (m["content"] for m in row["messages"])
    if rng.random() < 0.5:
        user = user.upper()
    else:
        words = answer.split()
        words[rng.randrange(len(words))] = "changed"
        answer = " ".join(words)
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def corpus(rows: int, small: bool, dups: float = 0.0) -> Path:
    """The cached JSONL file of ``rows`` synthetic rows (written on the first run); with
    ``dups``, that fraction of the rows copies one of the 1,000 rows before it (:func:`_copy`)."""
    from thresher.models import cache_dir

    tag = f"-dup{dups:g}" if dups else ""
    out = cache_dir() / "bench" / f"stream-{'small' if small else 'real'}{tag}-{rows}.jsonl"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(rows)
    recent: list[dict] = []
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for i in range(rows):
            row = _copy(rng, rng.choice(recent)) if dups and recent and rng.random() < dups else _row(rng, i, small)
            if dups:  # a ring of the last 1,000 rows
                recent.append(row) if len(recent) < 1000 else recent.__setitem__(i % 1000, row)
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(out)
    return out


def as_parts(exe: str, data: Path) -> Path:
    """A finished stage folder holding every row of ``data`` as Parquet parts (made once)."""
    out = data.with_name(data.stem + "-parts")
    manifest = out / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("status") == "done":
        return out
    env = {**os.environ, "THRESHER_PROGRESS": "0", "THRESHER_STREAM_MIN_BYTES": "0"}
    subprocess.run([exe, "curate", "filter", str(data), "--out", str(out), "--force", "--min-chars", "1"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return out


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*.parquet")) if path.is_dir() else path.stat().st_size


def rss_of(procs: list) -> list[int]:
    """The RSS of each of ``procs`` (psutil processes; 0 for one that has ended)."""
    import psutil

    out = []
    for p in procs:
        try:
            out.append(p.memory_info().rss)
        except psutil.Error:
            out.append(0)
    return out


def run(exe: str, stage: str, data: Path, executor: str = "local", stream: bool = True) -> tuple[float, dict[str, Any]]:
    """(seconds, peak RSS bytes) of one stage run into a fresh folder: ``tree`` (the whole
    process tree), ``driver`` (the thresher process alone) and ``other`` (the largest of any
    other process in the tree: a Ray worker, raylet or GCS; a tokenizer's helper locally), and
    ``kept`` (:func:`kept_ids`)."""
    import psutil

    out = Path(tempfile.mkdtemp(prefix="thresher-stream-"))
    cmd = [exe, *STAGES[stage][:2], str(data), "--out", str(out / "run"), *STAGES[stage][2:],
           "--executor", executor]
    env = {**os.environ, "THRESHER_PROGRESS": "0"}
    # streamed whatever the input's size (a Parquet input is often under the 64 MiB floor), or read whole
    env["THRESHER_STREAM_MIN_BYTES"] = "0" if stream else str(1 << 60)
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    ps, peak = psutil.Process(proc.pid), {"tree": 0, "driver": 0, "other": 0}
    while proc.poll() is None:
        try:
            driver, *others = rss_of([ps, *ps.children(recursive=True)])
        except psutil.Error:
            continue
        peak = {"tree": max(peak["tree"], driver + sum(others)), "driver": max(peak["driver"], driver),
                "other": max([peak["other"], *others])}
        time.sleep(0.02)
    seconds = time.time() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode:
        shutil.rmtree(out, ignore_errors=True)
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-500:]}")
    peak["kept"] = kept_ids(out / "run")
    shutil.rmtree(out, ignore_errors=True)
    return seconds, peak


def kept_ids(folder: Path) -> str:
    """``rows:hash``: the kept rows and a hash of their ids in order (the same rows kept by
    two runs: the same string)."""
    import hashlib

    import polars as pl

    ids = pl.scan_parquet(folder / "kept.parquet" if (folder / "kept.parquet").is_file()
                          else folder / "kept.parquet" / "*.parquet").select("id").collect()["id"]
    digest = hashlib.sha1("\n".join(ids.to_list()).encode()).hexdigest()[:10]
    return f"{len(ids)}:{digest}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, action="append", help="rows (repeat for several sizes; default 100000)")
    ap.add_argument("--stages", default="filter,score", help="comma-separated: filter, score, dedup, decontam")
    ap.add_argument("--dups", type=float, default=0.0,
                    help="this fraction of rows copies a recent row (exact once normalised, or near): for dedup")
    ap.add_argument("--small", action="store_true", help="two-turn ~350-byte rows (issue 24's first figures)")
    ap.add_argument("--executor", choices=("local", "ray"), default="local",
                    help="ray: a local Ray cluster; the driver's peak RSS is reported on its own")
    ap.add_argument("--no-stream", action="store_true", help="read the input whole (the path before streaming)")
    ap.add_argument("--from-parts", action="store_true",
                    help="read a finished stage's folder of parts (made from the JSONL once) instead")
    beside = Path(sys.executable).with_name("thresher")  # this environment's install
    ap.add_argument("--thresher", default=str(beside) if beside.exists() else shutil.which("thresher") or "thresher",
                    help="the thresher executable to measure (another install for a before/after)")
    ap.add_argument("--json", action="store_true", help="print JSON records instead of the table")
    args = ap.parse_args()
    records, lines = [], []
    mode = f"{args.executor}{'-whole' if args.no_stream else ''}{'-parts' if args.from_parts else ''}"
    for rows in args.rows or [100_000]:
        data = corpus(rows, args.small, args.dups)
        if args.from_parts:
            data = as_parts(args.thresher, data)
        mb = _size(data) / 1e6
        for stage in args.stages.split(","):
            seconds, peak = run(args.thresher, stage, data, args.executor, not args.no_stream)
            bench = f"stream/{stage}/{'small' if args.small else 'real'}{'-dup' if args.dups else ''}/{rows}/{mode}"
            records += [record(bench, args.thresher, "rows_per_s", rows / seconds, "rows/s", False),
                        record(bench, args.thresher, "peak_rss_mb", peak["tree"] / 1e6, "MB", False),
                        record(bench, args.thresher, "driver_peak_rss_mb", peak["driver"] / 1e6, "MB", False),
                        record(bench, args.thresher, "other_peak_rss_mb", peak["other"] / 1e6, "MB", False),
                        record(bench, args.thresher, "rss_vs_input", peak["tree"] / 1e6 / mb, "x", False)]
            lines.append(f"{stage:7s} {mode:14s} {rows:>9,d} {mb:9.1f} {rows / seconds:10,.0f} "
                         f"{peak['tree'] / 1e6:9.0f} {peak['tree'] / 1e6 / mb:8.1f}x {peak['driver'] / 1e6:9.0f} "
                         f"{peak['other'] / 1e6:9.0f}  {peak['kept']}")
    head = [f"# {machine()}", f"# {args.thresher}",
            f"{'stage':7s} {'executor':14s} {'rows':>9s} {'input MB':>9s} {'rows/s':>10s} {'peak MB':>9s} "
            f"{'RSS/in':>9s} {'driver MB':>9s} {'other MB':>9s}  kept:ids"]
    if args.json:
        print("\n".join(head + lines), file=sys.stderr)
        print_json(records)
    else:
        print("\n".join(head + lines))


if __name__ == "__main__":
    main()
