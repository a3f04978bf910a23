"""A stage folder whose kept.parquet / dropped.parquet are folders of parts (issue 24) is read
by everything that reads a stage folder: the next stage, report, why, export, a rerun (reused
as finished), the damage check, datasets / polars / pyarrow, and a recipe run."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.conftest import invoke
from thresher.io import parts
from thresher.io.atomic import write_text_atomic
from thresher.stage_folder import DROPPED, KEPT, MANIFEST, damage, file_records, read_manifest

WORDS = "alpha beta gamma delta the sea is blue seven rivers run north".split()


def to_parts(folder: Path, n: int = 3) -> None:
    """Rewrite a finished stage folder's kept.parquet and dropped.parquet as folders of ``n``
    parts (fewer for fewer rows, one empty part for none) and record them in its manifest, as
    a streaming stage writes them."""
    for name in (KEPT, DROPPED):
        p = folder / name
        if not p.is_file():
            continue
        df = pl.read_parquet(p)
        p.unlink()
        k = max(1, min(n, df.height))
        size = -(-df.height // k) if df.height else 0
        for i in range(k):
            parts.write_part(df.slice(i * size, size), p, i)
    m = read_manifest(folder)
    assert m and m["status"] == "done", folder
    artefacts = {rel: rec for rel, rec in m["files"].items() if rec.get("artefact")}
    m["files"] = {**artefacts, **file_records(folder)}
    write_text_atomic(folder / MANIFEST, json.dumps(m, indent=2))


def write_rows(path: Path) -> None:
    """36 rows in three categories with a score: short answers (the filter drops them) and
    repeated conversations (dedup drops them)."""
    convs: list[tuple[str, str]] = []
    lines = []
    for i in range(36):
        q = " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(3 + i % 5))
        a = "ok" if i % 6 == 0 else " ".join(WORDS[(i + j) % len(WORDS)] for j in range(4 + i % 7)) + f" {i}."
        q, a = convs[-1] if i % 9 == 4 else (q, a)  # the same conversation as the row before
        convs.append((q, a))
        lines.append(json.dumps({"id": f"r{i:02d}", "category": "xyz"[i % 3], "score_q": (i * 37) % 23 / 10,
                                 "messages": [{"role": "user", "content": f"{q}?"},
                                              {"role": "assistant", "content": a}]}))
    path.write_text("\n".join(lines) + "\n")


def _ok(*args):
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    return res


def _stages(data: Path, run: Path) -> None:
    """run/01-filter and run/02-dedup, through the CLI."""
    _ok("curate", "filter", data, "--out", run / "01-filter", "--min-chars", "12")
    _ok("curate", "dedup", run / "01-filter", "--out", run / "02-dedup")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(data file, a run in the file layout, the same run with every output turned into parts)."""
    tmp = tmp_path_factory.mktemp("part-layout")
    data = tmp / "data.jsonl"
    write_rows(data)
    _stages(data, tmp / "files")
    _stages(data, tmp / "parted")
    for stage in ("01-filter", "02-dedup"):
        to_parts(tmp / "parted" / stage)
    return data, tmp / "files", tmp / "parted"


def _ids(path: Path) -> list[str]:
    return sorted(parts.read(path, ["id"])["id"].to_list())


def test_the_helper_writes_recorded_parts_that_match(runs):
    _, files, parted = runs
    for stage in ("01-filter", "02-dedup"):
        for name in (KEPT, DROPPED):
            p = parted / stage / name
            assert parts.is_dataset(p) and len(parts.files(p)) >= 1
            assert parts.read(p).equals(pl.read_parquet(files / stage / name))
            assert parts.count(p) == pl.read_parquet(files / stage / name).height
        assert len(parts.files(parted / stage / KEPT)) == 3
        assert damage(parted / stage) is None
        recorded = read_manifest(parted / stage)["files"]
        assert f"{KEPT}/part-00000.parquet" in recorded and KEPT not in recorded


#: the next stage: (the stage folder it reads, its command)
NEXT = {
    "dedup": ("01-filter", "curate", "dedup"),
    "filter": ("02-dedup", "curate", "filter", "--min", "score_q=1"),
    "select": ("02-dedup", "curate", "select", "--method", "top", "--by", "score_q", "--k", "7"),
    "mix": ("02-dedup", "curate", "mix", "--spec", "{spec}", "--rank-by", "score_q"),
}


