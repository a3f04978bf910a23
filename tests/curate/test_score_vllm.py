"""Reward scoring through vLLM's pooling runner matches the transformers path (needs vLLM: runs
in the separate vLLM environment; a CPU build of vLLM is enough)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_vllm_reward_engine_matches_transformers(tiny_reward_dir):
    pytest.importorskip("vllm")
    from thresher.curate.score.reward import RewardScorer

    convs = [
        [{"role": "user", "content": "What is the capital of France? " * (i + 1)},
         {"role": "assistant", "content": "Paris is the capital. " * (3 * i + 1)}]
        for i in range(6)
    ]
    ref = RewardScorer(str(tiny_reward_dir), engine="transformers", device="cpu",
                       dtype="float32", max_length=256).score(convs)
    via = RewardScorer(str(tiny_reward_dir), engine="vllm", device="cpu", dtype="float32",
                       max_length=256)
    assert "engine=vllm" in via.identity
    got = via.score(convs)
    assert all(r.error is None for r in got)
    assert [r.score for r in got] == pytest.approx([r.score for r in ref], abs=1e-3)
