"""Resume: SIGKILL a real ``thresher distill generate`` subprocess part way and rerun it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from thresher.distill.shards import ShardStore
from thresher.io import read_table

from .conftest import write_prompts


def test_store_ignores_partial_files(tmp_path):
    store = ShardStore(tmp_path / "shards")
    store.write([{"key": "k1", "parent_id": "p", "sample_index": 0, "text": "t", "finish_reason": "stop",
                  "prompt_tokens": 1, "completion_tokens": 1}])
    (store.folder / ".tmp-shard-000001-dead.parquet").write_bytes(b"PAR1 half written")
    (store.folder / "shard-000002-bad.parquet").write_bytes(b"not parquet")
    found = store.load()
    assert list(found) == ["k1"] and found["k1"]["text"] == "t"
    assert not list(store.folder.glob(".tmp-*"))


def _all_rows(out):
    """Kept rows (validated by the core reader) plus any dropped ones (empty answers)."""
    kept = read_table(out / "kept.parquet")
    dropped = pl.read_parquet(out / "dropped.parquet").select(kept.columns)
    return pl.concat([kept, dropped])


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path, tiny_lm_dir, cli_run):
    prompts = [f"Question number {i}: what is {i} times {i + 1}?" for i in range(40)]
    inp = write_prompts(tmp_path / "p.jsonl", prompts)
    args = ["distill", "generate", str(inp), "--teacher", str(tiny_lm_dir), "-n", "2",
            "--max-tokens", "48", "--batch-size", "1", "--seed", "3"]
    out = tmp_path / "killed"
    env = {**os.environ, "THRESHER_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "thresher.cli.main", *args, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    shards = out / "shards"
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if len(list(shards.glob("shard-*.parquet"))) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "generation finished before it could be killed: " + proc.stdout.read().decode()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = ShardStore(shards).load()
    assert 0 < len(before) < 80
    assert not (out / "kept.parquet").exists()

    r = cli_run(*args, "--out", out)
    assert r.exit_code == 0, r.output
    assert f"({len(before)} reused, {80 - len(before)} generated)" in r.output
    resumed = _all_rows(out)

    r = cli_run(*args, "--out", tmp_path / "whole")
    assert r.exit_code == 0, r.output
    whole = _all_rows(tmp_path / "whole")

    assert resumed.height == whole.height == 80
    assert resumed["id"].n_unique() == 80
    assert sorted(resumed["id"]) == sorted(whole["id"])
    # nothing stored before the kill was generated again: same texts, and the shards hold
    # each key exactly once
    texts = dict(zip(resumed["id"], resumed["messages"].list.last().struct.field("content")))
    assert all(texts[k] == rec["text"] for k, rec in before.items())
    all_keys = pl.concat([pl.read_parquet(p) for p in shards.glob("shard-*.parquet")])["key"]
    assert all_keys.len() == 80 and all_keys.n_unique() == 80
