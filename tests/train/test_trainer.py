"""Trainer core: loss over whole optimiser steps, frozen base, packing through the loss, loop."""

from __future__ import annotations

import pytest
import torch

from tests.train._trainer_helpers import encode, make_rows, one_thread, tiny_lora  # noqa: F401 (autouse fixture)
from thresher.train.data import collate
from thresher.train.loop import (
    Hooks,
    LoopState,
    accumulate_step,
    lr_lambda,
    run_loop,
    shard_micro_batches,
    step_units,
    token_loss_sum,
)


def _collate(tok, packing=False, attn="sdpa"):
    pad = tok.pad_token_id
    return lambda units: collate([list(u) for u in units], pad, packing=packing, attn_implementation=attn)


def _perturb_lora_b(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_accumulation_equality_loss_and_gradients(tiny_lm_dir):
    model, tok, _ = tiny_lora(tiny_lm_dir)
    _perturb_lora_b(model)  # so lora_A gets gradients too
    exs = encode(tok, make_rows(8))
    col = _collate(tok)
    model.zero_grad()
    loss8, n8 = accumulate_step(model, [col([[e] for e in exs])])
    g8 = _grads(model)
    model.zero_grad()
    loss2x4, n2x4 = accumulate_step(model, [col([[e] for e in exs[i:i + 2]]) for i in range(0, 8, 2)])
    g2x4 = _grads(model)
    assert n8 == n2x4 > 0
    assert loss8 == pytest.approx(loss2x4, abs=1e-5)
    for name in g8:
        torch.testing.assert_close(g8[name], g2x4[name], atol=1e-6, rtol=1e-4, msg=name)
    # the usual mean-of-micro-batch-means would differ: the test can tell the two apart
    with torch.no_grad():
        means = []
        for i in range(0, 8, 2):
            b = col([[e] for e in exs[i:i + 2]])
            means.append(float(token_loss_sum(model, b)) / int((b["labels"][:, 1:] != -100).sum()))
    assert abs(sum(means) / 4 - loss8) > 1e-4


def _train(model_dir, steps, **cfg):
    model, tok, config = tiny_lora(model_dir, lr=5e-3, warmup=0.0, **cfg)
    units = [[e] for e in encode(tok, make_rows(24))]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(config, steps))
    losses = []
    run_loop(config, model, opt, sched, units, _collate(tok), lambda u: sum(len(e) for e in u),
             state=LoopState(), steps=steps, hooks=Hooks(on_step=lambda r: losses.append(r["loss"])))
    return model, losses


def test_loop_batch8_equals_batch2_accum4(tiny_lm_dir):
    m1, l1 = _train(tiny_lm_dir, 3, batch_size=8, grad_accum=1)
    m2, l2 = _train(tiny_lm_dir, 3, batch_size=2, grad_accum=4)
    assert l1 == pytest.approx(l2, abs=1e-5)
    a1 = {n: p for n, p in m1.named_parameters() if p.requires_grad}
    for n, p in m2.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p, a1[n], atol=1e-5, rtol=1e-4)


def test_base_weights_unchanged_adapter_weights_changed(tiny_lm_dir):
    model, tok, config = tiny_lora(tiny_lm_dir, lr=1e-2, dropout=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    units = [[e] for e in encode(tok, make_rows(8))]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    run_loop(config, model, opt, sched, units, _collate(tok), lambda u: 1, state=LoopState(), steps=3)
    for n, p in model.named_parameters():
        if n in trainable:
            assert not torch.equal(p, before[n]), f"adapter weight {n} did not change"
        else:
            assert torch.equal(p, before[n]), f"base weight {n} changed"
    # default targets: every linear layer of attention and MLP
    targets = set(model.peft_config["default"].target_modules)
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_batch_loss_equals_one_at_a_time(tiny_lm_dir, attn):
    model, tok, _ = tiny_lora(tiny_lm_dir, attn_implementation=attn)
    _perturb_lora_b(model)
    model.eval()
    exs = encode(tok, make_rows(6))
    with torch.no_grad():
        packed = token_loss_sum(model, _collate(tok, True, attn)([exs[:3], exs[3:]]))
        single = sum(token_loss_sum(model, _collate(tok)([[e]])) for e in exs)
    assert float(packed) == pytest.approx(float(single), rel=1e-5)


def test_step_units_wrap_and_shard():
    order = [4, 2, 0, 3, 1]
    assert step_units(order, 0, 4) == [4, 2, 0, 3]
    assert step_units(order, 1, 4) == [1, 4, 2, 0]  # last step wraps to fill the global batch
    assert shard_micro_batches([0, 1, 2, 3, 4, 5, 6, 7], 2, 2, rank=1, world_size=2) == [[1, 3], [5, 7]]


def test_warmup_then_cosine_to_zero():
    from thresher.train.config import TrainConfig

    f = lr_lambda(TrainConfig(warmup=2, schedule="cosine"), 10)
    assert f(0) == pytest.approx(0.5) and f(1) == pytest.approx(1.0)
    assert f(2) == pytest.approx(1.0) and f(10) == pytest.approx(0.0, abs=1e-9)
    g = lr_lambda(TrainConfig(warmup=0.0, schedule="linear"), 10)
    assert g(5) == pytest.approx(0.5)


def test_early_stopping_with_patience(tiny_lm_dir):
    model, tok, config = tiny_lora(tiny_lm_dir, lr=1e-12, val_fraction=0.2, eval_every=1, patience=2)
    exs = encode(tok, make_rows(12))
    units, val = [[e] for e in exs[:8]], exs[8:]
    col = _collate(tok)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    best = []
    state = run_loop(config, model, opt, sched, units, col, lambda u: 1, state=LoopState(), steps=20,
                     val_batches=[col([[e] for e in val])], hooks=Hooks(save_best=lambda s: best.append(s.step)))
    # the loss cannot improve at lr 1e-12: best at the first evaluation, stop after 2 more
    assert state.stopped_early and state.step == 3 and best == [1] and state.best_step == 1


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tiny_lm_dir):
    exs = encode(tiny_lora(tiny_lm_dir)[1], make_rows(4))
    out = []
    for gc in (False, True):
        model, tok, _ = tiny_lora(tiny_lm_dir, grad_checkpointing=gc)
        _perturb_lora_b(model)
        model.train()
        loss, _ = accumulate_step(model, [_collate(tok)([[e] for e in exs])])
        out.append((loss, _grads(model)))
    assert out[0][0] == pytest.approx(out[1][0], abs=1e-6)
    for name, g in out[0][1].items():
        torch.testing.assert_close(g, out[1][1][name], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("variant", [{"dora": True}, {"rslora": True}])
def test_dora_and_rslora_train_and_merge(tmp_path, tiny_lm_dir, variant):
    from thresher.train.export import merge_and_check, probe_sequences, save_adapter
    from thresher.train.model import load_base

    model, tok, config = tiny_lora(tiny_lm_dir, lr=1e-2, **variant)
    units = [[e] for e in encode(tok, make_rows(8))]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    run_loop(config, model, opt, sched, units, _collate(tok), lambda u: 1, state=LoopState(), steps=2)
    if variant.get("dora"):
        assert any("lora_magnitude_vector" in n for n, p in model.named_parameters() if p.requires_grad)
    save_adapter(model, tok, tmp_path / "adapter")
    res = merge_and_check(lambda: load_base(config), tmp_path / "adapter", tok, tmp_path / "merged",
                          probe_sequences([u[0] for u in units]))
    assert res["max_logit_diff"] < 1e-3
