"""Reward scoring through vLLM's pooling runner matches the transformers path (needs vLLM: runs
in the separate vLLM environment; a CPU build of vLLM is enough)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory, tiny_reward_dir):
    """The tiny reward model reshaped to head_dim 64 (vLLM's CPU attention needs >= 32)."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    out = tmp_path_factory.mktemp("rm_hd64")
    for f in tiny_reward_dir.iterdir():
        if not f.name.startswith(("config", "model")):
            shutil.copy(f, out / f.name)
    cfg = AutoConfig.from_pretrained(tiny_reward_dir)
    cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads = 128, 2, 2
    cfg.head_dim = 64
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(out)
    return out


def test_vllm_reward_engine_matches_transformers(rm_dir):
    pytest.importorskip("vllm")
    from thresher.curate.score.reward import RewardScorer

    convs = [
        [{"role": "user", "content": "What is the capital of France? " * (i + 1)},
         {"role": "assistant", "content": "Paris is the capital. " * (3 * i + 1)}]
        for i in range(6)
    ]
    ref = RewardScorer(str(rm_dir), engine="transformers", device="cpu",
                       dtype="float32", max_length=256).score(convs)
    via = RewardScorer(str(rm_dir), engine="vllm", device="cpu", dtype="float32",
                       max_length=256)
    assert "engine=vllm" in via.identity
    got = via.score(convs)
    assert all(r.error is None for r in got)
    assert [r.score for r in got] == pytest.approx([r.score for r in ref], abs=1e-3)
