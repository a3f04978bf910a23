"""The generate stage through the CLI and the recipe-facing ``run`` (tiny real model)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from thresher.distill.backends import Completion
from thresher.distill.stage import Config, run
from thresher.io import read_table

from .conftest import PROMPTS, write_prompts


def _gen(cli_run, inp, out, *extra):
    r = cli_run("distill", "generate", inp, "--out", out, *extra)
    assert r.exit_code == 0, r.output
    return r


def test_generate_rows_valid_and_resumable(cli_run, tmp_path, tiny_lm_dir, prompts_file):
    out = tmp_path / "run"
    base = ("--teacher", tiny_lm_dir, "-n", "2", "--max-tokens", "8", "--batch-size", "3")
    r = _gen(cli_run, prompts_file, out, *base)
    assert "16 samples for 8 prompts, " in r.output and "reused" not in r.output
    kept = read_table(out / "kept.parquet")  # the core reader validates the rows
    assert kept.height == 16 and kept["id"].n_unique() == 16
    assert sorted(set(kept["sample_index"].to_list())) == [0, 1]
    assert kept.group_by("parent_id").len()["len"].to_list() == [2] * 8
    row = kept.row(0, named=True)
    assert row["messages"][0] == {"role": "user", "content": PROMPTS[0]}
    assert row["messages"][-1]["role"] == "assistant"
    assert row["category"] == "general"
    assert row["teacher"].startswith(str(tiny_lm_dir)) and "@" in row["teacher"]
    gp = json.loads(row["gen_params"])
    assert gp["n"] == 2 and gp["max_tokens"] == 8 and gp["seed"] == 0 and gp["backend"] == "transformers"
    assert set(kept["finish_reason"].to_list()) <= {"stop", "length"}
    assert (kept["completion_tokens"] <= 8).all() and (kept["prompt_tokens"] > 0).all()
    stats = json.loads((out / "stats.json").read_text())
    assert stats["prompts"] == 8 and stats["generated"] == 16 and stats["generated_tokens"] > 0
    assert sum(stats["completion_tokens"]["histogram"]["counts"]) == 16
    assert stats["tokens_per_second"] > 0 and stats["backend"] == "transformers"
    shards = sorted((out / "shards").glob("shard-*.parquet"))
    assert len(shards) == 3  # 8 prompts in batches of 3, one shard per batch

    # same command: the finished stage is reused as is
    r = _gen(cli_run, prompts_file, out, *base)
    assert "already finished" in r.output

    # more samples: only the new sample index is generated
    r = _gen(cli_run, prompts_file, out, "--teacher", tiny_lm_dir, "-n", "3", "--max-tokens", "8")
    assert "24 samples for 8 prompts (16 reused, 8 generated)" in r.output
    kept3 = read_table(out / "kept.parquet")
    old = kept.select("id", pl.col("messages").alias("m0"))
    joined = kept3.join(old, on="id")
    assert joined.height == 16 and (joined["messages"] == joined["m0"]).all()  # nothing regenerated

    # a changed sampling parameter changes every key: all regenerated, nothing reused
    r = _gen(cli_run, prompts_file, out, "--teacher", tiny_lm_dir, "-n", "2", "--max-tokens", "6")
    assert "16 samples for 8 prompts, " in r.output and "reused" not in r.output  # not "(0 reused, ...)"
    assert set(read_table(out / "kept.parquet")["id"]).isdisjoint(set(kept["id"]))

    # back to the first settings with --force: every sample comes from the shards
    r = _gen(cli_run, prompts_file, out, *base, "--force")
    assert "(16 reused, 0 generated)" in r.output
    assert sorted(read_table(out / "kept.parquet")["id"]) == sorted(kept["id"])


def test_system_prompt_and_multi_turn(cli_run, tmp_path, tiny_lm_dir):
    inp = tmp_path / "p.jsonl"
    rows = [{"messages": [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"},
                          {"role": "user", "content": "three"}]},
            {"messages": [{"role": "system", "content": "own system"}, {"role": "user", "content": "q"},
                          {"role": "assistant", "content": "old answer"}]}]
    inp.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _gen(cli_run, inp, tmp_path / "o", "--teacher", tiny_lm_dir, "--max-tokens", "4", "--system", "Be brief.")
    kept = read_table(tmp_path / "o" / "kept.parquet")
    first = kept.filter(pl.col("parent_id") == kept["parent_id"][0]).row(0, named=True)["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user", "assistant"]
    assert first[0]["content"] == "Be brief."
    second = kept.row(1, named=True)["messages"]
    # a final assistant turn is replaced by the teacher's answer; an own system prompt stays
    assert [m["role"] for m in second] == ["system", "user", "assistant"]
    assert second[0]["content"] == "own system" and second[2]["content"] != "old answer"


class ScriptedBackend:
    """Stands in for a reasoning model to test the stage's own row logic."""

    name = "transformers"
    model = "scripted"
    revision = "r1"
    chat_template = "t"
    batch_size = 2

    def __init__(self, texts):
        self.texts = texts
        self.calls = 0

    def generate(self, conversations, *, n, params):
        self.calls += 1
        from thresher.distill.backends.base import make_completion

        return [[make_completion(self.texts[j % len(self.texts)], finish_reason="stop", prompt_tokens=3,
                                 completion_tokens=5, params=params) for j in range(n)] for _ in conversations]

    def close(self):
        pass


