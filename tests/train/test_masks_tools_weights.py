"""Tool-call turns and per-turn weights in the loss mask (issue 14), on real chat templates:
Qwen2.5-Instruct's renders tool calls, SmolLM2's does not."""

from __future__ import annotations

from thresher.train.data import IGNORE_INDEX, Example, LintIssue, encode_conversation, lint_rows

CALL = {"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}
TOOLS = [
    {"role": "user", "content": "Weather in Paris? USERSECRET"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "content": "{\"temp\": 21, \"note\": \"TOOLSECRET\"}", "tool_call_id": "call_1"},
    {"role": "assistant", "content": "It is 21 degrees in Paris."},
]


def _trained_text(tok, ex: Example) -> str:
    return tok.decode([t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE_INDEX])


def test_tool_call_turn_is_rendered_and_trained(chat_tokenizers):
    tok = chat_tokenizers["qwen2"]
    ex = encode_conversation(tok, TOOLS, max_length=4096)
    assert isinstance(ex, Example), ex
    trained = _trained_text(tok, ex)
    assert "get_weather" in trained and "Paris" in trained  # the call, rendered by the template
    assert "It is 21 degrees in Paris." in trained
    assert "USERSECRET" not in trained and "TOOLSECRET" not in trained  # tool output is not trained
    report = lint_rows(tok, [{"id": "t1", "messages": TOOLS}], max_length=4096)
    assert report.issues == [] and len(report.examples) == 1


def test_template_without_tool_support_is_a_lint_issue(chat_tokenizers):
    out = encode_conversation(chat_tokenizers["smollm2"], TOOLS, max_length=4096, row_id="t1")
    assert isinstance(out, LintIssue)
    assert (out.kind, out.message) == ("render_error", "the chat template does not render tool calls "
                                       "(tool 'get_weather' missing from the text); pass --chat-template "
                                       "with tool-call support")


def test_weight_zero_turn_is_not_trained(chat_tokenizers):
    tok = chat_tokenizers["smollm2"]
    chat = [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "BADANSWER", "weight": 0.0},
            {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "Good answer.", "weight": 1.0}]
    ex = encode_conversation(tok, chat, max_length=4096)
    assert isinstance(ex, Example)
    trained = _trained_text(tok, ex)
    assert "BADANSWER" not in trained and "Good answer." in trained
    plain = encode_conversation(tok, [{k: v for k, v in m.items() if k != "weight"} for m in chat],
                                max_length=4096)
    assert "BADANSWER" in _trained_text(tok, plain)  # the weight is what changed the mask
    only_zero = encode_conversation(tok, chat[:2], max_length=4096, row_id="z")
    assert (only_zero.kind, only_zero.message) == ("no_trainable_token", "every assistant turn has weight 0")
