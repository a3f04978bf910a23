"""Bytes per row the streaming executor holds in its projections until ``finalize``.

The streaming executor (:mod:`thresher.executors.stream`) keeps, for every row of a stage's
input, a projection of it (row number, ``category``, the drop columns, the stage's
``finalize_columns``) in memory until ``finalize``. This script generates N rows (two short
turns, a ``category`` of 8 values, a ``score_q`` column) as Parquet, runs ``filter`` (the
heuristics plus a robust z-score cut, so both projections are non-empty) and ``score -s
length`` on them in this process, streamed in parts (``--stages heuristics``: the filter's
heuristics alone, a stage that streams in one pass), and reports what the parts' projections
hold when ``finalize`` starts, per row, kept and dropped, and by column: polars
``estimated_size()`` and the Arrow buffers behind the columns (``estimated_size()`` counts a
string column's characters but not its 16-byte views, so it under-counts short strings,
e.g. 6.6 bytes a row for a category of 4-12 characters held in 16; the Arrow figure is what
the frames occupy). ``--input-drop-columns`` gives the input null ``drop_stage``,
``drop_code`` and ``drop_reason`` columns (an input that is, or was built from, a
``dropped.parquet``), which the kept rows then carry.

    python benchmarks/projection_bytes.py --rows 200000
    python benchmarks/projection_bytes.py --rows 200000 --input-drop-columns --stages filter
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_json, record  # noqa: E402

WORDS = "the of and to in is that for it as with was on be by this are from at or an not but".split()
CATEGORIES = ["math", "code", "chat", "science", "writing", "reasoning", "safety", "multilingual"]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def make_input(path: Path, n: int, seed: int = 0, drop_columns: bool = False) -> Path:
    """N rows: two short turns (one in ten too short for the filter), a category, a score;
    with ``drop_columns``, null drop columns too."""
    import polars as pl

    from thresher.schema import DROP_COLUMNS

    rng = random.Random(seed)
    rows = [{"id": f"row-{i:08d}",
             "messages": [{"role": "user", "content": _text(rng, rng.randint(3, 20))},
                          {"role": "assistant", "content": "ok" if rng.random() < 0.1 else _text(rng, rng.randint(5, 40))}],
             "category": rng.choice(CATEGORIES), "score_q": rng.random()} for i in range(n)]
    df = pl.DataFrame(rows)
    if drop_columns:
        df = df.with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in DROP_COLUMNS])
    df.write_parquet(path)
    return path


def arrow_bytes(column: Any) -> int:
    """The bytes of the Arrow buffers behind a polars Series (views, data, validity)."""
    import polars as pl

    return int(column.to_arrow(compat_level=pl.CompatLevel.newest()).nbytes)


def _sizes(frames: list[Any]) -> dict[str, Any]:
    """Per column, ``(estimated_size(), Arrow bytes)`` summed over a list of part projections."""
    cols: dict[str, list[int]] = {}
    for f in frames:
        for name in f.columns:
            got = cols.setdefault(name, [0, 0])
            got[0] += f[name].estimated_size()
            got[1] += arrow_bytes(f[name])
    dtypes = {name: str(f.schema[name]) for f in frames for name in f.columns}
    return {"rows": sum(f.height for f in frames), "estimated": sum(c[0] for c in cols.values()),
            "arrow": sum(c[1] for c in cols.values()), "columns": cols, "dtypes": dtypes}


def measure(stage: str, src: Path, out: Path) -> dict[str, Any]:
    """Run ``stage`` streamed on ``src``; what its projections held when ``finalize`` began."""
    import thresher.executors.stream as stream

    seen: dict[str, Any] = {}
    original = stream.finalize_parts

    def spy(impl, context, done):
        seen["kept"] = _sizes([p.kept for p in done])
        seen["dropped"] = _sizes([p.dropped for p in done])
        seen["rows_in"] = sum(p.rows_in for p in done)
        return original(impl, context, done)

    stream.finalize_parts = spy
    try:
        if stage == "filter":
            from thresher.curate.filter.stage import Config, run

            run([src], out, Config(min_chars=12, normalize="robust", min_scores={"score_q_rz": -1.0}), force=True)
        elif stage == "heuristics":
            from thresher.curate.filter.stage import Config, run

            run([src], out, Config(min_chars=12), force=True)
        else:
            from thresher.curate.score.stage import Config, run

            run([src], out, Config(scorers=("length",)), force=True)
    finally:
        stream.finalize_parts = original
    return seen


def _report(stage: str, seen: dict[str, Any]) -> list[dict[str, Any]]:
    """Print the table of one stage; its records (bytes per row, both measures)."""
    n, kept, dropped = seen["rows_in"], seen["kept"], seen["dropped"]
    print(f"{stage}: {n:,} rows in, {kept['rows']:,} kept, {dropped['rows']:,} dropped; bytes per input row "
          f"held: {(kept['estimated'] + dropped['estimated']) / n:.1f} (estimated_size), "
          f"{(kept['arrow'] + dropped['arrow']) / n:.1f} (Arrow)", file=sys.stderr)
    for side, s in (("kept", kept), ("dropped", dropped)):
        rows = max(1, s["rows"])
        print(f"  {side}, per {side} row: {s['estimated'] / rows:.1f} estimated_size, {s['arrow'] / rows:.1f} Arrow",
              file=sys.stderr)
        for name, (est, arrow) in s["columns"].items():
            print(f"    {name:<18} {s['dtypes'][name]:<12} {est / rows:6.2f} {arrow / rows:6.2f}", file=sys.stderr)
    bench = f"projection/{stage}/{n}"
    out = []
    for measure in ("estimated", "arrow"):
        out += [record(bench, "thresher", f"bytes_per_row_{measure}", (kept[measure] + dropped[measure]) / n, "bytes", False),
                record(bench, "thresher", f"kept_bytes_per_kept_row_{measure}", kept[measure] / max(1, kept["rows"]),
                       "bytes", False),
                record(bench, "thresher", f"dropped_bytes_per_dropped_row_{measure}",
                       dropped[measure] / max(1, dropped["rows"]), "bytes", False)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--part-rows", type=int, default=50_000)
    ap.add_argument("--stages", default="filter,heuristics,score")
    ap.add_argument("--input-drop-columns", action="store_true", help="null drop columns in the input")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ["THRESHER_STREAM_MIN_BYTES"] = "0"
    os.environ["THRESHER_PART_ROWS"] = str(args.part_rows)
    os.environ.setdefault("THRESHER_PROGRESS", "0")
    records = []
    with tempfile.TemporaryDirectory(prefix="thresher-proj-") as tmp:
        src = make_input(Path(tmp) / "in.parquet", args.rows, drop_columns=args.input_drop_columns)
        for stage in args.stages.split(","):
            records += _report(stage, measure(stage, src, Path(tmp) / stage))
    if args.json:
        print_json(records)


if __name__ == "__main__":
    main()
