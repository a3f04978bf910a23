"""Outputs honour the umask like a plain open(): the atomic temp-file + rename must not keep
mkstemp's 0600 (another user or a vLLM container must be able to read kept.parquet, the
report and the adapter)."""

from __future__ import annotations

import contextlib
import json
import os
import stat

import pytest
from click.testing import CliRunner

from tests.recipe.conftest import fake_recipe
from thresher.cli.main import cli


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def _rows(path, n=6):
    path.write_text("".join(json.dumps({"id": f"r{i}", "messages": [
        {"role": "user", "content": f"question {i}?"},
        {"role": "assistant", "content": f"answer {i} " * (i + 1)}]}) + "\n" for i in range(n)))
    return path


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_convert_and_stage_outputs_follow_umask(tmp_path, mask):
    src = _rows(tmp_path / "in.jsonl")
    want = 0o666 & ~mask
    with umask(mask):
        for out in ("c.parquet", "c.jsonl", "c.json"):
            res = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / out)])
            assert res.exit_code == 0, res.output
            assert mode(tmp_path / out) == want, out
        res = CliRunner().invoke(cli, ["curate", "filter", str(src), "--min-chars", "20",
                                       "--out", str(tmp_path / "f")])
        assert res.exit_code == 0, res.output
    for name in ("kept.parquet", "dropped.parquet", "stats.json", "manifest.json"):
        assert mode(tmp_path / "f" / name) == want, name


def test_report_files_follow_umask(fake_stages, write_recipe, tmp_path):
    with umask(0o022):
        res = CliRunner().invoke(cli, ["run", str(write_recipe(fake_recipe())), "--out", str(tmp_path / "run")])
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(cli, ["report", str(tmp_path / "run"), "--out", str(tmp_path / "rep")])
        assert res.exit_code == 0, res.output
    for name in ("report.md", "report.html"):
        assert mode(tmp_path / "rep" / name) == 0o644, name


def test_adapter_files_follow_umask(tmp_path, tiny_lm_dir):
    from tests.train._trainer_helpers import make_rows, write_rows

    data = write_rows(tmp_path / "rows.jsonl", make_rows(8))
    with umask(0o022):
        res = CliRunner().invoke(cli, ["train", "lora", str(data), "--base", str(tiny_lm_dir), "--out",
                                       str(tmp_path / "t"), "--max-steps", "1", "--batch-size", "4"])
        assert res.exit_code == 0, res.output
    files = [p for p in (tmp_path / "t").rglob("*") if p.is_file()]
    assert any(p.name == "adapter_model.safetensors" for p in files)
    bad = [f"{p.relative_to(tmp_path)}: {oct(mode(p))}" for p in files if mode(p) != 0o644]
    assert not bad, bad
