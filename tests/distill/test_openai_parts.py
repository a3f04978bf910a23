"""An OpenAI-compatible server answering with content as a list of parts (not a string)."""

from __future__ import annotations

import pytest

from thresher.distill.backends import SamplingParams, make_backend
from thresher.distill.backends.openai import content_text
from thresher.errors import ThresherError

from .loopback import ScriptedServer


@pytest.fixture
def serve(monkeypatch):
    monkeypatch.setenv("THRESHER_TEST_KEY", "sk-test")
    servers = []

    def make(**kw):
        servers.append(ScriptedServer(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


def _generate(server):
    be = make_backend("openai", "m", base_url=server.base_url, api_key_env="THRESHER_TEST_KEY",
                      max_retries=0, backoff=0.01, timeout=10)
    try:
        return be.generate([[{"role": "user", "content": "q"}]], n=1, params=SamplingParams(seed=1))
    finally:
        be.close()


def test_content_as_list_of_text_parts(serve):
    srv = serve(content=lambda text: [{"type": "text", "text": text[:7]}, {"type": "image_url", "image_url": {}},
                                      {"type": "text", "text": text[7:]}])
    out = _generate(srv)
    assert out[0][0].text == "answer 1-0 to q"


def test_content_of_a_strange_type_is_one_line_error(serve):
    srv = serve(content=lambda text: {"weird": text})
    with pytest.raises(ThresherError, match=r"^openai: .* returned message content of type dict"):
        _generate(srv)


def test_content_text():
    assert content_text(None) == "" and content_text("a") == "a" and content_text(["a", {"text": "b"}]) == "ab"
    with pytest.raises(ThresherError, match="content part without text"):
        content_text([{"type": "text"}])
