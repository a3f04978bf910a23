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

from tests.conftest import invoke as _invoke
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


# ---------------------------------------------------------------- issue 26: the user's own files


HINT = "choose another --out, or pass --force to replace it"


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_out_dot_and_dotdot_are_refused_and_nothing_is_moved(tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    (proj / "sub").mkdir(parents=True)
    src = _data(proj)
    (proj / "-x").write_text("a file whose name starts with a dash")
    monkeypatch.chdir(proj / "sub")
    (proj / "sub" / "notes.txt").write_text("mine")
    before = _tree(tmp_path)
    res = _invoke("curate", "filter", src, "--out", ".")
    assert res.exit_code == 1
    assert res.output == f"Error: .: is not empty and is not a thresher stage folder (it holds notes.txt); {HINT}\n"
    res = _invoke("curate", "filter", src, "--out", "..")
    assert res.output == f"Error: ..: holds this stage's input {src}; {HINT}\n"
    (proj / "in.jsonl").rename(tmp_path / "in.jsonl")
    res = _invoke("curate", "filter", tmp_path / "in.jsonl", "--out", "..")
    assert res.output == (f"Error: ..: is not empty and is not a thresher stage folder (it holds -x, sub); {HINT}\n")
    (tmp_path / "in.jsonl").rename(proj / "in.jsonl")
    assert _tree(tmp_path) == before  # no hidden folder, no manifest, nothing moved


def test_out_a_user_folder_with_its_own_manifest_is_refused(tmp_path):
    src, web = _data(tmp_path), tmp_path / "webapp"
    web.mkdir()
    (web / "manifest.json").write_text('{"name": "my web app", "icons": []}')
    (web / "stats.json").write_text('{"visits": 3}')
    before = _tree(web)
    res = _invoke("curate", "filter", src, "--out", web)
    assert res.exit_code == 1
    assert res.output == (f"Error: {web}: is not empty and is not a thresher stage folder (it holds "
                          f"manifest.json, stats.json); {HINT}\n")
    assert _tree(web) == before


def test_out_a_symlink_writes_through_it_and_keeps_the_targets_files(tmp_path):
    src, tgt, lnk = _data(tmp_path), tmp_path / "tgt", tmp_path / "lnk"
    tgt.mkdir()
    lnk.symlink_to(tgt)
    assert _invoke("curate", "filter", src, "--out", lnk).exit_code == 0
    assert _invoke("curate", "filter", src, "--out", lnk, "--min-chars", "20").exit_code == 0  # a recompute
    assert lnk.is_symlink() and _state(tgt) == (2, 2)
    assert read_manifest(tgt)["kind"] == "thresher-stage"  # the mark that thresher made the folder
    assert sorted(p.name for p in tgt.iterdir()) == ["dropped.parquet", "kept.parquet", "manifest.json", "stats.json"]
    (tgt / "important.txt").write_text("the user's")
    assert _invoke("curate", "filter", src, "--out", lnk, "--force").exit_code == 0
    assert (tgt / "important.txt").read_text() == "the user's" and lnk.is_symlink()
    other = tmp_path / "other"
    other.mkdir()
    (other / "important.txt").write_text("the user's")
    lnk2 = tmp_path / "lnk2"
    lnk2.symlink_to(other)
    res = _invoke("curate", "filter", src, "--out", lnk2)
    assert res.output == (f"Error: {lnk2}: is not empty and is not a thresher stage folder (it holds "
                          f"important.txt); {HINT}\n")
    assert [p.name for p in other.iterdir()] == ["important.txt"]


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


@pytest.fixture
def mounted(tmp_path):
    """A tmpfs mount point (a Docker volume stand-in); skipped where mounting is not allowed."""
    where, done = tmp_path / "vol", []

    def mount(size: str = "4m") -> Path:
        if not _mount_tmpfs(where, size):
            pytest.skip("mounting a tmpfs needs root")
        done.append(where)
        return where

    yield mount
    for w in done:
        subprocess.run(["umount", "-l", str(w)], capture_output=True)


def test_out_a_mount_point_on_another_filesystem_works(tmp_path, mounted):
    src = _data(tmp_path)
    vol = mounted()
    assert _invoke("curate", "filter", src, "--out", vol).exit_code == 0
    res = _invoke("curate", "filter", src, "--out", vol, "--min-chars", "20")
    assert res.exit_code == 0, res.output
    assert _state(vol) == (2, 2) and os.path.ismount(vol)


def test_a_full_disk_names_the_folder_cleans_up_and_a_rerun_completes(tmp_path, mounted, monkeypatch):
    src = tmp_path / "big.jsonl"
    rng = __import__("random").Random(0)
    src.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"q{i}"},
        {"role": "assistant", "content": "".join(rng.choice("abcdefgh ") for _ in range(300))}]}) + "\n"
        for i in range(2000)))
    vol = mounted("256k")
    res = _invoke("curate", "filter", src, "--out", vol)
    assert res.exit_code == 1
    assert res.output == (f"Error: {vol}: no space left on device while writing the stage's results; the "
                          "previous result is unchanged (free some space and rerun)\n")
    assert sorted(os.listdir(vol)) == ["manifest.json"]  # the running manifest only: no staging, no .tmp
    subprocess.run(["mount", "-o", "remount,size=16m", str(vol)], check=True)
    assert _invoke("curate", "filter", src, "--out", vol).exit_code == 0
    assert pl.read_parquet(vol / "kept.parquet").height == 2000 and damage(vol) is None


