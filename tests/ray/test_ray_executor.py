"""The Ray executor on a local 2-CPU cluster: same ids (and scores) as the local executor, a
one-line error without Ray, and a SIGKILLed driver's finished shards reused on the rerun."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from tests.curate._dedup_data import paragraphs
from thresher.cli.main import cli


def _conv(rid: str, user: str, answer: str, category: str) -> dict:
    return {"id": rid, "category": category,
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def _rows(n: int = 240) -> list[dict]:
    """Real paragraphs with exact copies, near copies (a few words changed), short answers."""
    rng = random.Random(0)
    paras = paragraphs()
    out = []
    for i in range(n):
        words = paras[i % len(paras)].split()
        for _ in range(rng.randint(0, 3) if i >= len(paras) else 0):
            words[rng.randrange(len(words))] = f"w{rng.randint(0, 99)}"
        answer = "ok" if i % 19 == 0 else " ".join(words)
        out.append(_conv(f"r{i:04d}", f"Explain topic {i % 90}.", answer, ("code", "chat", "math")[i % 3]))
    return out


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _ids(path: Path) -> list[str]:
    return pl.read_parquet(path)["id"].to_list()


@pytest.fixture
def data_recipe(tmp_path):
    rows = _write(tmp_path / "rows.jsonl", _rows())
    bench = _write(tmp_path / "bench.jsonl", [{"id": f"b{i}", "text": p} for i, p in enumerate(paragraphs()[3:5])])
    recipe = {
        "name": "ray-data", "seed": 0,
        "inputs": [{"path": str(rows)}],
        "stages": [
            {"filter": {"min_chars": 20}},
            {"dedup": {"threshold": 0.7, "max_bucket": 4}},
            {"decontam": {"against": [str(bench)], "n": 8}},
            {"mix": {"spec": {"categories": {"code": {"weight": 0.4}, "chat": {"weight": 0.3},
                                             "math": {"weight": 0.3}}}}},
        ],
    }
    path = tmp_path / "recipe.yaml"
    import yaml

    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.mark.slow
def test_data_recipe_keeps_the_same_ids_under_ray(tmp_path, data_recipe, ray_cluster):
    runner = CliRunner()
    local, ray_run = tmp_path / "local", tmp_path / "ray"
    r = runner.invoke(cli, ["run", str(data_recipe), "--out", str(local)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["run", str(data_recipe), "--out", str(ray_run), "--executor", "ray"])
    assert r.exit_code == 0, r.output
    folders = sorted(p.name for p in local.iterdir() if (p / "kept.parquet").exists())
    assert [f.split("-", 1)[1] for f in folders] == ["inputs", "filter", "dedup", "decontam", "mix"]
    for folder in folders:
        for name in ("kept.parquet", "dropped.parquet"):
            assert _ids(local / folder / name) == _ids(ray_run / folder / name), (folder, name)
        a = pl.read_parquet(local / folder / "dropped.parquet")
        b = pl.read_parquet(ray_run / folder / "dropped.parquet")
        if "drop_reason" in a.columns:
            assert a["drop_reason"].to_list() == b["drop_reason"].to_list(), folder
    stats = {f.split("-", 1)[1]: json.loads((ray_run / f / "stats.json").read_text()) for f in folders}
    assert stats["filter"]["executor"] == "ray" and stats["decontam"]["executor"] == "ray"
    assert stats["dedup"]["executor"] == "ray" and stats["dedup"]["near_duplicates"] > 0
    assert stats["decontam"]["rows_dropped"] > 0
    dedup = next(f for f in folders if f.endswith("dedup"))
    assert pl.read_parquet(local / dedup / "clusters.parquet").equals(
        pl.read_parquet(ray_run / dedup / "clusters.parquet"))


@pytest.mark.slow
def test_score_and_generate_match_local_under_ray(tmp_path, tiny_reward_dir, tiny_lm_dir, ray_cluster):
    src = _write(tmp_path / "rows.jsonl", _rows(60))
    runner = CliRunner()
    score = ["curate", "score", str(src), "-s", f"rm=reward:{tiny_reward_dir}", "--no-cache"]
    r = runner.invoke(cli, [*score, "--out", str(tmp_path / "s-local")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, [*score, "--out", str(tmp_path / "s-ray"), "--executor", "ray"])
    assert r.exit_code == 0, r.output
    a = pl.read_parquet(tmp_path / "s-local" / "kept.parquet")
    b = pl.read_parquet(tmp_path / "s-ray" / "kept.parquet")
    assert a["id"].to_list() == b["id"].to_list()
    assert (a["score_rm"] - b["score_rm"]).abs().max() < 1e-5
    assert json.loads((tmp_path / "s-ray" / "stats.json").read_text())["shards"] > 1

    prompts = _write(tmp_path / "prompts.jsonl", [{"id": f"p{i}", "prompt": f"Say something about {w}."}
                                                  for i, w in enumerate(["cats", "rain", "maps", "tea"])])
    gen = ["distill", "generate", str(prompts), "-t", str(tiny_lm_dir), "-b", "transformers",
           "--temperature", "0", "--max-tokens", "8", "-n", "2"]
    r = runner.invoke(cli, [*gen, "--out", str(tmp_path / "g-local")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, [*gen, "--out", str(tmp_path / "g-ray"), "--executor", "ray"])
    assert r.exit_code == 0, r.output
    a = pl.read_parquet(tmp_path / "g-local" / "kept.parquet")
    b = pl.read_parquet(tmp_path / "g-ray" / "kept.parquet")
    assert a.height == 8 and a["id"].to_list() == b["id"].to_list()
    assert a["messages"].to_list() == b["messages"].to_list()


def test_executor_ray_without_ray_is_one_line(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_ray(name, *args, **kw):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    src = _write(tmp_path / "rows.jsonl", _rows(5))
    r = CliRunner().invoke(cli, ["curate", "filter", str(src), "--out", str(tmp_path / "o"), "--executor", "ray"])
    assert r.exit_code == 1
    assert r.output == "Error: --executor ray needs Ray: pip install 'thresher[ray]'\n"


@pytest.mark.slow
def test_sigkill_of_the_driver_then_rerun_reuses_finished_shards(tmp_path, tiny_reward_dir, ray_cluster):
    src = _write(tmp_path / "rows.jsonl", _rows(160))
    out = tmp_path / "score"
    args = [sys.executable, "-m", "thresher.cli.main", "curate", "score", str(src), "-s",
            f"rm=reward:{tiny_reward_dir}", "--no-cache", "--out", str(out),
            "--executor", "ray", "--ray-address", ray_cluster]
    env = {**os.environ, "THRESHER_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    shards = out / "ray-shards"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if shards.exists() and any(p.name.endswith(".parquet") for p in shards.iterdir()):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (out / "kept.parquet").exists()
    finished = sorted(p.name for p in shards.iterdir() if p.name.startswith("part-") and p.suffix == ".parquet")
    assert finished
    mtimes = {n: (shards / n).stat().st_mtime_ns for n in finished}

    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"reusing {len(finished)} finished shards" in done.stderr
    assert all((shards / n).stat().st_mtime_ns == t for n, t in mtimes.items())  # not recomputed
    r = CliRunner().invoke(cli, ["curate", "score", str(src), "-s", f"rm=reward:{tiny_reward_dir}",
                                 "--no-cache", "--out", str(tmp_path / "local")])
    assert r.exit_code == 0, r.output
    a = pl.read_parquet(tmp_path / "local" / "kept.parquet")
    b = pl.read_parquet(out / "kept.parquet")
    assert a["id"].to_list() == b["id"].to_list()
    assert (a["score_rm"] - b["score_rm"]).abs().max() < 1e-5


def test_a_bad_model_under_ray_is_one_line(tmp_path):
    pytest.importorskip("ray")
    src = _write(tmp_path / "rows.jsonl", _rows(5))
    r = CliRunner().invoke(cli, ["curate", "score", str(src), "-s", f"reward:{tmp_path / 'nope'}",
                                 "--no-cache", "--out", str(tmp_path / "o"), "--executor", "ray"])
    assert r.exit_code == 1
    assert r.output == (f"Error: model '{tmp_path / 'nope'}' not found (not a model folder, a .gguf file "
                        "or a hub name 'org/name')\n")


def test_recipe_executor_key_is_validated(tmp_path, data_recipe):
    import yaml

    data = yaml.safe_load(data_recipe.read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**data, "executor": "spark"}, sort_keys=False))
    r = CliRunner().invoke(cli, ["recipe", "validate", str(bad)])
    assert r.exit_code == 1 and r.output == f"Error: {bad}: executor: must be one of 'local' | 'ray', got 'spark'\n"
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({**data, "executor": "ray"}, sort_keys=False))
    r = CliRunner().invoke(cli, ["recipe", "show", str(good)])
    assert r.exit_code == 0 and "executor: ray" in r.output


@pytest.mark.slow
def test_exact_verify_dedup_is_identical_under_ray(tmp_path, ray_cluster):
    import yaml

    rows = _write(tmp_path / "rows.jsonl", _rows())
    recipe = {"name": "ray-exact", "seed": 0, "inputs": [{"path": str(rows)}],
              "stages": [{"dedup": {"threshold": 0.7, "max_bucket": 4, "verify": "exact"}}]}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    runner = CliRunner()
    local, ray_run = tmp_path / "local", tmp_path / "ray"
    for out, extra in ((local, []), (ray_run, ["--executor", "ray"])):
        r = runner.invoke(cli, ["run", str(path), "--out", str(out), *extra])
        assert r.exit_code == 0, r.output
    dedup = next(p.name for p in local.iterdir() if p.name.endswith("dedup"))
    stats = json.loads((ray_run / dedup / "stats.json").read_text())
    assert stats["executor"] == "ray" and stats["verify"] == "exact" and stats["near_duplicates"] > 0
    for name in ("kept.parquet", "dropped.parquet", "clusters.parquet"):
        assert pl.read_parquet(local / dedup / name).equals(pl.read_parquet(ray_run / dedup / name)), name
