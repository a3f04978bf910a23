"""Local executor vs Ray executor on real rows: filter and dedup, rows/s and Ray's overhead.

Rows: the conversations of the ``evals`` package registry (938,430 usable real rows in 470 evals;
``pip install --no-deps evals==3.0.1.post1``), converted once to a Parquet file under
``$THRESHER_CACHE/bench``. Both executors run the same stage code on the same file; the
script checks that they keep exactly the same ids, then prints rows/s side by side and the
overhead ratio (Ray wall time / local wall time; on one machine Ray can only add overhead).

A line marked PROJECTION extrapolates Ray's measured rows/s linearly to N nodes of this kind
(the map phases are embarrassingly parallel; the shuffles are not measured beyond one node).
It is not a measurement.

    python benchmarks/scale.py --rows 1000000 --stages filter,dedup --nodes 8
    python benchmarks/scale.py --rows 200000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, print_json, record  # noqa: E402


def _evals_rows(limit: int):
    """Up to ``limit`` (id, messages, category) rows from the evals registry."""
    from dedup import _evals_records, _messages

    seen = 0
    for name, i, rec in _evals_records():
        msgs = _messages(rec)
        if not msgs:
            continue
        yield {"id": f"{name}:{i}", "messages": msgs, "category": name.split("/")[0]}
        seen += 1
        if seen >= limit:
            return


def corpus(rows: int) -> Path:
    """The cached Parquet file of ``rows`` registry rows (built on the first run)."""
    import polars as pl

    from thresher.models import cache_dir

    out = cache_dir() / "bench" / f"evals-{rows}.parquet"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    data = list(_evals_rows(rows))
    if not data:
        raise SystemExit("the evals package is not installed: pip install --no-deps evals==3.0.1.post1")
    if len(data) < rows:
        print(f"note: the registry has {len(data)} usable rows (asked for {rows})", file=sys.stderr)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    pl.DataFrame(data).write_parquet(tmp)
    tmp.replace(out)  # atomic: a concurrent run sees the whole file or none
    return out


def _run(stage: str, src: Path, out: Path):
    from thresher.curate.dedup import stage as dedup_stage
    from thresher.curate.filter import stage as filter_stage

    if stage == "filter":
        cfg = filter_stage.Config(min_chars=20, max_repeat_ratio=0.5)
        return filter_stage.run([src], out, cfg)
    return dedup_stage.run([src], out, dedup_stage.Config(threshold=0.8))


def measure(stage: str, src: Path, workdir: Path, executor: str) -> tuple[float, list[str]]:
    """Wall seconds of one stage run under ``executor`` and the ids it kept."""
    import polars as pl

    from thresher.executors.ray_session import using

    out = workdir / f"{stage}-{executor}"
    with using(executor):
        t0 = time.perf_counter()
        res = _run(stage, src, out)
        seconds = time.perf_counter() - t0
    return seconds, pl.read_parquet(res.kept_path)["id"].to_list()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--stages", default="filter,dedup")
    ap.add_argument("--nodes", type=int, default=8, help="N for the projection line")
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the local Ray cluster")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("THRESHER_PROGRESS", "0")
    import polars as pl
    import ray

    src = corpus(args.rows)
    n = pl.scan_parquet(src).select(pl.len()).collect().item()
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    records, lines = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for stage in args.stages.split(","):
            t_local, ids_local = measure(stage, src, Path(tmp), "local")
            t_ray, ids_ray = measure(stage, src, Path(tmp), "ray")
            same = ids_local == ids_ray
            bench = f"scale/{stage}/{n}-rows"
            records += [record(bench, "thresher local", "rows_per_s", n / t_local, "rows/s", False),
                        record(bench, "thresher ray", "rows_per_s", n / t_ray, "rows/s", False),
                        record(bench, "thresher ray", "overhead_vs_local", t_ray / t_local, "x", False),
                        record(bench, "thresher ray", "same_kept_ids", same, "bool", False),
                        record(bench, f"PROJECTION ray x{args.nodes} nodes", "rows_per_s",
                               args.nodes * n / t_ray, "rows/s", False)]
            lines.append(f"{stage:7s} {n:>9,d} rows | local {t_local:7.1f} s {n / t_local:>9,.0f} rows/s | "
                         f"ray {t_ray:7.1f} s {n / t_ray:>9,.0f} rows/s | ray/local {t_ray / t_local:5.2f}x | "
                         f"same kept ids: {same} ({len(ids_local):,d})")
            lines.append(f"        PROJECTION (not measured): {args.nodes} nodes like this one, linear "
                         f"in the map phases: ~{args.nodes * n / t_ray:,.0f} rows/s")
    ray.shutdown()
    if args.json:
        print_json(records)
        return
    print(f"# local vs Ray executor, {machine()}, Ray cluster of {args.num_cpus} CPUs on this machine")
    print("\n".join(lines))
    print(json.dumps({"rows": n, "source": str(src)}))


if __name__ == "__main__":
    main()
