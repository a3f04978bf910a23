"""A data recipe over N synthetic rows, stage by stage: rows/s and peak RSS against the input size.

Issue 24, section 5. For each ``--rows N`` it generates the synthetic conversations of
``benchmarks/stream.py`` (most rows 1-8 KB, one in ten a ~30 KB reasoning trace; ``--small``:
two-turn ~450-byte rows) and runs the recipe

    filter (min_chars, max_repeat_ratio, drop_junk) -> score (length) -> dedup (exact + MinHash
    on the prompt, keep_by score_length) -> decontam (against MMLU) -> mix (four categories in
    equal shares, rank_by score_length)

as five ``thresher curate ...`` commands chained through their run folders (rows/s and peak RSS
of each stage's process tree, psutil polled every 20 ms), then once as ``thresher run
RECIPE.yaml`` (the total, with the inputs step). The realistic rows carry a ``category``
column; the small rows have none, so their mix assigns categories by keyword rules.

- ``--executor ray`` runs every command with ``--executor ray`` (a local Ray cluster per
  command) and reports the driver's peak RSS (the thresher process) apart from the peak of the
  sum of the rest of its tree (raylet, GCS, workers; shared object-store pages count once per
  process that touches them).
- datatrove beside the filter step: ``JsonlReader`` (text = user + assistant turns) ->
  GopherQuality + GopherRepetition + C4Quality -> ``ParquetWriter``, under
  ``LocalPipelineExecutor(tasks=T, workers=T)`` (``--datatrove-tasks``, default 2). datatrove
  shards by file, so the same rows are split into T JSONL files first (not timed); thresher
  is one process.
- ``--cap GB`` runs ``thresher run`` of the recipe under a hard memory cap on the largest N
  and reports success, peak RSS and the input size. ``--cap-with cgroup`` (default): a fresh
  memory cgroup (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``; needs root), the kernel
  killing the run past the cap; ``prlimit``: ``prlimit --as``, address space (reservations,
  not use); ``systemd``: ``systemd-run --scope -p MemoryMax``.

    python benchmarks/stream_recipe.py --small --rows 100000 --rows 300000 --rows 1000000
    python benchmarks/stream_recipe.py --rows 100000 --executor ray --no-datatrove
    python benchmarks/stream_recipe.py --small --rows 1000000 --cap 1 --only-cap
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
from stream import corpus  # noqa: E402

CATS = ("code", "math", "chat", "reasoning")
#: the small rows have no category column: the mix assigns one from the user turn's words
SMALL_RULES = [{"category": "code", "keywords": ["function"]}, {"category": "math", "keywords": ["therefore"]},
               {"category": "reasoning", "keywords": ["because"]}]
FILTER = {"min_chars": 20, "max_repeat_ratio": 0.5, "drop_junk": True}
STAGES = ("filter", "score", "dedup", "decontam", "mix")


def mix_spec(small: bool) -> dict:
    """Equal shares of the four categories (the column, or keyword rules for ``--small``)."""
    spec: dict = {"on_shortfall": "redistribute", "categories": {c: {"weight": 0.25} for c in CATS}}
    if small:
        spec.update(rules=SMALL_RULES, fallback="chat")
    return spec


def stage_commands(exe: str, data: Path, work: Path, small: bool, executor: str) -> list[tuple[str, list[str]]]:
    """The five ``thresher curate`` commands, each reading the previous one's run folder."""
    spec = work / "mix.yaml"
    spec.write_text(json.dumps(mix_spec(small)))  # JSON is YAML
    opts = {"filter": ["--min-chars", str(FILTER["min_chars"]), "--max-repeat-ratio",
                       str(FILTER["max_repeat_ratio"]), "--drop-junk"],
            "score": ["-s", "length", "--no-cache"],
            "dedup": ["--on", "prompt", "--keep-by", "score_length"],
            "decontam": ["--against", "mmlu"],
            "mix": ["--spec", str(spec), "--rank-by", "score_length"]}
    cmds, src = [], str(data)
    for stage in STAGES:
        out = work / stage
        cmds.append((stage, [exe, "curate", stage, src, "--out", str(out), *opts[stage],
                             "--executor", executor]))
        src = str(out)
    return cmds


