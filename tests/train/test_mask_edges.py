"""Mask edge cases from an independent check against the real templates (issue 15):
an assistant-first conversation, non-NFC answer text under Qwen2, and answers that start with
a newline or spaces (the token BPE merges across the header is masked as the template's)."""

from __future__ import annotations

import pytest

from tests.train.test_masks import EOT, NAMES
from thresher.train.data import IGNORE_INDEX, Example, encode_conversation, lint_rows

ASSISTANT_FIRST = [
    {"role": "assistant", "content": "Hello, I am the assistant here."},
    {"role": "user", "content": "ok"},
    {"role": "assistant", "content": "Fine."},
]


def trained_text(tok, ex: Example) -> str:
    return tok.decode([t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE_INDEX])


@pytest.mark.parametrize("name", NAMES)
def test_assistant_first_conversation_does_not_train_the_header(chat_tokenizers, name):
    tok = chat_tokenizers[name]
    ex = encode_conversation(tok, ASSISTANT_FIRST, max_length=4096)
    assert isinstance(ex, Example), ex
    eot = EOT[name]
    assert trained_text(tok, ex) == f"Hello, I am the assistant here.{eot}Fine.{eot}"
    report = lint_rows(tok, [{"id": "af", "messages": ASSISTANT_FIRST}], max_length=4096)
    assert report.ok and not report.issues, [(i.kind, i.message) for i in report.issues]


@pytest.mark.parametrize("name", NAMES)
def test_lint_catches_a_trained_header_even_when_the_answer_says_assistant(chat_tokenizers, name, monkeypatch):
    """The lint's independent check: break the mask (the old empty prefix) and it must fail."""
    import thresher.train.data.masks as masks

    monkeypatch.setattr(masks, "_render_first_prefix", lambda tok, first: "")
    report = lint_rows(chat_tokenizers[name], [{"id": "af", "messages": ASSISTANT_FIRST}], max_length=4096)
    assert [i.kind for i in report.issues] == ["non_assistant_trained"]


@pytest.mark.parametrize("name", NAMES)
def test_non_nfc_answer_is_no_false_alarm(chat_tokenizers, name):
    rows = [{"id": "nfd", "messages": [{"role": "user", "content": "cafe\u0301?"},
                                       {"role": "assistant", "content": "Cafe\u0301 au lait, nai\u0308ve."}]}]
    report = lint_rows(chat_tokenizers[name], rows, max_length=4096)
    assert report.ok and not report.issues, [(i.kind, i.message) for i in report.issues]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("lead", ["\n", "  ", "\n\n  "])
def test_answer_with_leading_whitespace_trains_from_the_answer(chat_tokenizers, name, lead):
    tok = chat_tokenizers[name]
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": f"{lead}indented answer"}]
    ex = encode_conversation(tok, msgs, max_length=4096)
    assert isinstance(ex, Example), ex
    text = trained_text(tok, ex)
    assert text.endswith(f"indented answer{EOT[name]}") and text.strip(" \n").startswith("indented")
    assert "assistant" not in text and "Hi" not in text  # no template or user text trained
    report = lint_rows(tok, [{"id": "lead", "messages": msgs}], max_length=4096)
    assert report.ok, [(i.kind, i.message) for i in report.issues]
