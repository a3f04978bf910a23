"""Loss masks on real chat templates: SmolLM2's, Llama-3-Instruct's and Qwen2.5-Instruct's."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from tests.train.conftest import TEMPLATES
from thresher.errors import ThresherError
from thresher.train.data import (
    IGNORE_INDEX,
    Example,
    LintIssue,
    encode_conversation,
    end_of_turn_ids,
    generation_mask,
    lint_rows,
    load_tokenizer,
)

EOT = {"llama3": "<|eot_id|>", "qwen2": "<|im_end|>", "smollm2": "<|im_end|>"}
CHAT = [
    {"role": "system", "content": "You are a terse assistant. Never reveal SYSTEMSECRET."},
    {"role": "user", "content": "What is the capital of France? USERSECRET"},
    {"role": "assistant", "content": "Paris is the capital of France."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "Rome.\nIt has been the capital since 1871."},
]
NAMES = ["smollm2", "llama3", "qwen2"]


@contextmanager
def templated(tok, template: str):
    """The session tokenizer with another chat template for the duration (loading is slow)."""
    saved = tok.chat_template
    tok.chat_template = template
    try:
        yield tok
    finally:
        tok.chat_template = saved


def trained_runs(ex: Example) -> list[list[int]]:
    """Contiguous runs of trained token ids."""
    runs, cur = [], []
    for tok, lab in zip(ex.input_ids, ex.labels):
        if lab != IGNORE_INDEX:
            assert lab == tok
            cur.append(tok)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return runs


@pytest.mark.parametrize("name", NAMES)
def test_all_assistant_turns_and_their_end_of_turn_are_trained(chat_tokenizers, name):
    tok = chat_tokenizers[name]
    ex = encode_conversation(tok, CHAT, max_length=1024, row_id="r1")
    assert isinstance(ex, Example), ex
    # same tokens as the template's own tokenization
    assert (
        ex.input_ids == tok.apply_chat_template(CHAT, tokenize=True, return_dict=True)["input_ids"]
    )
    runs = [tok.decode(r) for r in trained_runs(ex)]
    assert runs == [
        "Paris is the capital of France." + EOT[name],
        "Rome.\nIt has been the capital since 1871." + EOT[name],
    ]
    # nothing after the end-of-turn (e.g. the "\n" of ChatML) and no system/user text is trained
    text_untrained = tok.decode(
        [t for t, lab in zip(ex.input_ids, ex.labels) if lab == IGNORE_INDEX]
    )
    assert "SYSTEMSECRET" in text_untrained and "USERSECRET" in text_untrained
    assert ex.labels[-1] == IGNORE_INDEX or tok.decode(ex.input_ids[-1:]) == EOT[name]
    eot_id = tok.convert_tokens_to_ids(EOT[name])
    assert end_of_turn_ids(tok)[0] == eot_id


@pytest.mark.parametrize("name", NAMES)
def test_train_on_last_trains_only_the_final_answer(chat_tokenizers, name):
    tok = chat_tokenizers[name]
    ex = encode_conversation(tok, CHAT, max_length=1024, train_on="last")
    assert isinstance(ex, Example)
    assert [tok.decode(r) for r in trained_runs(ex)] == [
        "Rome.\nIt has been the capital since 1871." + EOT[name]
    ]


def test_llama3_trims_content_and_mask_follows_the_rendering(chat_tokenizers):
    tok = chat_tokenizers["llama3"]
    msgs = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "  padded answer \n"},
    ]
    ex = encode_conversation(tok, msgs, max_length=256)
    assert isinstance(ex, Example)
    assert [tok.decode(r) for r in trained_runs(ex)] == ["padded answer<|eot_id|>"]
    assert tok.decode(ex.input_ids[:1]) == "<|begin_of_text|>" and ex.labels[0] == IGNORE_INDEX


def test_qwen_default_system_prompt_is_not_trained(chat_tokenizers):
    tok = chat_tokenizers["qwen2"]
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    ex = encode_conversation(tok, msgs, max_length=256)
    assert "You are Qwen" in tok.decode(ex.input_ids)
    assert [tok.decode(r) for r in trained_runs(ex)] == ["hello<|im_end|>"]


GEN_CHATS = [
    CHAT,
    CHAT[1:],
    CHAT[:3],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b c d"}] * 3,
]


GEN_TEMPLATES = {
    "smollm2": "smollm2_generation.jinja",
    "llama3": "llama3_generation.jinja",
    "qwen2": "qwen2_5_generation.jinja",
}


@pytest.mark.parametrize("name", NAMES)
def test_generation_markers_agree_with_prefix_renders(chat_tokenizers, name):
    """Each real template with {% generation %} markers added (the rendering is unchanged):
    the marker mask from apply_chat_template equals the prefix-render mask."""
    tok = chat_tokenizers[name]
    plain = [tok.apply_chat_template(m, tokenize=False) for m in GEN_CHATS]
    with templated(tok, (TEMPLATES / GEN_TEMPLATES[name]).read_text()) as tok:
        assert [tok.apply_chat_template(m, tokenize=False) for m in GEN_CHATS] == plain
        for msgs in GEN_CHATS:
            ex = encode_conversation(tok, msgs, max_length=1024)
            gen = generation_mask(tok, msgs)
            assert gen is not None and sum(gen) > 0
            assert gen == [int(lab != IGNORE_INDEX) for lab in ex.labels]
        report = lint_rows(
            tok, [{"id": str(i), "messages": m} for i, m in enumerate(GEN_CHATS)], max_length=1024
        )
    assert report.ok and report.counts == {}


def test_generation_marker_disagreement_is_reported(chat_tokenizers):
    # markers that leave the end-of-turn token outside: the two masks differ, lint says so
    text = (TEMPLATES / "qwen2_5_generation.jinja").read_text()
    text = text.replace(
        "{{- message.content + '<|im_end|>' }}\n        {%- endgeneration %}",
        "{{- message.content }}\n        {%- endgeneration %}\n        {{- '<|im_end|>' }}",
    )
    with templated(chat_tokenizers["qwen2"], text) as tok:
        report = lint_rows(tok, [{"id": "g", "messages": CHAT}], max_length=1024)
    assert report.counts == {"mask_mismatch": 1}
    assert "differ" in report.issues[0].message


def test_no_generation_markers_gives_none(chat_tokenizers):
    assert generation_mask(chat_tokenizers["smollm2"], CHAT) is None


def test_overlong_rows_are_dropped_or_truncated(chat_tokenizers):
    tok = chat_tokenizers["qwen2"]
    full = encode_conversation(tok, CHAT, max_length=1024)
    n = len(full)
    dropped = encode_conversation(tok, CHAT, max_length=n - 3, row_id="long")
    assert (
        isinstance(dropped, LintIssue)
        and dropped.kind == "response_cut"
        and dropped.row_id == "long"
    )
    assert "dropped" in dropped.message
    cut = encode_conversation(tok, CHAT, max_length=n - 3, overlong="truncate")
    assert isinstance(cut, Example) and cut.cut and len(cut) == n - 3 and cut.n_full == n
    assert cut.input_ids == full.input_ids[: n - 3] and cut.labels == full.labels[: n - 3]
    # cut before the first answer: nothing left to train
    early = encode_conversation(tok, CHAT, max_length=10, overlong="truncate")
    assert isinstance(early, LintIssue) and early.kind == "no_trainable_token"


def test_row_without_assistant_turn(chat_tokenizers):
    out = encode_conversation(chat_tokenizers["smollm2"], CHAT[:2], max_length=256)
    assert isinstance(out, LintIssue) and out.kind == "no_trainable_token"


def test_template_without_end_of_turn_is_caught(chat_tokenizers):
    template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' %}### Assistant:\n{{ m['content'] }}\n"
        "{% else %}### {{ m['role'] }}: {{ m['content'] }}\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
    )
    msgs = [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
    ]
    with templated(chat_tokenizers["llama3"], template) as tok:
        out = encode_conversation(tok, msgs, max_length=512)
    assert isinstance(out, LintIssue) and out.kind == "eot_not_trained"
    assert "stop" in out.message


def test_token_spanning_header_and_answer_is_caught(chat_tokenizers):
    # a generation prompt ending in a space: " Paris" is one token across the boundary
    template = (
        "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}### assistant: {% endif %}"
    )
    with templated(chat_tokenizers["llama3"], template) as tok:
        out = encode_conversation(tok, CHAT, max_length=512)
    assert isinstance(out, LintIssue) and out.kind == "non_assistant_trained"
    assert "' Paris'" in out.message


def test_template_that_rewrites_history_is_located_in_place(chat_tokenizers):
    # renders the number of messages up front: prefix renders are not prefixes of the whole, so
    # each turn is found in the whole rendering (its content as a placeholder)
    template = (
        "{{ messages|length }} turns\n{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with templated(chat_tokenizers["qwen2"], template) as tok:
        out = encode_conversation(tok, CHAT, max_length=512)
        assert isinstance(out, Example), out
        runs = [tok.decode(r) for r in trained_runs(out)]
    assert runs == [CHAT[2]["content"] + "<|im_end|>", CHAT[4]["content"] + "<|im_end|>"]


def test_template_that_rewrites_history_is_caught(chat_tokenizers):
    # ... and also rewrites earlier contents: the turn cannot be located, the row is refused
    template = (
        "{{ messages|length }} turns\n{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{{ m['content'] if loop.last else m['content']|upper }}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with templated(chat_tokenizers["qwen2"], template) as tok:
        out = encode_conversation(tok, CHAT, max_length=512)
    assert isinstance(out, LintIssue) and out.kind == "span_mismatch"


def test_template_error_is_a_render_error(chat_tokenizers):
    # Llama-3's template is fine with a tool role; a template raising is reported per row
    tok = chat_tokenizers["smollm2"]
    bad = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    saved = tok.chat_template
    try:
        tok.chat_template = (
            saved
            + "{% if messages|length > 1 %}{{ raise_exception('roles must alternate') }}{% endif %}"
        )
        out = encode_conversation(tok, bad, max_length=64)
    finally:
        tok.chat_template = saved
    assert (
        isinstance(out, LintIssue)
        and out.kind == "render_error"
        and "roles must alternate" in out.message
    )


def test_missing_template_is_a_clear_error(chat_tokenizers, tmp_path):
    tok = chat_tokenizers["smollm2"]
    saved = tok.chat_template
    try:
        tok.chat_template = None
        tok.save_pretrained(str(tmp_path / "notemplate"))
    finally:
        tok.chat_template = saved
    with pytest.raises(ThresherError, match="has no chat template; pass --chat-template"):
        load_tokenizer(tmp_path / "notemplate")
    fixed = load_tokenizer(tmp_path / "notemplate", chat_template=TEMPLATES / "qwen2_5.jinja")
    assert isinstance(encode_conversation(fixed, CHAT, max_length=512), Example)
    with pytest.raises(ThresherError, match="--chat-template: file not found"):
        load_tokenizer(tmp_path / "notemplate", chat_template=tmp_path / "nope.jinja")
    with pytest.raises(ThresherError, match="base model not found"):
        load_tokenizer(tmp_path / "missing-model")


TOOL_CHAT = [
    {"role": "system", "content": "You can call tools."},
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": "Let me check."},
    {"role": "tool", "content": "TOOLOUTPUT: 3 degrees"},
    {"role": "assistant", "content": "It is 3 degrees in Oslo."},
]


@pytest.mark.parametrize("name", NAMES)
def test_tool_results_are_not_trained(chat_tokenizers, name):
    tok = chat_tokenizers[name]
    ex = encode_conversation(tok, TOOL_CHAT, max_length=1024)
    assert isinstance(ex, Example), ex
    assert [tok.decode(r) for r in trained_runs(ex)] == [
        "Let me check." + EOT[name],
        "It is 3 degrees in Oslo." + EOT[name],
    ]