def recipe_file(data: Path, work: Path, small: bool) -> Path:
    """The same recipe as one YAML file (JSON is YAML) for ``thresher run``."""
    recipe = {"name": "stream-recipe", "seed": 0, "inputs": [{"path": str(data)}],
              "stages": [{"filter": FILTER}, {"score": {"scorers": ["length"], "cache": False}},
                         {"dedup": {"on": "prompt", "keep_by": "score_length"}},
                         {"decontam": {"against": ["mmlu"]}},
                         {"mix": {"rank_by": "score_length", "spec": mix_spec(small)}}]}
    path = work / "recipe.yaml"
    path.write_text(json.dumps(recipe, indent=1))
    return path


def measure(cmd: list[str], prefix: list[str] | None = None, extra_env: dict | None = None) -> dict:
    """Run ``prefix + cmd`` (a prefix tool execs it: same pid); seconds, return code, the tree's
    peak RSS, apart the peaks of the root process (the driver) and of the sum of the rest, and
    ``anon``: the tree's peak of RSS not backed by a file (RSS less psutil's ``shared``: mapped
    files such as dedup's spilled signatures, whose pages the kernel can drop)."""
    import psutil

    env = {**os.environ, "THRESHER_PROGRESS": "0", **(extra_env or {})}
    log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty child (datatrove, Ray) never blocks
    start = time.time()
    proc = subprocess.Popen([*(prefix or []), *cmd], stdout=subprocess.DEVNULL, stderr=log, env=env)
    root, peak, driver, others, anon = psutil.Process(proc.pid), 0, 0, 0, 0
    while proc.poll() is None:
        try:
            info = root.memory_info()
            mine, rest, unshared = info.rss, 0, info.rss - info.shared
            for p in root.children(recursive=True):
                try:
                    info = p.memory_info()
                    rest, unshared = rest + info.rss, unshared + info.rss - info.shared
                except psutil.Error:
                    pass
        except psutil.Error:
            mine = rest = unshared = 0
        peak, driver, others = max(peak, mine + rest), max(driver, mine), max(others, rest)
        anon = max(anon, unshared)
        time.sleep(0.02)
    seconds = time.time() - start
    log.seek(0)
    err = log.read().decode(errors="replace")
    log.close()
    return {"seconds": seconds, "rc": proc.returncode, "peak": peak, "driver": driver, "others": others,
            "anon": anon,
            "err": err.strip()[-800:]}


def kept_info(folder: Path) -> tuple[int, bool, str]:
    """(kept rows, kept.parquet is a folder of parts, a hash of the sorted kept ids) of a run folder."""
    import hashlib

    import pyarrow.parquet as pq

    from thresher.io.parts import files

    kept = folder / "kept.parquet"
    paths = files(kept) if kept.exists() else []
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    names = pq.ParquetFile(paths[0]).schema_arrow.names if paths else []
    ids = []
    if "id" in names:
        ids = sorted(str(x) for p in paths for x in pq.read_table(p, columns=["id"])["id"].to_pylist())
    return rows, kept.is_dir(), hashlib.sha1("\n".join(ids).encode()).hexdigest()[:10]


def run_chain(exe: str, data: Path, rows: int, small: bool, executor: str, work: Path,
              through: str = STAGES[-1]) -> list[dict]:
    """Each stage command in turn, up to ``through``: its input rows, seconds, peaks, kept rows and ids."""
    out, rows_in = [], rows
    commands = stage_commands(exe, data, work, small, executor)
    for stage, cmd in commands[:STAGES.index(through) + 1]:
        m = measure(cmd)
        m.update(stage=stage, rows_in=rows_in, rows_per_s=rows_in / m["seconds"])
        if m["rc"]:
            m.update(kept=0, parts=False, ids="-")
            out.append(m)
            print(f"# {stage} failed ({m['rc']}): {m['err']}", file=sys.stderr)
            break
        m["kept"], m["parts"], m["ids"] = kept_info(work / stage)
        print(f"# {executor} {rows:,} {stage}: {m['seconds']:.1f} s, peak {m['peak'] / 1e6:,.0f} MB "
              f"(not file-backed: {m['anon'] / 1e6:,.0f} MB), kept {m['kept']:,}{' (parts)' if m['parts'] else ''}", file=sys.stderr)
        out.append(m)
        rows_in = m["kept"]
    return out