def test_a_full_disk_simulated_in_the_writer(tmp_path, monkeypatch):
    import thresher.io.writers as writers

    src, out = _data(tmp_path), tmp_path / "f"
    real = writers.write_table

    def full(df, path, *a, **k):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(writers, "write_table", full)
    res = _invoke("curate", "filter", src, "--out", out)
    assert res.output == (f"Error: {out}: no space left on device while writing the stage's results; the "
                          "previous result is unchanged (free some space and rerun)\n")
    assert sorted(os.listdir(out)) == ["manifest.json"]
    monkeypatch.setattr(writers, "write_table", real)
    assert _invoke("curate", "filter", src, "--out", out).exit_code == 0 and _state(out) == (4, 0)


def test_the_next_stage_repairs_a_folder_left_in_the_swap_window(tmp_path):
    src, out = _data(tmp_path), tmp_path / "f"
    assert _filter(src, out, 0) == 0
    (out / ".kept.parquet.a1b2c3d4.tmp").write_bytes(b"half a file")  # a writer killed mid-file
    assert _filter(src, out, 20, kill_at="retired") == -9  # results moved, the manifest not yet
    assert (out / ".thresher-new" / "manifest.json").exists()
    res = _invoke("curate", "filter", src, "--out", out, "--min-chars", "20")
    assert res.exit_code == 0, res.output
    assert "already finished" in res.output  # repaired first: the committed result is reused
    assert _state(out) == (2, 2)
    assert sorted(os.listdir(out)) == ["dropped.parquet", "kept.parquet", "manifest.json", "stats.json"]


HOLD = ("import sys, time; from thresher.stage_folder import acquire; acquire(sys.argv[1]); "
        "print('held', flush=True); time.sleep(float(sys.argv[2]))")


def _holder_process(folder: Path, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_writer_names_the_holder_and_stops_or_waits(tmp_path):
    import socket
    import time

    src, out = _data(tmp_path), tmp_path / "f"
    holder = _holder_process(out, 3)
    try:
        info = json.loads((out / ".thresher.lock").read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
        res = _invoke("curate", "filter", src, "--out", out)
        assert res.exit_code == 1
        assert res.output == (f"Error: {out}: this stage folder is in use by pid {holder.pid} on "
                              f"{socket.gethostname()}, since {since}, {info['command']}; wait for it to "
                              "finish, or rerun with --wait\n")
        assert info["pid"] == holder.pid
        t0 = time.monotonic()
        res = _invoke("curate", "filter", src, "--out", out, "--wait")
        assert res.exit_code == 0, res.output
        assert time.monotonic() - t0 > 1 and _state(out) == (4, 0)
        assert not (out / ".thresher.lock").exists()  # released: the folder holds only its results
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    src, out = _data(tmp_path), tmp_path / "f"
    holder = _holder_process(out, 60)
    holder.kill()
    holder.wait()
    assert (out / ".thresher.lock").exists()
    assert _invoke("curate", "filter", src, "--out", out).exit_code == 0 and _state(out) == (4, 0)
