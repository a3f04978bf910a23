"""thresher_segments: per-conversation causal attention of packed rows equals the dense mask."""

from __future__ import annotations

import random

import pytest
import torch

from tests.conftest import tiny_llama_config
from thresher.train.attention import plan_groups, register
from thresher.train.config import TrainConfig
from thresher.train.data import collate
from thresher.train.data.masks import Example
from thresher.train.loop import token_loss_sum

VOCAB = 97


def _examples(lengths: list[int], seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for m in lengths:
        ids = [rng.randrange(3, VOCAB) for _ in range(m)]
        out.append(Example(ids, [-100] * (m // 3) + ids[m // 3:]))
    return out


def _model(attn: str, dtype=torch.float32):
    from transformers import LlamaForCausalLM

    register()
    torch.manual_seed(0)
    cfg = tiny_llama_config(VOCAB, num_attention_heads=4, num_key_value_heads=2)
    cfg._attn_implementation = attn
    return LlamaForCausalLM(cfg).to(dtype)


def _loss_and_grads(model, batch):
    model.zero_grad()
    loss = token_loss_sum(model, batch)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# lengths chosen so that groups form (7, 9, 10 together; 3 and 40 alone) and one is length 1
ROWS = [[5, 40, 1], [9, 10, 7, 3]]


@pytest.mark.parametrize("kernel", ["matmul", "sdpa-flash"])
def test_segments_equal_dense_mask_loss_and_gradients(monkeypatch, kernel):
    if kernel == "sdpa-flash":  # the long-group path
        monkeypatch.setattr("thresher.train.attention.MATH_MAX_SCORES", 0)
    examples = _examples([m for row in ROWS for m in row])
    rows, it = [], iter(examples)
    for row in ROWS:
        rows.append([next(it) for _ in row])
    dense_loss, dense_grads = _loss_and_grads(
        _model("sdpa"), collate(rows, 0, packing=True, attn_implementation="sdpa"))
    seg_batch = collate(rows, 0, packing=True, attn_implementation="thresher_segments")
    assert seg_batch["input_ids"].shape == (1, sum(map(sum, ROWS)))
    seg_loss, seg_grads = _loss_and_grads(_model("thresher_segments"), seg_batch)
    assert seg_loss == pytest.approx(dense_loss, rel=1e-6)
    assert dense_grads.keys() == seg_grads.keys()
    for n, g in dense_grads.items():
        assert torch.allclose(g, seg_grads[n], atol=1e-6, rtol=1e-4), n


def test_segments_bf16_close_to_fp32():
    rows = [_examples([30, 12, 20], seed=1)]
    batch = collate(rows, 0, packing=True, attn_implementation="thresher_segments")
    with torch.no_grad():
        ref = float(token_loss_sum(_model("sdpa"), collate(rows, 0, packing=True, attn_implementation="sdpa")))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf = float(token_loss_sum(_model("thresher_segments", torch.bfloat16), batch))
    assert bf == pytest.approx(ref, rel=2e-2)


def test_segments_do_not_leak_between_conversations():
    """Changing one conversation's tokens leaves the other's loss unchanged (it would not, if
    queries saw another conversation's keys)."""
    a, b = _examples([12, 15], seed=2)
    changed = Example([(t + 1) % VOCAB or 3 for t in a.input_ids], a.labels)
    model = _model("thresher_segments")

    def second_loss(first: Example) -> float:
        batch = collate([[first, b]], 0, packing=True, attn_implementation="thresher_segments")
        batch["labels"][0, :len(first)] = -100
        with torch.no_grad():
            return float(token_loss_sum(model, batch))

    assert second_loss(a) == pytest.approx(second_loss(changed), abs=1e-6)


def test_plan_groups_longest_first_within_ratio():
    assert plan_groups([10, 40, 9, 7, 3], ratio=0.6) == [[1], [0, 2, 3], [4]]
    assert plan_groups([5], ratio=0.6) == [[0]]
    assert sorted(i for g in plan_groups([3, 1, 4, 1, 5, 9, 2, 6]) for i in g) == list(range(8))


def test_auto_attention_resolves_by_packing():
    assert TrainConfig(packing=True).attention == "thresher_segments"
    assert TrainConfig(packing=False).attention == "sdpa"
    assert TrainConfig(packing=True, attn_implementation="eager").attention == "eager"


def test_segments_without_packing_is_a_config_error():
    problems = TrainConfig(packing=False, attn_implementation="thresher_segments").check()
    assert ("attn_implementation: thresher_segments attends within packed conversations; "
            "it needs packing") in problems
