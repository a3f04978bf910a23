"""Packing: first-fit-decreasing bins, and no cross-contamination between packed conversations."""

from __future__ import annotations

import random

import pytest
import torch

from thresher.errors import ThresherError
from thresher.train.data import (
    IGNORE_INDEX,
    Example,
    check_attn_implementation,
    collate,
    encode_conversation,
    pack_examples,
    packing_stats,
    padding_fraction,
)

VOCAB = 256


def reference_ffd(lengths: list[int], cap: int) -> list[list[int]]:
    """Plain O(n * bins) first-fit-decreasing."""
    bins: list[list[int]] = []
    free: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for b, room in enumerate(free):
            if room >= lengths[i]:
                bins[b].append(i)
                free[b] -= lengths[i]
                break
        else:
            bins.append([i])
            free.append(cap - lengths[i])
    return bins


def test_ffd_small_known_case():
    assert pack_examples([5, 4, 3, 3, 2, 2, 1], 8) == [[0, 2], [1, 3, 6], [4, 5]]


def test_ffd_matches_reference_and_respects_capacity():
    rng = random.Random(0)
    lengths = [max(1, min(512, int(rng.lognormvariate(4.0, 0.8)))) for _ in range(500)]
    bins = pack_examples(lengths, 512)
    assert bins == reference_ffd(lengths, 512)
    assert sorted(i for b in bins for i in b) == list(range(500))
    assert all(sum(lengths[i] for i in b) <= 512 for b in bins)
    assert len(bins) <= -(-sum(lengths) // 512) * 1.25  # FFD is close to the lower bound


def test_ffd_rejects_an_example_longer_than_a_bin():
    with pytest.raises(ThresherError, match="example 1 has 9 tokens > max_length 8"):
        pack_examples([3, 9], 8)


def test_padding_stats_show_packing_helps():
    rng = random.Random(1)
    lengths = [max(4, min(256, int(rng.lognormvariate(3.5, 0.9)))) for _ in range(200)]
    stats = packing_stats(lengths, max_length=256, batch_size=4)
    assert stats["rows"] == 200 and stats["tokens"] == sum(lengths)
    assert stats["padding_fraction_packed"] < stats["padding_fraction_unpacked"]
    assert 0 < stats["padding_fraction_unpacked"] < 1
    assert padding_fraction([[3], [1]]) == pytest.approx(1 - 4 / 6)
    assert padding_fraction([[2, 2], [4]]) == 0.0


def make_examples(n: int, seed: int = 0) -> list[Example]:
    """Conversations of random tokens: a prompt (untrained) then a trained answer."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(n):
        prompt = int(torch.randint(3, 12, (1,), generator=g))
        answer = int(torch.randint(2, 15, (1,), generator=g))
        ids = torch.randint(3, VOCAB, (prompt + answer,), generator=g).tolist()
        labels = [IGNORE_INDEX] * prompt + ids[prompt:]
        out.append(Example(ids, labels, row_id=f"c{k}", n_full=len(ids)))
    return out


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(cfg).eval()


def conv_losses(model, batch: dict, rows: list[list[Example]]) -> dict[str, float]:
    """Mean next-token loss of each conversation, read off the batch's logits."""
    with torch.no_grad():
        logits = model(**batch).logits.float()
    labels = batch["labels"]
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    target = labels[:, 1:]
    tok_loss = -logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    out = {}
    for b, row in enumerate(rows):
        pos = 0
        for ex in row:
            m = len(ex)
            sel = (
                target[b, pos : pos + m - 1] != IGNORE_INDEX
            )  # predictions made inside this conversation
            out[ex.row_id] = float(tok_loss[b, pos : pos + m - 1][sel].mean())
            pos += m
    return out


def one_at_a_time(model, examples: list[Example]) -> dict[str, float]:
    out = {}
    for ex in examples:
        batch = collate([[ex]], 0, packing=False)
        out.update(conv_losses(model, batch, [[ex]]))
    return out


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packed_losses_equal_one_at_a_time(tiny_llama, attn):
    model = tiny_llama
    model.config._attn_implementation = attn
    examples = make_examples(12)
    bins = pack_examples(examples, 48)
    assert any(len(b) >= 3 for b in bins)  # really packed
    rows = [[examples[i] for i in b] for b in bins]
    batch = collate(rows, 0, packing=True, attn_implementation=attn)
    assert batch["attention_mask"].shape == (
        len(rows),
        1,
        batch["input_ids"].shape[1],
        batch["input_ids"].shape[1],
    )
    packed = conv_losses(model, batch, rows)
    alone = one_at_a_time(model, examples)
    assert packed.keys() == alone.keys()
    for k in alone:
        assert abs(packed[k] - alone[k]) < 1e-5, (k, packed[k], alone[k])
    # the model's own loss is the token-weighted mean of the same per-token losses
    with torch.no_grad():
        loss = float(model(**batch).loss)
    n = {ex.row_id: ex.n_trained - (ex.labels[0] != IGNORE_INDEX) for ex in examples}
    expected = sum(alone[k] * n[k] for k in alone) / sum(n.values())
    assert abs(loss - expected) < 1e-5


def test_without_isolation_packing_would_contaminate(tiny_llama):
    """Control: the same packed rows with a plain causal mask and running positions differ."""
    model = tiny_llama
    model.config._attn_implementation = "sdpa"
    examples = make_examples(12)
    rows = [[examples[i] for i in b] for b in pack_examples(examples, 48)]
    batch = collate(rows, 0, packing=True, attn_implementation="sdpa")
    width = batch["input_ids"].shape[1]
    naive = dict(batch)
    naive["attention_mask"] = (
        batch["input_ids"] != -1
    ).long()  # 2D: everything attends to the past
    naive["position_ids"] = torch.arange(width).expand(len(rows), width)
    leaked = conv_losses(model, naive, rows)
    alone = one_at_a_time(model, examples)
    later = [ex.row_id for row in rows for ex in row[1:]]
    assert max(abs(leaked[k] - alone[k]) for k in later) > 1e-3


def test_flattened_varlen_batch_isolates_conversations(tiny_llama):
    """The flash-attention layout (one row, restarting position ids, cu_seq_lens) on sdpa:
    transformers builds the block mask from the position ids; losses equal one at a time."""
    model = tiny_llama
    model.config._attn_implementation = "sdpa"
    examples = make_examples(6, seed=3)
    rows = [[examples[i] for i in b] for b in pack_examples(examples, 48)]
    batch = collate(rows, 0, packing=True, attn_implementation="flash_attention_2")
    total = sum(len(e) for e in examples)
    assert batch["input_ids"].shape == (1, total) and "attention_mask" not in batch
    lens = [len(e) for row in rows for e in row]
    assert batch["cu_seq_lens_q"].tolist() == [sum(lens[:i]) for i in range(len(lens) + 1)]
    assert batch["max_length_q"] == max(lens)
    flat_rows = [[e for row in rows for e in row]]
    # use_cache=False: transformers only reads packing from position_ids when there is no cache
    sdpa_batch = {k: batch[k] for k in ("input_ids", "labels", "position_ids")} | {
        "use_cache": False
    }
    packed = conv_losses(model, sdpa_batch, flat_rows)
    alone = one_at_a_time(model, examples)
    for k in alone:
        assert abs(packed[k] - alone[k]) < 1e-5


def test_collate_layout():
    a = Example([5, 6, 7, 8], [IGNORE_INDEX, IGNORE_INDEX, 7, 8], "a")
    b = Example([9, 10, 11], [9, 10, 11], "b")  # trained from its first token on
    batch = collate([[a, b], [b]], 0, packing=True, attn_implementation="sdpa")
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10, 11], [9, 10, 11, 0, 0, 0, 0]]
    # the first label of every conversation is dropped: it would be predicted from the previous one
    assert batch["labels"].tolist() == [
        [-100, -100, 7, 8, -100, 10, 11],
        [-100, 10, 11, -100, -100, -100, -100],
    ]
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 3, 0, 1, 2]
    mask = batch["attention_mask"]
    assert mask.dtype == torch.bool
    assert mask[0, 0, 4].tolist() == [False] * 4 + [
        True,
        False,
        False,
    ]  # b's first token sees only itself
    assert mask[0, 0, 3].tolist() == [True] * 4 + [False] * 3
    assert mask[1, 0, 5].tolist() == [False] * 5 + [True, False]  # a pad attends to itself only
    eager = collate([[a, b]], 0, packing=True, attn_implementation="eager")["attention_mask"]
    assert eager.dtype == torch.float32 and eager[0, 0, 4, 3] == torch.finfo(torch.float32).min
    assert eager[0, 0, 4, 4] == 0
    plain = collate([[a], [b]], 0, packing=False)
    assert plain["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert plain["labels"].tolist() == [[-100, -100, 7, 8], [9, 10, 11, -100]]
    with pytest.raises(ValueError, match="exactly one conversation"):
        collate([[a, b]], 0, packing=False)


@pytest.mark.parametrize("name", ["flex_attention", "paged|sdpa", "my_custom_kernel"])
def test_attention_that_cannot_isolate_sequences_is_refused(name):
    with pytest.raises(ThresherError, match=f"'{name}' cannot"):
        check_attn_implementation(name)
    with pytest.raises(ThresherError, match="--packing needs an attention backend"):
        collate([[Example([1, 2], [1, 2])]], 0, packing=True, attn_implementation=name)


def test_sliding_window_models_refuse_4d_packing():
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    mistral = MistralConfig(sliding_window=64, num_hidden_layers=2)
    with pytest.raises(ThresherError, match=r"sliding window \(64 tokens < --max-length 128\)"):
        check_attn_implementation("sdpa", config=mistral, max_length=128)
    assert check_attn_implementation("sdpa", config=mistral, max_length=64) == "4d-bool"
    assert (
        check_attn_implementation("flash_attention_2", config=mistral, max_length=128) == "varlen"
    )
    qwen = Qwen2Config(num_hidden_layers=2)  # sliding window off by default
    assert check_attn_implementation("eager", config=qwen, max_length=4096) == "4d-float"
    assert check_attn_implementation("sdpa", config=LlamaConfig(), max_length=4096) == "4d-bool"


def test_supported_backends():
    assert check_attn_implementation("sdpa") == "4d-bool"
    assert check_attn_implementation("eager") == "4d-float"
    assert check_attn_implementation("flash_attention_2") == "varlen"
    assert check_attn_implementation(None) == "4d-bool"


def test_packed_real_chat_rows_equal_one_at_a_time(chat_tokenizers):
    """Real SmolLM2 chat rows (system prompts, several turns) through a tiny Llama with
    SmolLM2's vocabulary: packed per-conversation losses equal one at a time."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = chat_tokenizers["smollm2"]
    convs = []
    for k in range(7):
        msgs = [{"role": "system", "content": f"System prompt {k}."}] if k % 2 else []
        for t in range(1 + k % 3):
            msgs += [
                {"role": "user", "content": f"Question {k}.{t}: what is {k} times {t}?"},
                {"role": "assistant", "content": f"{k} times {t} is {k * t}."},
            ]
        convs.append(encode_conversation(tok, msgs, max_length=512, row_id=f"r{k}"))
    assert all(isinstance(c, Example) for c in convs)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    model = LlamaForCausalLM(cfg).eval()
    model.config._attn_implementation = "sdpa"
    bins = pack_examples(convs, 160)
    assert len(bins) < len(convs)
    rows = [[convs[i] for i in b] for b in bins]
    packed = conv_losses(
        model, collate(rows, tok.pad_token_id, packing=True, attn_implementation="sdpa"), rows
    )
    alone = one_at_a_time(model, convs)
    for k in alone:
        assert abs(packed[k] - alone[k]) < 1e-5, (k, packed[k], alone[k])
