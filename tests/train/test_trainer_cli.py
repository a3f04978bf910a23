"""`thresher train lora` end to end on the tiny model, and its bad-input errors."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from tests.conftest import invoke
from tests.train._trainer_helpers import make_rows, one_thread, write_rows  # noqa: F401 (autouse fixture)
from thresher.cli.main import cli


def _run(*args):
    return invoke("train", "lora", *args)


@pytest.fixture()
def data(tmp_path):
    return write_rows(tmp_path / "rows.jsonl", make_rows(40))


def test_lora_end_to_end(tmp_path, tiny_lm_dir, data):
    out = tmp_path / "run"
    r = _run(data, "--base", tiny_lm_dir, "--out", out, "--max-steps", 6, "--batch-size", 4, "--lr", 3e-3,
             "--val-fraction", 0.1, "--eval-every", 3, "--save-every", 3, "--merge", "--packing",
             "--max-length", 256)
    assert r.exit_code == 0, r.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["steps"] == 6 and len(stats["losses"]) == 6 and len(stats["val_losses"]) == 2
    assert stats["final_loss"] < stats["first_loss"]
    assert stats["packing"]["padding_fraction_packed"] <= stats["packing"]["padding_fraction_unpacked"]
    assert stats["export"]["max_logit_diff"] <= 1e-3
    assert (out / "loss_curves.png").stat().st_size > 1000
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3, 4, 5, 6]
    assert all(x["tokens_per_s"] > 0 for x in lines if "loss" in x)
    import polars as pl

    kept = pl.read_parquet(out / "kept.parquet")
    assert kept.height == 40 and set(kept["split"]) == {"train", "val"}
    # merged model: plain transformers, generation config stops at <|im_end|>
    from transformers import AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(out / "merged")
    gen = GenerationConfig.from_pretrained(out / "merged")
    eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    assert tok.convert_tokens_to_ids("<|im_end|>") in eos
    assert tok.chat_template
    # rerun: finished with the same inputs and config, reused
    r = _run(data, "--base", tiny_lm_dir, "--out", out, "--max-steps", 6, "--batch-size", 4, "--lr", 3e-3,
             "--val-fraction", 0.1, "--eval-every", 3, "--save-every", 3, "--merge", "--packing",
             "--max-length", 256)
    assert r.exit_code == 0 and "reusing" in r.output


def test_base_model_not_found(tmp_path, data):
    r = _run(data, "--base", tmp_path / "nope", "--out", tmp_path / "run")
    assert r.exit_code == 1
    assert "base model not found" in r.output and "Traceback" not in r.output


def test_no_chat_template(tmp_path, tiny_lm_dir, data):
    base = tmp_path / "notemplate"
    shutil.copytree(tiny_lm_dir, base)
    (base / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((base / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(cfg))
    r = _run(data, "--base", base, "--out", tmp_path / "run", "--max-steps", 1)
    assert r.exit_code == 1 and "no chat template" in r.output and "--chat-template" in r.output
    # giving one works
    tpl = tmp_path / "chatml.jinja"
    tpl.write_text((tiny_lm_dir / "chat_template.jinja").read_text() if (tiny_lm_dir / "chat_template.jinja").exists()
                   else json.loads((tiny_lm_dir / "tokenizer_config.json").read_text())["chat_template"])
    r = _run(data, "--base", base, "--out", tmp_path / "run", "--max-steps", 1, "--chat-template", tpl)
    assert r.exit_code == 0, r.output


def test_lint_failures_stop_training_unless_allowed(tmp_path, tiny_lm_dir):
    rows = make_rows(12)
    rows[3]["messages"] = rows[3]["messages"][:2]  # no assistant turn: nothing to train
    data = write_rows(tmp_path / "rows.jsonl", rows)
    r = _run(data, "--base", tiny_lm_dir, "--out", tmp_path / "run", "--max-steps", 1)
    assert r.exit_code == 1 and "fail the mask lint" in r.output and "row3" in r.output
    r = _run(data, "--base", tiny_lm_dir, "--out", tmp_path / "run", "--max-steps", 1, "--allow-lint-failures")
    assert r.exit_code == 0, r.output
    import polars as pl

    dropped = pl.read_parquet(tmp_path / "run" / "dropped.parquet")
    assert dropped["id"].to_list() == ["row3"] and "no_trainable_token" in dropped["drop_reason"][0]


def test_packing_with_attention_that_cannot_isolate(tmp_path, tiny_lm_dir, data):
    r = _run(data, "--base", tiny_lm_dir, "--out", tmp_path / "run", "--packing",
             "--attn-implementation", "flex_attention")
    assert r.exit_code == 1 and "--packing" in r.output and "flex_attention" in r.output


def test_config_problems_listed_together(tmp_path, tiny_lm_dir, data):
    r = _run(data, "--base", tiny_lm_dir, "--out", tmp_path / "run", "--lr", -1, "--batch-size", 0,
             "--patience", 2)
    assert r.exit_code == 1
    assert "lr" in r.output and "batch_size" in r.output and "patience" in r.output


def test_qlora_and_fsdp_need_cuda(tmp_path, tiny_lm_dir, data):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = _run(data, "--base", tiny_lm_dir, "--out", tmp_path / "run", "--qlora")
    assert r.exit_code == 1 and "qlora" in r.output and "CUDA" in r.output
    r = _run(data, "--base", tiny_lm_dir, "--out", tmp_path / "run", "--distributed", "fsdp", "--qlora")
    assert r.exit_code == 1 and "fsdp" in r.output and "qlora" in r.output


def test_fsdp_needs_torchrun(tmp_path, tiny_lm_dir, data):
    r = _run(data, "--base", tiny_lm_dir, "--out", tmp_path / "run", "--distributed", "fsdp")
    assert r.exit_code == 1
    assert r.output == "Error: distributed: fsdp runs under torchrun --nproc-per-node N (N >= 2)\n"


def test_train_on_last_and_truncate_reach_the_encoder(tmp_path, tiny_lm_dir, data):
    out = tmp_path / "run"
    r = _run(data, "--base", tiny_lm_dir, "--out", out, "--max-steps", 1, "--train-on", "last",
             "--overlong", "truncate", "--max-length", 120, "--allow-lint-failures")
    assert r.exit_code == 0, r.output
    stats = json.loads((out / "stats.json").read_text())
    # truncated rows are kept (listed as response_cut); rows whose last turn is cut away are dropped
    assert stats["lint"]["counts"].get("response_cut", 0) > 0
    assert stats["train_rows"] + stats["rows_dropped"] == 40 and stats["train_rows"] > 20
    # --train-on last trains fewer tokens than all turns
    r = _run(data, "--base", tiny_lm_dir, "--out", tmp_path / "all", "--max-steps", 1, "--overlong", "truncate",
             "--max-length", 120, "--allow-lint-failures")
    assert r.exit_code == 0, r.output
    all_stats = json.loads((tmp_path / "all" / "stats.json").read_text())
    assert stats["lint"]["trained_tokens"] < all_stats["lint"]["trained_tokens"]


def test_train_group_lists_and_runs_lint_masks(tmp_path, tiny_lm_dir, data):
    r = CliRunner().invoke(cli, ["train", "--help"])
    assert r.exit_code == 0 and "lora" in r.output and "lint-masks" in r.output
    r = CliRunner().invoke(cli, ["train", "lint-masks", str(data), "--base", str(tiny_lm_dir), "--max-length", "256"])
    assert r.exit_code == 0, r.output
    assert "trainable" in r.output
