"""thresher.redact: keys, bearer tokens, Authorization values and URL credentials never shown."""

from __future__ import annotations

import pytest

from thresher.redact import MASK, redact, redact_url, register_secret


@pytest.mark.parametrize("text,secret", [
    ("401 from server: Authorization: Bearer sk-abcdefgh12345678", "sk-abcdefgh12345678"),
    ('{"headers": {"Authorization": "Bearer abc.def-ghi_jkl"}}', "abc.def-ghi_jkl"),
    ("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("cannot reach the server at http://user:S3CRETpw@127.0.0.1:1/v1 (refused)", "S3CRETpw"),
    ("https://ghtoken123@example.com/v1", "ghtoken123"),
    ("x-api-key: anthropic-key-value", "anthropic-key-value"),
    ("key sk-ant-api03-abcdefghijk in text", "sk-ant-api03-abcdefghijk"),
    ("token hf_abcdefghijklmnopqrstuv here", "hf_abcdefghijklmnopqrstuv"),
    ("bearer%20sk-zzzzzzzzzzzz", "sk-zzzzzzzzzzzz"),
])
def test_secrets_are_masked(text, secret):
    out = redact(text)
    assert secret not in out and MASK in out


def test_registered_and_environment_secrets(monkeypatch):
    register_secret("plain-custom-key-0001")
    assert redact("the key plain-custom-key-0001 leaked") == f"the key {MASK} leaked"
    monkeypatch.setenv("MY_SERVICE_TOKEN", "zz-envtoken-998877")
    assert "zz-envtoken-998877" not in redact("echo zz-envtoken-998877")
    register_secret("short")  # too short to mask safely: ignored
    assert redact("a short word") == "a short word"


@pytest.mark.parametrize("text", [
    "max_tokens: must be >= 1", "prompt tokens 1,234 (the teacher's tokenizer)",
    "openai: 404 Not Found from http://127.0.0.1:8000/v1/models", "check the API key in $OPENAI_API_KEY",
    "file.jsonl:12: content must be a string", "a bearer of bad news",
])
def test_ordinary_messages_unchanged(text):
    assert redact(text) == text


def test_redact_url():
    assert redact_url("http://u:p@h:1/v1") == f"http://{MASK}@h:1/v1"
    assert redact_url("http://h:1/v1") == "http://h:1/v1"