def test_reasoning_keep_strip_and_empty_dropped(tmp_path):
    inp = write_prompts(tmp_path / "p.jsonl", ["a", "b", "c"])
    texts = ["<think>because</think>Answer.", "<think>never finished"]
    be = ScriptedBackend(texts)
    res = run([inp], tmp_path / "keep", Config(n=2), backend_factory=lambda *a, **k: be)
    kept = read_table(res.kept_path)
    dropped = pl.read_parquet(res.dropped_path)
    assert kept.height == 3 and dropped.height == 3
    assert kept["reasoning"].to_list() == ["because"] * 3
    assert kept["messages"].list.last().struct.field("content").to_list() == ["Answer."] * 3
    assert set(dropped["drop_reason"]) == {"empty response"} and set(dropped["drop_stage"]) == {"generate"}
    assert res.stats["reused"] == 0 and res.stats["generated"] == 6 and be.calls == 2  # batch_size 2

    res = run([inp], tmp_path / "strip", Config(n=2, reasoning="strip"),
              backend_factory=lambda *a, **k: ScriptedBackend(texts))
    assert "reasoning" not in read_table(res.kept_path).columns


def test_drop_truncated(tmp_path):
    inp = write_prompts(tmp_path / "p.jsonl", ["a", "b"])

    class Cut(ScriptedBackend):
        def generate(self, conversations, *, n, params):
            return [[Completion("partial", None, "length", 3, params.max_tokens)] for _ in conversations]

    res = run([inp], tmp_path / "o", Config(drop_truncated=True), backend_factory=lambda *a, **k: Cut([]))
    assert res.stats["rows_out"] == 0
    assert set(pl.read_parquet(res.dropped_path)["drop_reason"]) == {"truncated at max_tokens"}


def test_progress_shows_prompts_and_tokens_per_second(cli_run, tmp_path, tiny_lm_dir, prompts_file):
    r = cli_run("distill", "generate", prompts_file, "--out", tmp_path / "o", "--teacher", tiny_lm_dir,
                "--max-tokens", "4", env={"THRESHER_PROGRESS": "1"})
    assert r.exit_code == 0, r.output
    assert "generate" in r.output and "8/8" in r.output and "tok/s" in r.output and "prompts" in r.output


@pytest.mark.slow
def test_default_teacher_smollm2_end_to_end(cli_run, tmp_path, smollm2_dir):
    """The acceptance command: no --teacher, the embedded SmolLM2, n samples per prompt."""
    inp = write_prompts(tmp_path / "p.jsonl", ["What is the capital of France?", "Name a colour."])
    r = cli_run("distill", "generate", inp, "--out", tmp_path / "x", "-n", "2", "--max-tokens", "24",
                "--threads", "1")
    assert r.exit_code == 0, r.output
    kept = read_table(tmp_path / "x" / "kept.parquet")
    assert kept.height == 4
    assert set(kept["teacher"].str.split("@").list.first()) == {"SmolLM2-135M-Instruct"}
    answers = kept["messages"].list.last().struct.field("content")
    assert "paris" in " ".join(answers[:2]).lower()
