"""Export: the adapter loads with plain peft, the merged model with plain transformers, and the
merged-vs-adapter logit check fails loudly when they disagree."""

from __future__ import annotations

import pytest
import torch

from tests.train._trainer_helpers import encode, make_rows, one_thread, tiny_lora  # noqa: F401 (autouse fixture)
from thresher.errors import ThresherError
from thresher.train.export import (
    check_logits,
    merge_and_check,
    probe_logits,
    probe_sequences,
    save_adapter,
)


def _trained_like(tiny_lm_dir):
    model, tok, config = tiny_lora(tiny_lm_dir)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model, tok, config


def _base_loader(config):
    from thresher.train.model import load_base

    return lambda: load_base(config)


def test_adapter_loads_with_peft_and_matches(tmp_path, tiny_lm_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model, tok, _ = _trained_like(tiny_lm_dir)
    probes = probe_sequences(encode(tok, make_rows(3)))
    want = probe_logits(model, probes)
    save_adapter(model, tok, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32)
    loaded = PeftModel.from_pretrained(base, str(tmp_path / "adapter"))
    for a, b in zip(want, probe_logits(loaded, probes)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    # and the adapter really changes the model
    plain = probe_logits(AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32), probes)
    assert max(float((a - b).abs().max()) for a, b in zip(want, plain)) > 1e-3


def test_merged_model_matches_and_carries_eos(tmp_path, tiny_lm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    model, tok, config = _trained_like(tiny_lm_dir)
    probes = probe_sequences(encode(tok, make_rows(3)))
    want = probe_logits(model, probes)
    save_adapter(model, tok, tmp_path / "adapter")
    res = merge_and_check(_base_loader(config), tmp_path / "adapter", tok, tmp_path / "merged", probes)
    assert res["max_logit_diff"] < 1e-4
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    for a, b in zip(want, probe_logits(merged, probes)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    gen = GenerationConfig.from_pretrained(tmp_path / "merged")
    mtok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    assert mtok.convert_tokens_to_ids("<|im_end|>") in eos and mtok.chat_template


def test_check_logits_rejects_a_different_model(tiny_lm_dir):
    from transformers import AutoModelForCausalLM

    model, tok, _ = _trained_like(tiny_lm_dir)
    probes = probe_sequences(encode(tok, make_rows(2)))
    ref = probe_logits(model, probes)
    other = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32)  # adapter missing
    with pytest.raises(ThresherError, match="export check failed"):
        check_logits(ref, probe_logits(other, probes), 1e-3)
    assert check_logits(ref, ref, 0.0) == 0.0


def test_failed_check_leaves_no_merged_folder(tmp_path, tiny_lm_dir):
    model, tok, config = _trained_like(tiny_lm_dir)
    probes = probe_sequences(encode(tok, make_rows(3)))
    save_adapter(model, tok, tmp_path / "adapter")
    # merging changes float rounding (W + BA vs W x + B A x): a zero tolerance must fail
    with pytest.raises(ThresherError, match="merged model not written"):
        merge_and_check(_base_loader(config), tmp_path / "adapter", tok, tmp_path / "merged", probes, atol=0.0)
    assert not (tmp_path / "merged").exists()
    assert not [p for p in tmp_path.iterdir() if "merged" in p.name]