def run_recipe(exe: str, data: Path, rows: int, small: bool, executor: str, work: Path,
               prefix: list[str] | None = None, extra_env: dict | None = None) -> dict:
    """``thresher run`` of the whole recipe (inputs step included) in one process tree."""
    run_dir = work / "run"
    cmd = [exe, "run", str(recipe_file(data, work, small)), "--out", str(run_dir), "--executor", executor]
    m = measure(cmd, prefix, extra_env)
    m.update(stage="run", rows_in=rows, rows_per_s=rows / m["seconds"], kept=0, parts=False, ids="-")
    last = sorted(run_dir.glob("*-mix"))
    if not m["rc"] and last:
        m["kept"], m["parts"], m["ids"] = kept_info(last[-1])
    state = "ok" if not m["rc"] else f"FAILED ({m['rc']}): {m['err']}"
    print(f"# {executor} {rows:,} thresher run: {m['seconds']:.1f} s, peak {m['peak'] / 1e6:,.0f} MB, {state}",
          file=sys.stderr)
    return m


def datatrove_shards(data: Path, tasks: int) -> Path:
    """The rows of ``data`` split into ``tasks`` JSONL files (datatrove shards by file), cached."""
    folder = data.with_suffix(f".dt{tasks}")
    if folder.is_dir():
        return folder
    tmp = Path(tempfile.mkdtemp(dir=data.parent))
    fhs = [open(tmp / f"shard-{i}.jsonl", "w", encoding="utf-8") for i in range(tasks)]
    with open(data, encoding="utf-8") as src:
        for i, line in enumerate(src):
            fhs[i % tasks].write(line)
    for fh in fhs:
        fh.close()
    tmp.rename(folder)
    return folder


def _dt_adapter(self, data: dict, path: str, id_in_file) -> dict:
    """A conversation as one datatrove document: its user and assistant turns, joined."""
    text = "\n\n".join(m["content"] for m in data["messages"] if m["role"] in ("user", "assistant"))
    return {"text": text, "id": f"{path}/{id_in_file}", "metadata": {}}


def datatrove_child(shards: str, out: str, tasks: int) -> None:
    """(in the measured subprocess) JsonlReader -> Gopher/C4 filters -> ParquetWriter."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import ParquetWriter

    pipeline = [JsonlReader(shards, adapter=_dt_adapter), GopherRepetitionFilter(), GopherQualityFilter(),
                # the synthetic text has no punctuation: C4's sentence rules would drop every row
                C4QualityFilter(filter_no_terminal_punct=False, min_num_sentences=-1),
                ParquetWriter(out)]
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=tasks, logging_dir=f"{out}-logs").run()


def run_datatrove(data: Path, rows: int, tasks: int, work: Path) -> dict:
    """datatrove's filter pipeline on the same rows, in a measured subprocess tree."""
    import pyarrow.parquet as pq

    try:
        import datatrove  # noqa: F401
    except ImportError as e:
        return {"stage": "datatrove", "rc": -1, "err": f"datatrove not installed ({e})"}
    shards, out = datatrove_shards(data, tasks), work / "datatrove"
    m = measure([sys.executable, __file__, "--datatrove-child", str(shards), str(out), str(tasks)])
    m.update(stage="datatrove", rows_in=rows, rows_per_s=rows / m["seconds"], parts=True, ids="-")
    m["kept"] = sum(pq.ParquetFile(p).metadata.num_rows for p in out.glob("*.parquet")) if not m["rc"] else 0
    print(f"# datatrove {rows:,} (tasks={tasks}): {m['seconds']:.1f} s, peak {m['peak'] / 1e6:,.0f} MB, "
          f"kept {m['kept']:,}{'' if not m['rc'] else ' FAILED: ' + m['err']}", file=sys.stderr)
    return m


