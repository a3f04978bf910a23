"""Preference pairs from scored samples: ``thresher export RUN --format dpo|kto``; TRL trains on them."""

from __future__ import annotations

import polars as pl
import pytest
from click.testing import CliRunner

from thresher.cli.main import cli
from thresher.pairs import PairOptions, build_pairs


def _scored(run, k: int = 6):
    """A run folder whose score stage holds 3 samples per prompt with a reward and a verifier score."""
    from pathlib import Path

    rows = []
    for p in range(k):
        for s in range(3):
            rows.append({"id": f"p{p}-{s}", "parent_id": f"p{p}", "category": "math" if p % 2 else "chat",
                         "messages": [{"role": "user", "content": f"question {p}"},
                                      {"role": "assistant", "content": f"answer {s} to question {p}"}],
                         "score_reward": [0.1, 0.9, 0.5][s] if p != 0 else 0.5,  # prompt 0: a tie
                         "score_verify": [0.0, 1.0, 1.0][s] if p != 1 else 1.0})  # prompt 1: all pass
    folder = Path(run) / "02-score"
    folder.mkdir(parents=True)
    pl.DataFrame(rows).write_parquet(folder / "kept.parquet")
    return Path(run)


def test_best_worst_with_margin_and_verified(tmp_path):
    df = pl.read_parquet(_scored(tmp_path / "run") / "02-score" / "kept.parquet")
    rows, counts = build_pairs(df, PairOptions("dpo", score="reward"))
    assert counts == {"prompts": 6, "pairs": 5, "without_pair": 1, "rows": 5}  # the tie has no pair
    r = rows.row(0, named=True)
    assert r["prompt"] == [{"role": "user", "content": "question 1"}]
    assert r["chosen"][0]["content"] == "answer 1 to question 1" and r["rejected"][0]["content"].startswith("answer 0")
    assert build_pairs(df, PairOptions("dpo", score="reward", min_margin=0.85))[1]["pairs"] == 0
    rows, counts = build_pairs(df, PairOptions("dpo", verified="verify", score="reward"))
    assert counts["pairs"] == 5  # every prompt but 1 (all pass); prompt 0's rewards tie but verify splits it
    assert all(c[0]["content"].startswith("answer 1") for c in rows["chosen"])
    assert all(c[0]["content"].startswith("answer 0") for c in rows["rejected"])
    kto, counts = build_pairs(df, PairOptions("kto", score="score_reward"))
    assert kto.height == 10 and kto["label"].to_list()[:2] == [True, False]


def test_bad_options_are_one_line_errors(tmp_path):
    run = _scored(tmp_path / "run")
    res = CliRunner().invoke(cli, ["export", str(run), "--to", str(tmp_path / "o"), "--format", "dpo"])
    assert res.exit_code == 1 and res.output.strip() == \
        "Error: give --score NAME (score columns: score_reward, score_verify)"
    res = CliRunner().invoke(cli, ["export", str(run), "--to", str(tmp_path / "o"), "--format", "dpo",
                                   "--score", "nope"])
    assert res.exit_code == 1 and "no scored samples" in res.output


def test_dpo_export_loads_with_datasets_and_trains_one_trl_step(tmp_path, tiny_lm_dir):
    trl = pytest.importorskip("trl")
    import datasets
    import torch
    import transformers

    run = _scored(tmp_path / "run", k=8)
    out = tmp_path / "dpo"
    res = CliRunner().invoke(cli, ["export", str(run), "--to", str(out), "--format", "dpo", "--score", "reward",
                                   "--min-margin", "0.1"])
    assert res.exit_code == 0, res.output
    assert "exported 7 dpo pairs from 8 prompts" in res.output
    card = (out / "README.md").read_text()
    assert "## How pairs were chosen" in card and "highest `score_reward`" in card and "below 0.1" in card
    ds = datasets.load_dataset(str(out), split="train")
    assert set(ds.column_names) >= {"prompt", "chosen", "rejected"} and len(ds) == 7
    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_lm_dir))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_lm_dir))
    before = [p.detach().clone() for p in model.parameters()]
    args = trl.DPOConfig(output_dir=str(tmp_path / "trl"), max_steps=1, per_device_train_batch_size=2,
                         learning_rate=1e-2, report_to=[], logging_steps=1, save_strategy="no",
                         max_length=64, use_cpu=True)
    trainer = trl.DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    result = trainer.train()
    assert result.global_step == 1 and torch.isfinite(torch.tensor(result.training_loss))
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))
