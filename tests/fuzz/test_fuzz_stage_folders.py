"""Fuzz tampered stage folders (issue 26): a finished `curate filter` folder is damaged in random
ways (files truncated, deleted, replaced by garbage or links, hostile manifests, a swap left
half done, stray temporary files, a bad lock file), then the stage runs again and `why` reads it.

Invariant: the usual one (exit 0, or one `Error:` line and no traceback; nothing outside the
folder changes), and after an exit 0 the folder holds one complete, consistent result set: a
finished manifest whose hashes match, kept + dropped = rows in, no staging folder or `.tmp` left.
"""

from __future__ import annotations

import json
import os
import shutil

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz._fuzz import budget, check, count, snapshot, workdir
from thresher.cli.main import cli

ROWS = [("What is the capital of France?", "Paris."),
        ("Name a prime number please.", "Seven is a prime number, divisible only by one and itself."),
        ("Write one sentence about the sea.", "The sea stretches blue and restless to the far horizon."),
        ("How many legs does a spider have?", "Eight.")]
FILES = ["kept.parquet", "dropped.parquet", "stats.json", "manifest.json"]
MANIFESTS = [b"", b"[]", b"{}", b"null", b'{"status": "done"}', b'{"stage": 5, "status": "done"}',
             b'{"kind": "thresher-stage", "stage": "filter", "status": "done", "files": "x"}',
             b'{"kind": "thresher-stage", "stage": "filter", "status": "done", "files": {"kept.parquet": 3}}',
             b'{"kind": "thresher-stage", "stage": "filter", "status": "done", "files": {"../x": {"size": 1}}}',
             b'{"kind": "thresher-stage", "stage": "dedup", "thresher": "0", "status": "running"}',
             b'{"kind": "thresher-stage", "stage": "filter", "status": "done", "inputs": 7, "config": []}']

TAMPER = st.one_of(
    st.tuples(st.just("truncate"), st.sampled_from(FILES), st.integers(0, 64)),
    st.tuples(st.just("delete"), st.sampled_from(FILES), st.just(0)),
    st.tuples(st.just("garbage"), st.sampled_from(FILES), st.binary(max_size=64)),
    st.tuples(st.just("manifest"), st.integers(0, len(MANIFESTS) - 1), st.just(0)),
    st.tuples(st.just("staging"), st.sampled_from(["file", "empty", "garbage", "committed", "half", "link"]), st.just(0)),
    st.tuples(st.just("tmp"), st.sampled_from(FILES), st.binary(max_size=16)),
    st.tuples(st.just("lock"), st.sampled_from(["garbage", "folder", "json"]), st.just(0)),
    st.tuples(st.just("link"), st.sampled_from(FILES), st.sampled_from(["outside", "dangling", "self"])),
)


def _put(path, body: bytes) -> None:
    """Replace ``path`` (never writing through a link the fuzz made: the target is the user's)."""
    if path.is_symlink():
        path.unlink()
    path.write_bytes(body)


def _tamper(out, kind: str, what, arg) -> None:
    if kind == "truncate" and (out / what).is_file() and not (out / what).is_symlink():
        (out / what).write_bytes((out / what).read_bytes()[:arg])
    elif kind == "delete" and ((out / what).exists() or (out / what).is_symlink()):
        (out / what).unlink()
    elif kind == "garbage":
        _put(out / what, arg)
    elif kind == "manifest":
        _put(out / "manifest.json", MANIFESTS[what])
    elif kind == "staging":
        new = out / ".thresher-new"
        if new.is_dir() and not new.is_symlink():
            shutil.rmtree(new)
        elif new.exists() or new.is_symlink():
            new.unlink()
        if what == "file":
            new.write_text("not a folder")
            return
        if what == "link":  # a staging folder that points elsewhere: nothing is taken from there
            (out.parent / "planted").mkdir(exist_ok=True)
            for name in FILES:
                if (out / name).is_file() and not (out / name).is_symlink():
                    shutil.copy(out / name, out.parent / "planted" / name)
            new.symlink_to(out.parent / "planted")
            return
        new.mkdir(exist_ok=True)
        if what == "garbage":
            (new / "manifest.json").write_bytes(b'{"status": "done"')
        elif what in ("committed", "half"):
            for name in FILES[: 4 if what == "committed" else 1]:
                if (out / name).is_file() and not (out / name).is_symlink():
                    shutil.copy(out / name, new / name)
    elif kind == "tmp":
        (out / f".{what}.abcd1234.tmp").write_bytes(arg)
    elif kind == "lock":
        lock = out / ".thresher.lock"
        if what == "folder":
            if not lock.is_dir():
                lock.unlink(missing_ok=True)
            lock.mkdir(exist_ok=True)
        elif not lock.is_dir():
            lock.write_bytes(b"\xff\x00garbage" if what == "garbage" else b'{"pid": 1, "host": "x", "since": 0}')
    elif kind == "link":
        target = {"outside": out.parent / "elsewhere.bin", "dangling": out.parent / "missing", "self": out / what}[arg]
        if (out / what).exists() or (out / what).is_symlink():
            (out / what).unlink()
        os.symlink(target, out / what)


