"""Acceptance: LoRA of the real SmolLM2-135M-Instruct on a few hundred real rows (chatterbot
corpus) on CPU; the loss goes down and the merged model loads with plain transformers and
stops at the end of its turn."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.train._trainer_helpers import one_thread, write_rows  # noqa: F401 (autouse fixture)
from thresher.cli.main import cli


def _chatterbot_rows(n: int) -> list[dict]:
    import yaml

    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or spec.origin is None:
        pytest.skip("chatterbot-corpus is not installed (pip install thresher[data])")
    rows = []
    for f in sorted((Path(spec.origin).parent / "data" / "english").glob("*.yml")):
        for conv in yaml.safe_load(f.read_text(encoding="utf-8")).get("conversations", []):
            if len(conv) >= 2 and all(isinstance(x, str) and x.strip() for x in conv[:2]):
                rows.append({"id": f"{f.stem}-{len(rows)}", "category": f.stem, "source": "chatterbot",
                             "messages": [{"role": "system", "content": "You are a friendly assistant."},
                                          {"role": "user", "content": conv[0]},
                                          {"role": "assistant", "content": conv[1]}]})
    return rows[:n]


@pytest.mark.slow
def test_smollm2_lora_loss_down_merged_stops_at_end_of_turn(tmp_path, smollm2_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = write_rows(tmp_path / "rows.jsonl", _chatterbot_rows(300))
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["train", "lora", str(data), "--base", str(smollm2_dir), "--out", str(out),
                                 "--max-steps", "6", "--batch-size", "2", "--packing", "--max-length", "256",
                                 "--lr", "1e-3", "--merge", "--threads", "1"])
    assert r.exit_code == 0, r.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["lint"]["rows"] == 300 and stats["train_rows"] >= 290
    losses = [x for _, x in stats["losses"]]
    assert len(losses) == 6 and sum(losses[-3:]) / 3 < 0.8 * losses[0], losses

    tok = AutoTokenizer.from_pretrained(out / "merged")
    model = AutoModelForCausalLM.from_pretrained(out / "merged", dtype=torch.float32)
    eos = model.generation_config.eos_token_id
    eos = eos if isinstance(eos, list) else [eos]
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert im_end in eos
    prompt = tok.apply_chat_template([{"role": "system", "content": "You are a friendly assistant."},
                                      {"role": "user", "content": "What is AI?"}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        gen = model.generate(**prompt, max_new_tokens=60, do_sample=False)
    new = gen[0, prompt["input_ids"].shape[1]:].tolist()
    assert len(new) < 60 and new[-1] in eos, tok.decode(new)
    assert tok.decode(new, skip_special_tokens=True).strip()