@pytest.mark.parametrize("stage", sorted(NEXT))
def test_the_next_stage_reads_the_parts(runs, stage, tmp_path):
    _, files, parted = runs
    spec = tmp_path / "mix.yaml"
    spec.write_text("total: 9\non_shortfall: keep\ncategories:\n  x: {weight: 0.4}\n  y: {weight: 0.3}\n"
                    "  z: {weight: 0.3}\n")
    src, cmd, args = NEXT[stage][0], NEXT[stage][1:3], [a.format(spec=spec) for a in NEXT[stage][3:]]
    out = {}
    for layout, run in (("files", files), ("parted", parted)):
        out[layout] = tmp_path / layout
        _ok(*cmd, run / src, *args, "--out", out[layout])
    assert _ids(out["parted"] / KEPT) == _ids(out["files"] / KEPT)
    assert _ids(out["parted"] / DROPPED) == _ids(out["files"] / DROPPED)
    assert 0 < parts.count(out["parted"] / KEPT) < parts.count(parted / src / KEPT)
    finished = read_manifest(out["parted"])["finished"]
    _ok(*cmd, parted / src, *args, "--out", out["parted"])  # the parts' fingerprint is stable: reused
    assert read_manifest(out["parted"])["finished"] == finished


def test_a_rerun_reuses_the_parts_as_finished(runs, tmp_path):
    data, _, _ = runs
    run = tmp_path / "run"
    _stages(data, run)
    to_parts(run / "01-filter")
    before = {f.name: f.stat().st_mtime_ns for f in parts.files(run / "01-filter" / KEPT)}
    finished = read_manifest(run / "01-filter")["finished"]
    res = _ok("curate", "filter", data, "--out", run / "01-filter", "--min-chars", "12")
    assert read_manifest(run / "01-filter")["finished"] == finished  # not recomputed
    assert {f.name: f.stat().st_mtime_ns for f in parts.files(run / "01-filter" / KEPT)} == before
    assert parts.is_dataset(run / "01-filter" / KEPT), res.output
    # the stage after it recomputes once (its input's files changed), then is reused
    dedup = read_manifest(run / "02-dedup")
    _ok("curate", "dedup", run / "01-filter", "--out", run / "02-dedup")
    assert read_manifest(run / "02-dedup")["finished"] != dedup["finished"]
    finished = read_manifest(run / "02-dedup")["finished"]
    _ok("curate", "dedup", run / "01-filter", "--out", run / "02-dedup")
    assert read_manifest(run / "02-dedup")["finished"] == finished


def test_report_why_and_export_read_the_parts(runs, tmp_path):
    _, files, parted = runs
    for run in (files, parted):
        _ok("report", run, "--out", tmp_path / run.name)
    card = (tmp_path / "parted" / "report.md").read_text()
    assert "02-dedup" in card and "Sample rows" in card
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["configs"][0]["data_files"][0]["path"].endswith("02-dedup/kept.parquet/*.parquet")
    dropped = pl.read_parquet(files / "01-filter" / DROPPED)["id"][0]
    kept = pl.read_parquet(files / "02-dedup" / KEPT)["id"][0]
    for rid in (dropped, kept):
        a, b = (_ok("why", run, rid).output.replace(str(run), "RUN") for run in (files, parted))
        assert a == b and rid in b
    assert "dropped by stage 01-filter" in _ok("why", parted, dropped).output
    assert "survived every stage" in _ok("why", parted, kept).output
    for run in (files, parted):
        _ok("export", run, "--to", tmp_path / f"export-{run.name}")
    train = "data/train-00000-of-00001.parquet"
    a, b = (pl.read_parquet(tmp_path / f"export-{r}" / train) for r in ("files", "parted"))
    assert a.height == parts.count(parted / "02-dedup" / KEPT) and a.sort("id").equals(b.sort("id"))
    _ok("export", parted / "02-dedup", "--to", tmp_path / "export-stage")  # a stage folder alone
    assert pl.read_parquet(tmp_path / "export-stage" / train).sort("id").equals(a.sort("id"))


