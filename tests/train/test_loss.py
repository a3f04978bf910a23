"""The chunked LM-head loss equals the full-logits cross-entropy, in value and gradient."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny_llama_config
from thresher.train import loss as L
from thresher.train.data import collate
from thresher.train.data.masks import Example
from thresher.train.loop import token_loss_sum
from thresher.train.mixed_precision import skip_adapter_input_casts

VOCAB = 101


def _model():
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_llama_config(VOCAB))


def _batch():
    g = torch.Generator().manual_seed(1)
    exs = []
    for m in (17, 9, 30):
        ids = torch.randint(3, VOCAB, (m,), generator=g).tolist()
        exs.append(Example(ids, [-100] * 4 + ids[4:]))
    return collate([[e] for e in exs], 0, packing=False)


def _grads(model, batch):
    model.zero_grad()
    loss = token_loss_sum(model, batch)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("budget", [0, 1 << 30])  # every chunk checkpointed / none
def test_chunked_head_equals_full_logits(monkeypatch, budget):
    model, batch = _model(), _batch()
    monkeypatch.setattr(L, "CHUNK", 7)  # several chunks, one partial
    monkeypatch.setattr(L, "SAVE_BUDGET", budget)
    assert L.split_head(model) is not None
    chunked = _grads(model, batch)
    monkeypatch.setattr(L, "split_head", lambda m: None)  # the model's own forward
    full = _grads(model, batch)
    assert chunked[0] == pytest.approx(full[0], rel=1e-6)
    for n, g in full[1].items():
        assert torch.allclose(g, chunked[1][n], atol=1e-6, rtol=1e-5), n


def test_checkpointing_only_beyond_the_budget(monkeypatch):
    import torch.utils.checkpoint as ck

    calls = []
    real = ck.checkpoint
    monkeypatch.setattr(ck, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    head = torch.nn.Linear(8, 13)
    h = torch.randn(10, 8, requires_grad=True)
    t = torch.randint(0, 13, (10,))
    monkeypatch.setattr(L, "SAVE_BUDGET", 10 * 13 * 4)  # exactly fits: kept
    L.head_loss_sum(head, h, t, chunk=4).backward()
    assert calls == []
    monkeypatch.setattr(L, "SAVE_BUDGET", 10 * 13 * 4 - 1)  # one byte over: checkpointed
    L.head_loss_sum(head, h, t, chunk=4).backward()
    assert len(calls) == 3


def test_head_loss_sum_without_grad_matches():
    h = torch.randn(10, 8)
    head = torch.nn.Linear(8, 13)
    t = torch.randint(0, 13, (10,))
    with torch.no_grad():
        got = L.head_loss_sum(head, h, t, chunk=3)
        want = torch.nn.functional.cross_entropy(head(h), t, reduction="sum")
    assert float(got) == pytest.approx(float(want), rel=1e-6)


def test_split_head_refuses_scaled_heads_and_wrappers():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    gemma = Gemma2ForCausalLM(Gemma2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                                           num_hidden_layers=1, num_attention_heads=2,
                                           num_key_value_heads=1, head_dim=16))
    assert L.split_head(gemma) is None  # soft-capped logits: keep its own forward

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.module = m

    assert L.split_head(Wrapped(_model())) is None


def test_skipping_adapter_input_casts_is_bit_identical():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_model().to(torch.bfloat16),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    torch.nn.init.normal_(model.base_model.model.model.layers[0].self_attn.q_proj.lora_B.default.weight)
    batch = _batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        before = token_loss_sum(model, batch)
        assert skip_adapter_input_casts(model) == 6
        after = token_loss_sum(model, batch)
    assert torch.equal(before, after)
