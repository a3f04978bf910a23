"""Stage-folder safety (issue 15): atomic replacement under kills, damaged results, --out checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from thresher.cli.main import cli
from thresher.stage_folder import damage, read_manifest, recover

POINTS = ("kept", "dropped", "stats", "staged", "carried", "retired", "swapped")
ROWS = [("What is the capital of France?", "Paris."),
        ("Name a prime number please.", "Seven is a prime number, divisible only by one and itself."),
        ("Write one sentence about the sea.", "The sea stretches blue and restless to the far horizon."),
        ("How many legs does a spider have?", "Eight.")]


def _data(tmp_path: Path) -> Path:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                    {"role": "assistant", "content": a}]}) + "\n"
                           for q, a in ROWS))
    return src


def _state(out: Path) -> tuple[int, int]:
    """(kept, dropped) of a complete folder; fails when the result set is mixed."""
    recover(out)
    m = read_manifest(out)
    assert m and m["status"] == "done"
    assert damage(out) is None
    stats = json.loads((out / "stats.json").read_text())
    kept, dropped = pl.read_parquet(out / "kept.parquet"), pl.read_parquet(out / "dropped.parquet")
    assert (stats["rows_out"], stats["rows_dropped"]) == (kept.height, dropped.height)
    assert kept.height + dropped.height == stats["rows_in"] == 4
    assert not any(p.name.startswith(f".{out.name}.") for p in out.parent.iterdir())
    return kept.height, dropped.height


def _filter(src: Path, out: Path, min_chars: int, kill_at: str | None = None) -> int:
    env = {**os.environ, "THRESHER_PROGRESS": "0"}
    env.pop("THRESHER_TEST_KILL_AT", None)
    if kill_at:
        env["THRESHER_TEST_KILL_AT"] = kill_at
    code = ("import sys; from pathlib import Path; from thresher.curate.filter.stage import Config, run; "
            "run([Path(sys.argv[1])], Path(sys.argv[2]), Config(min_chars=int(sys.argv[3])))")
    return subprocess.run([sys.executable, "-c", code, str(src), str(out), str(min_chars)], env=env,
                          capture_output=True).returncode


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_a_kill_during_a_recompute_leaves_the_old_or_the_new_result(point, tmp_path):
    src, out = _data(tmp_path), tmp_path / "f"
    assert _filter(src, out, 0) == 0
    old = _state(out)
    (out / "notes.txt").write_text("state a stage keeps beside its results")
    assert _filter(src, out, 20, kill_at=point) == -9  # SIGKILL at that point of the swap
    got = _state(out)
    assert got == old if point in ("kept", "dropped", "stats") else got == (2, 2)
    assert (out / "notes.txt").read_text().startswith("state")  # carried over either way
    assert _filter(src, out, 20) == 0 and _state(out) == (2, 2)


@pytest.mark.parametrize("point", POINTS)
def test_an_error_at_any_point_of_the_swap_is_recovered(point, tmp_path, monkeypatch):
    import thresher.stage_folder as sf
    from thresher.curate.filter.stage import Config, run

    src, out = _data(tmp_path), tmp_path / "f"
    run([src], out, Config())

    def die(name: str) -> None:
        if name == point:
            raise KeyboardInterrupt

    monkeypatch.setattr(sf, "kill_point", die)
    monkeypatch.setattr("thresher.stage.kill_point", die)
    with pytest.raises(KeyboardInterrupt):
        run([src], out, Config(min_chars=20))
    assert _state(out) in ((4, 0), (2, 2))


def test_a_truncated_kept_parquet_is_named_and_recomputed(tmp_path):
    src, out = _data(tmp_path), tmp_path / "f"
    res = CliRunner().invoke(cli, ["curate", "filter", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    kept = out / "kept.parquet"
    size = kept.stat().st_size
    kept.write_bytes(kept.read_bytes()[: size // 2])
    assert damage(out) == f"kept.parquet is damaged ({size // 2} bytes, the manifest says {size})"
    res = CliRunner().invoke(cli, ["curate", "filter", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "kept.parquet is damaged" in res.output and "recomputing" in res.output
    assert pl.read_parquet(kept).height == 4 and damage(out) is None


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_out_at_another_stages_folder_is_refused(tmp_path):
    src = _data(tmp_path)
    assert _invoke("curate", "dedup", src, "--out", tmp_path / "d").exit_code == 0
    before = (tmp_path / "d" / "kept.parquet").read_bytes()
    res = _invoke("curate", "filter", tmp_path / "d" / "kept.parquet", "--out", tmp_path / "d")
    assert res.exit_code == 1
    assert res.output == (f"Error: {tmp_path / 'd'}: holds the results of stage 'dedup', not filter; "
                          "choose another --out, or pass --force to replace it\n")
    assert (tmp_path / "d" / "kept.parquet").read_bytes() == before
    forced = _invoke("curate", "filter", tmp_path / "d" / "kept.parquet", "--out", tmp_path / "d", "--force")
    assert forced.exit_code == 0, forced.output


def test_out_at_the_inputs_folder_or_a_recipe_run_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    src = _data(data)
    res = _invoke("curate", "filter", src, "--out", data)
    assert res.exit_code == 1
    assert res.output == (f"Error: {data}: holds this stage's input {src}; "
                          "choose another --out, or pass --force to replace it\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "recipe.yaml").write_text("name: other\n")
    res = _invoke("curate", "filter", src, "--out", run_dir)
    assert res.exit_code == 1 and res.output == (
        f"Error: {run_dir}: is the run folder of a recipe; choose another --out, or pass --force to replace it\n")


def test_a_recipe_run_into_another_recipes_run_folder_is_refused(tmp_path):
    from thresher.errors import ThresherError
    from thresher.stage_folder import check_run_dir

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "recipe.yaml").write_text("name: other\n")
    with pytest.raises(ThresherError, match="is the run folder of recipe 'other', not 'quickstart'"):
        check_run_dir(run_dir, "quickstart")
    check_run_dir(run_dir, "other")  # its own run folder: fine
