"""End to end with the real stages (slow): the reduced quickstart, and killing `thresher run`
with real signals in the middle of generation and of training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
THRESHER = [sys.executable, "-m", "thresher.cli.main"]

#: the quickstart made small enough for CI (fewer prompts, samples, tokens and steps)
REDUCED = [
    "inputs[0].limit=12", "holdout=3", "generate.n=2", "generate.max_tokens=16",
    "train.max_steps=2", "train.eval_every=1", "train.save_every=1", "eval.max_tokens=12",
    "filter.drop_truncated=false", "filter.min_scores={}",  # 16 tokens: keep rows for the 2 steps
]
SET_REDUCED = [arg for s in REDUCED for arg in ("--set", s)]


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", THRESHER_PROGRESS="0", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(args, timeout=900):
    return subprocess.run([*THRESHER, *args], capture_output=True, text=True, timeout=timeout, env=_env(), cwd=ROOT, check=False)


@pytest.mark.slow
def test_reduced_quickstart_end_to_end(tmp_path):
    out = tmp_path / "qs"
    t0 = time.monotonic()
    res = _run(["run", "recipes/quickstart.yaml", "--out", str(out), *SET_REDUCED])
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and [s["stage"] for s in summary["stages"]] == [
        "inputs", "generate", "score", "filter", "dedup", "decontam", "mix", "train", "eval", "report"]
    assert Path(summary["adapter"], "adapter_config.json").exists()
    final = pl.read_parquet(summary["dataset"])
    assert final.height > 0 and final["category"].n_unique() > 1 and "score_loglik" in final.columns
    md = (out / "report.md").read_text()
    for section in ("## Funnel", "## Score distributions", "## Duplicates", "## Contamination", "## Category mix",
                    "## Training", "## Evaluation on held-out prompts", "## Label-bias indicators"):
        assert section in md, section
    payoff = summary["eval"]
    assert set(payoff["means"]) == {"base", "curated", "random"}, payoff
    assert all(isinstance(m["refnll"], float) for m in payoff["means"].values()), payoff
    assert payoff["verdict"].startswith("On 'all' over 3 held-out prompts, the curated student ")
    assert payoff["verdict"] in res.stdout
    assert "report.md" in res.stdout and "adapter" in res.stdout
    print(f"reduced quickstart: {time.monotonic() - t0:.0f} s, payoff {payoff}")
    # a second run reuses every stage
    res = _run(["run", "recipes/quickstart.yaml", "--out", str(out), *SET_REDUCED])
    assert res.returncode == 0
    assert {s["status"] for s in json.loads((out / "summary.json").read_text())["stages"]} == {"reused"}


def _kill_recipe(tiny: Path) -> dict:
    """Tiny models, so that a run takes seconds; batch 1 keeps sampling per prompt."""
    return {
        "name": "kill",
        "seed": 1,
        "inputs": [{"chatterbot": "english", "categories": ["food", "science", "history", "sports"], "limit": 40}],
        "stages": [
            {"generate": {"teacher": str(tiny), "backend": "transformers", "n": 2, "temperature": 1.0,
                          "max_tokens": 24, "batch_size": 1}},
            {"score": {"scorers": [f"loglik:{tiny}"], "max_length": 128}},
            {"filter": {"best_of": 1, "best_by": "score_loglik", "drop_truncated": False}},
            {"dedup": {"on": "response", "threshold": 0.9, "keep_by": "score_loglik"}},
            {"train": {"base": str(tiny), "max_steps": 300, "batch_size": 2, "max_length": 128, "save_every": 3,
                       "allow_lint_failures": True}},
            {"report": {}},
        ],
    }


def _wait_for(proc, cond, what, timeout=600):
    t0 = time.monotonic()
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before {what}: {proc.stderr.read()[-3000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _shard_rows(folder: Path) -> dict[str, str]:
    rows = {}
    for f in sorted((folder / "shards").glob("shard-*")):
        if f.suffix == ".parquet":
            for r in pl.read_parquet(f).select("key", "text").iter_rows():
                rows[r[0]] = r[1]
        elif f.suffix == ".jsonl":
            for line in f.read_text().splitlines():
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                rows[r["key"]] = r["text"]
    return rows


@pytest.mark.slow
def test_kill_mid_generation_and_mid_training_then_rerun(tmp_path, tiny_lm_dir):
    recipe = tmp_path / "kill.yaml"
    recipe.write_text(yaml.safe_dump(_kill_recipe(tiny_lm_dir)))
    # the uninterrupted reference run
    ref = tmp_path / "ref"
    res = _run(["run", str(recipe), "--out", str(ref)])
    assert res.returncode == 0, res.stderr[-3000:]
    ref_ids = sorted(pl.read_parquet(ref / "04-dedup/kept.parquet")["id"].to_list())

    out = tmp_path / "run"
    args = [*THRESHER, "run", str(recipe), "--out", str(out)]
    gen = out / "01-generate"
    # 1. SIGKILL in the middle of generation (some shards written, the stage not finished)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    _wait_for(proc, lambda: len(_shard_rows(gen)) >= 10, "generation shards")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    before = _shard_rows(gen)
    assert not (gen / "kept.parquet").exists(), "killed too late: generation had finished"
    assert 10 <= len(before) < 80
    # 2. rerun; SIGTERM in the middle of training (a checkpoint written, training not finished)
    ckpt = out / "05-train/checkpoints"
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    _wait_for(proc, lambda: any(ckpt.glob("step-*")), "a training checkpoint")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0 and not (out / "05-train/kept.parquet").exists(), "killed too late: training finished"
    # 3. rerun to the end
    res = subprocess.run(args, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=900, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    log = " ".join(res.stderr.split())
    assert "train: resuming from" in log, log[-3000:]  # training continued from its checkpoint
    stats = json.loads((gen / "stats.json").read_text())
    assert stats["reused"] >= len(before) and stats["reused"] + stats["generated"] == stats["samples"] == 80
    final_gen = pl.concat([pl.read_parquet(gen / "kept.parquet").select("id"),
                           pl.read_parquet(gen / "dropped.parquet").select("id")])
    assert final_gen["id"].n_unique() == final_gen.height == 80, final_gen.height  # no duplicates
    after = _shard_rows(gen)
    assert all(after[k] == v for k, v in before.items()), "a finished row was regenerated"
    assert sorted(pl.read_parquet(out / "04-dedup/kept.parquet")["id"].to_list()) == ref_ids
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["adapter"]