#: fewer glibc arenas and polars threads: less address space reserved (``prlimit --as`` counts it)
CAP_ENV = {"MALLOC_ARENA_MAX": "2", "POLARS_MAX_THREADS": "2"}


def cgroup_prefix(cap: int) -> tuple[list[str], Path]:
    """A prefix that moves the command into a fresh memory cgroup limited to ``cap`` bytes (the
    kernel's own cap: RSS and page cache counted, the process killed past it) and execs it;
    cgroup v2 (``memory.max``) where writable, else v1's ``memory`` controller. Needs root."""
    v2, v1 = Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/memory")
    name = f"thresher-cap-{os.getpid()}"
    if (v2 / "cgroup.controllers").exists():
        group, files = v2 / name, {"memory.max": cap, "memory.swap.max": 0}
    elif v1.is_dir():
        group, files = v1 / name, {"memory.limit_in_bytes": cap}
    else:
        raise SystemExit("no memory cgroup here (neither /sys/fs/cgroup/cgroup.controllers nor /sys/fs/cgroup/memory)")
    group.mkdir(exist_ok=True)
    for f, v in files.items():
        (group / f).write_text(str(v))
    return ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh"], group


def cgroup_peak(group: Path) -> tuple[int, int]:
    """The cgroup's own peak usage (bytes) and how often it hit the cap."""
    for peak, fails in (("memory.max_usage_in_bytes", "memory.failcnt"), ("memory.peak", "memory.events")):
        if (group / peak).exists():
            text = (group / fails).read_text()
            hits = int(text) if fails == "memory.failcnt" else int(
                dict(line.split() for line in text.splitlines()).get("max", 0))
            return int((group / peak).read_text()), hits
    return 0, 0


def run_cap(exe: str, data: Path, rows: int, small: bool, cap_gb: float, how: str, work: Path) -> dict:
    """``thresher run`` of the recipe under a hard memory cap of ``cap_gb`` GiB. An address-space
    cap (prlimit) counts reservations, not use: a 3,000-row run needs ~4 GiB of it (3 GiB with
    CAP_ENV); a memory cgroup (``cgroup``, ``systemd``) counts the pages really used."""
    cap, group = int(cap_gb * 2**30), None
    if how == "prlimit":
        prefix = ["prlimit", f"--as={cap}"]
    elif how == "cgroup":
        prefix, group = cgroup_prefix(cap)
    else:
        prefix = ["systemd-run", "--scope", "--quiet", "-p", f"MemoryMax={cap}", "-p", "MemorySwapMax=0"]
    env = CAP_ENV if how == "prlimit" else {}
    print(f"# cap: {' '.join(f'{k}={v}' for k, v in env.items())} {' '.join(prefix)} thresher run "
          f"(input {data.stat().st_size / 1e6:,.0f} MB)", file=sys.stderr)
    m = run_recipe(exe, data, rows, small, "local", work, prefix, env)
    if group is not None:
        m["cgroup_peak"], m["cgroup_hits"] = cgroup_peak(group)
        group.rmdir()
    return m


def _cell(m: dict | None) -> str:
    if not m:
        return "-"
    if m.get("rc"):
        return "FAILED"
    return f"{m['rows_per_s'] / 1e3:,.1f}k/{m['peak'] / 1e6:,.0f}"


