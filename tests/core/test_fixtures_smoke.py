def test_tiny_models_build_fast_and_run(tmp_path, tiny_tokenizer_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.conftest import tiny_llama_config

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    model = AutoModelForCausalLM.from_config(tiny_llama_config(len(tok)))
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    ids = tok.apply_chat_template([{"role": "user", "content": "hello there"}], add_generation_prompt=True,
                                  return_dict=True, return_tensors="pt")["input_ids"]
    assert tok.decode(ids[0]).startswith("<|im_start|>user\nhello there<|im_end|>")
    out = model(ids)
    assert out.logits.shape == (1, ids.shape[1], len(tok))
    assert torch.isfinite(out.logits).all()