@pytest.fixture
def stage(runs, tmp_path):
    """A fresh filter stage folder in the parts layout (for tests that damage it)."""
    data, _, _ = runs
    out = tmp_path / "01-filter"
    _ok("curate", "filter", data, "--out", out, "--min-chars", "12")
    to_parts(out)
    return data, out


def test_damage_names_a_removed_part(stage):
    data, out = stage
    (out / KEPT / "part-00001.parquet").unlink()
    assert damage(out) == f"{KEPT}/part-00001.parquet is missing"
    res = invoke("report", out.parent)
    assert res.exit_code == 1 and f"{KEPT}/part-00001.parquet is missing" in res.output, res.output
    res = _ok("curate", "filter", data, "--out", out, "--min-chars", "12")
    assert "recomputing" in res.output and damage(out) is None


def test_damage_names_a_changed_part(stage):
    _, out = stage
    p = out / KEPT / "part-00002.parquet"
    df = pl.read_parquet(p)
    df.with_columns(pl.col("id") + "x").write_parquet(p)
    why = damage(out)
    assert why is not None and why.startswith(f"{KEPT}/part-00002.parquet ")
    assert "damaged" in why or "changed after the stage finished" in why


def test_damage_names_an_extra_part(stage):
    data, out = stage
    extra = pl.read_parquet(parts.files(out / KEPT)[0])
    parts.write_part(extra, out / KEPT, 7)
    assert damage(out) == f"{KEPT}/part-00007.parquet is not one of the parts the manifest records"
    res = invoke("why", out.parent, "r01")
    assert res.exit_code == 1 and "part-00007.parquet is not one of the parts" in res.output, res.output
    res = _ok("curate", "filter", data, "--out", out, "--min-chars", "12")
    assert "recomputing" in res.output and damage(out) is None


def test_datasets_polars_and_pyarrow_read_every_row(runs, tmp_path):
    import datasets
    import pyarrow.parquet as pq

    _, files, parted = runs
    for stage, name in (("02-dedup", KEPT), ("01-filter", DROPPED)):  # (datasets loads no empty set)
        p, whole = parted / stage / name, pl.read_parquet(files / stage / name)
        ds = datasets.load_dataset("parquet", data_files=[str(f) for f in parts.files(p)], split="train",
                                   cache_dir=str(tmp_path / "hf"))
        assert ds.num_rows == whole.height and sorted(ds["id"]) == sorted(whole["id"].to_list())
        assert pl.scan_parquet(p).collect().sort("id").equals(whole.sort("id"))
        table = pq.read_table(p)
        assert table.num_rows == whole.height and sorted(table["id"].to_pylist()) == sorted(whole["id"].to_list())


RECIPE = """name: partsrecipe
inputs:
  - path: {data}
stages:
  - filter: {{min_chars: 12}}
  - dedup: {{}}
  - select: {{method: top, by: score_q, k: 12}}
  - report: {{}}
"""


def test_a_recipe_run_turned_into_parts_still_reports(runs, tmp_path):
    data, _, _ = runs
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.format(data=data))
    run = tmp_path / "run"
    _ok("run", recipe, "--out", run)
    final = pl.read_parquet(run / "03-select" / KEPT)
    for stage in ("00-inputs", "01-filter", "02-dedup", "03-select", "04-report"):
        to_parts(run / stage)
    _ok("report", run)
    assert "03-select" in (run / "report.md").read_text()
    rid = final["id"][0]
    assert "survived every stage" in _ok("why", run, rid).output
    _ok("export", run, "--to", tmp_path / "hub")
    exported = pl.read_parquet(tmp_path / "hub" / "data" / "train-00000-of-00001.parquet")
    assert exported.sort("id").equals(final.sort("id"))
    again = _ok("run", recipe, "--out", run)  # the inputs are reused; the stages after them read parts
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stages"][0]["status"] == "reused", again.output
    assert summary["dataset_rows"] == final.height and _ids(run / "03-select" / KEPT) == sorted(final["id"])
    assert "03-select" in (run / "report.md").read_text()