def table(results: list[dict], executor: str) -> list[str]:
    """The detail lines (one per run), the side-by-side summary and the smallest-vs-largest ratios."""
    ray = executor == "ray"
    head = (f"{'N':>9s} {'input MB':>8s} {'step':9s} {'rows in':>9s} {'s':>7s} {'rows/s':>9s} {'peak MB':>8s} "
            + (f"{'driver':>7s} {'others':>7s} " if ray else "") + f"{'kept':>9s} {'parts':>5s} {'ids':>10s}")
    lines = [head]
    for r in results:
        for m in r["runs"]:
            if m.get("rc"):
                lines.append(f"{r['rows']:>9,d} {r['mb']:8.1f} {m['stage']:9s} FAILED ({m['rc']}): {(m['err'].splitlines() or [''])[-1]}")
                continue
            lines.append(f"{r['rows']:>9,d} {r['mb']:8.1f} {m['stage']:9s} {m['rows_in']:>9,d} {m['seconds']:7.1f} "
                         f"{m['rows_per_s']:9,.0f} {m['peak'] / 1e6:8,.0f} "
                         + (f"{m['driver'] / 1e6:7,.0f} {m['others'] / 1e6:7,.0f} " if ray else "")
                         + f"{m['kept']:>9,d} {'yes' if m['parts'] else 'no':>5s} {m['ids']:>10s}")
    steps = [*STAGES, "run", "datatrove"]
    lines += ["", "side by side: rows/s (k) / peak RSS MB of the process tree"
              + (" (Ray: driver + others)" if ray else ""),
              f"{'N':>9s} {'input MB':>8s} " + " ".join(f"{s:>13s}" for s in steps)]
    for r in results:
        by = {m["stage"]: m for m in r["runs"]}
        lines.append(f"{r['rows']:>9,d} {r['mb']:8.1f} " + " ".join(f"{_cell(by.get(s)):>13s}" for s in steps))
    ok = [r for r in results if r["runs"]]
    if len(ok) > 1:
        lo, hi = ({m["stage"]: m for m in r["runs"] if not m.get("rc")} for r in (ok[0], ok[-1]))
        key = "driver" if ray else "peak"
        ratios = [f"{s} {hi[s][key] / lo[s][key]:.2f}x" for s in steps if s in lo and s in hi]
        lines += ["", f"peak RSS{' (driver)' if ray else ''}, N={ok[-1]['rows']:,} / N={ok[0]['rows']:,}: "
                  + ", ".join(ratios)]
    return lines