def _complete(out) -> None:
    import polars as pl

    from thresher.stage_folder import damage, read_manifest

    m = read_manifest(out)
    assert m and m.get("status") == "done" and m.get("kind") == "thresher-stage", m
    assert damage(out) is None, damage(out)
    stats = json.loads((out / "stats.json").read_text())
    kept, dropped = pl.read_parquet(out / "kept.parquet"), pl.read_parquet(out / "dropped.parquet")
    assert kept.height + dropped.height == stats["rows_in"] == len(ROWS)
    left = [n for n in os.listdir(out) if n == ".thresher-new" or n.endswith(".tmp")]
    assert not left, left


def _setup(d):
    src = d / "in.jsonl"
    src.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                    {"role": "assistant", "content": a}]}) + "\n"
                           for q, a in ROWS))
    (d / "elsewhere.bin").write_bytes(b"the user's file")
    (d / "r.yaml").write_text(f"name: tamper\ninputs: [{{path: {src}}}]\nstages: [{{filter: {{}}}}]\n")
    return src


@budget(40)
@given(st.lists(TAMPER, min_size=1, max_size=3), st.sampled_from(["0", "20"]))
def test_a_tampered_stage_folder_is_repaired_or_refused_in_one_line(tampers, min_chars):
    """A stage command on its own folder."""
    from click.testing import CliRunner

    with workdir() as d:
        src, out = _setup(d), d / "f"
        first = CliRunner().invoke(cli, ["curate", "filter", str(src), "--out", str(out)])
        assert first.exit_code == 0, first.output
        for kind, what, arg in tampers:
            _tamper(out, kind, what, arg)
        before = snapshot(d, out)
        res = CliRunner().invoke(cli, ["curate", "filter", str(src), "--out", str(out), "--min-chars", min_chars])
        check(res, f"filter after {tampers}", before, snapshot(d, out))
        if res.exit_code == 0:
            _complete(out)
        assert (d / "elsewhere.bin").read_bytes() == b"the user's file"
        count("stage-folders")


@budget(12)
@given(st.lists(TAMPER, min_size=1, max_size=3), st.sampled_from(["0", "20"]))
def test_a_tampered_stage_of_a_run_is_read_and_rerun_safely(tampers, min_chars):
    """`why` and `report` read a run whose stage folder was tampered with; `thresher run` reruns it."""
    from click.testing import CliRunner

    with workdir() as d:
        _setup(d)
        run = d / "run"
        first = CliRunner().invoke(cli, ["run", str(d / "r.yaml"), "--out", str(run)])
        assert first.exit_code == 0, first.output
        stage = run / "01-filter"
        for kind, what, arg in tampers:
            _tamper(stage, kind, what, arg)
        before = snapshot(d, run)
        for args in (["why", run, "x"], ["report", run]):
            check(CliRunner().invoke(cli, [str(a) for a in args]), f"{args[0]} on {tampers}", before,
                  snapshot(d, run))
        res = CliRunner().invoke(cli, ["run", str(d / "r.yaml"), "--out", str(run),
                                       "--set", f"filter.min_chars={min_chars}"])
        check(res, f"run after {tampers}", before, snapshot(d, run))
        if res.exit_code == 0:
            _complete(stage)
        assert (d / "elsewhere.bin").read_bytes() == b"the user's file"
        count("stage-folders-run")