def records_of(results: list[dict], executor: str, small: bool) -> list[dict]:
    out = []
    for r in results:
        for m in r["runs"]:
            if m.get("rc"):
                continue
            bench = f"stream_recipe/{m['stage']}/{'small' if small else 'real'}/{r['rows']}/{executor}"
            who, peer = ("datatrove", True) if m["stage"] == "datatrove" else (f"thresher {m['stage']}", False)
            out += [record(bench, who, "rows_per_s", m["rows_per_s"], "rows/s", peer),
                    record(bench, who, "peak_rss_mb", m["peak"] / 1e6, "MB", peer),
                    record(bench, who, "input_mb", r["mb"], "MB", peer)]
            if executor == "ray" and not peer:
                out += [record(bench, who, "driver_peak_rss_mb", m["driver"] / 1e6, "MB", peer),
                        record(bench, who, "others_peak_rss_mb", m["others"] / 1e6, "MB", peer)]
    return out


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--datatrove-child":
        return datatrove_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, action="append", help="rows (repeat for several sizes; default 100000)")
    ap.add_argument("--small", action="store_true", help="two-turn ~450-byte rows instead of 1-30 KB rows")
    ap.add_argument("--executor", choices=["local", "ray"], default="local")
    ap.add_argument("--dups", type=float, default=0.0,
                    help="this fraction of rows copies a recent row (benchmarks/stream.py's corpus)")
    beside = Path(sys.executable).with_name("thresher")
    ap.add_argument("--thresher", default=str(beside) if beside.exists() else shutil.which("thresher") or "thresher")
    ap.add_argument("--datatrove-tasks", type=int, default=2, help="datatrove's tasks = workers (default 2)")
    ap.add_argument("--no-datatrove", action="store_true")
    ap.add_argument("--datatrove-max-rows", type=int, help="run datatrove only up to this N (it is slow)")
    ap.add_argument("--recipe-max-rows", type=int, help="run `thresher run` only up to this N")
    ap.add_argument("--no-stages", action="store_true", help="skip the stage-by-stage commands")
    ap.add_argument("--no-recipe", action="store_true", help="skip the `thresher run` total")
    ap.add_argument("--through", choices=STAGES, default=STAGES[-1],
                    help="run the stage-by-stage chain up to this stage only (e.g. filter)")
    ap.add_argument("--cap", type=float, help="also run `thresher run` on the largest N under this cap (GB)")
    ap.add_argument("--cap-with", choices=["prlimit", "cgroup", "systemd"], default="cgroup")
    ap.add_argument("--only-cap", action="store_true", help="only the capped run")
    ap.add_argument("--json", action="store_true", help="print JSON records (the table goes to stderr)")
    args = ap.parse_args()
    head = [f"# {machine()}", f"# {args.thresher} ({args.executor}); {'small' if args.small else 'realistic'} rows; "
            f"THRESHER_PART_ROWS={os.environ.get('THRESHER_PART_ROWS', 'default')}, "
            f"THRESHER_PART_BYTES={os.environ.get('THRESHER_PART_BYTES', 'default')}, "
            f"THRESHER_STREAM_MIN_BYTES={os.environ.get('THRESHER_STREAM_MIN_BYTES', 'default')}"]
    print("\n".join(head), file=sys.stderr)
    results, caps = [], []
    sizes = sorted(args.rows or [100_000])
    for rows in sizes:
        data = corpus(rows, args.small, args.dups)
        r = {"rows": rows, "mb": data.stat().st_size / 1e6, "runs": []}
        if not args.only_cap:
            over = {"recipe": args.recipe_max_rows, "dt": args.datatrove_max_rows}
            for step, skip in (("stages", args.no_stages), ("recipe", args.no_recipe), ("dt", args.no_datatrove)):
                skip = skip or rows > (over.get(step) or rows)
                if skip or (step == "dt" and args.executor == "ray"):
                    continue
                work = Path(tempfile.mkdtemp(prefix="thresher-recipe-", dir=data.parent))
                try:
                    if step == "stages":
                        r["runs"] += run_chain(args.thresher, data, rows, args.small, args.executor, work, args.through)
                    elif step == "recipe":
                        r["runs"].append(run_recipe(args.thresher, data, rows, args.small, args.executor, work))
                    else:
                        r["runs"].append(run_datatrove(data, rows, args.datatrove_tasks, work))
                finally:
                    shutil.rmtree(work, ignore_errors=True)
        if args.cap and rows == sizes[-1]:
            work = Path(tempfile.mkdtemp(prefix="thresher-cap-", dir=data.parent))
            try:
                caps.append((r, run_cap(args.thresher, data, rows, args.small, args.cap, args.cap_with, work)))
            finally:
                shutil.rmtree(work, ignore_errors=True)
        results.append(r)
    lines = head + table([r for r in results if r["runs"]], args.executor)
    for r, m in caps:
        state = "succeeded" if not m["rc"] else f"FAILED ({m['rc']}): {(m['err'].splitlines() or [''])[-1]}"
        lines.append(f"cap {args.cap:g} GiB ({args.cap_with}), thresher run, N={r['rows']:,}, input {r['mb']:,.0f} MB: "
                     f"{state}; {m['seconds']:.0f} s, peak RSS {m['peak'] / 1e6:,.0f} MB, kept {m['kept']:,}"
                     + (f"; the cgroup's peak {m['cgroup_peak'] / 1e6:,.0f} MB (page cache included), "
                        f"{m['cgroup_hits']} reclaims at the cap" if "cgroup_peak" in m else ""))
    records = records_of(results, args.executor, args.small) + [
        record(f"stream_recipe/cap/{args.cap_with}-{args.cap:g}GB/{r['rows']}", "thresher run", "succeeded",
               int(not m["rc"]), "bool", False) for r, m in caps]
    if args.json:
        print("\n".join(lines), file=sys.stderr)
        print_json(records)
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
