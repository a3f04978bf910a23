"""No secret in any message: a real local HTTP server reflects the key in its error bodies."""

from __future__ import annotations

import socket

import pytest

from .loopback import ScriptedServer

KEY = "sk-redact-test-4f9a8b7c6d5e"


@pytest.fixture
def echo_server(monkeypatch):
    monkeypatch.setenv("THRESHER_REDACT_KEY", KEY)
    servers = []

    def make(**kw):
        s = ScriptedServer(echo_auth=True, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.mark.parametrize("status", [401, 500])
def test_error_body_with_the_key_is_redacted(cli_run, prompts_file, tmp_path, echo_server, status):
    srv = echo_server(always=status)
    res = cli_run(*["distill", "generate", str(prompts_file), "--out", str(tmp_path / "g"), "--backend", "openai",
                   "--base-url", srv.base_url, "--teacher", "m", "--api-key-env", "THRESHER_REDACT_KEY",
                   "--max-retries", "1"])
    assert res.exit_code == 1
    assert srv.chat_requests() >= 1 and f"Bearer {KEY}" in srv.auth  # the key was sent, the body echoed it
    assert KEY not in res.output and KEY[3:] not in res.output
    assert f"{status}" in res.output and "Authorization: ***" in res.output
    assert res.output.count("\n") == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_url_credentials_of_an_unreachable_server_are_redacted(cli_run, prompts_file, tmp_path):
    url = f"http://user:SECRETPW9876@127.0.0.1:{_free_port()}/v1"
    res = cli_run(*["distill", "generate", str(prompts_file), "--out", str(tmp_path / "g"), "--backend", "openai",
                   "--base-url", url, "--teacher", "m", "--max-retries", "0"])
    assert res.exit_code == 1 and "cannot reach the server" in res.output
    assert "SECRETPW9876" not in res.output and "user:" not in res.output and "http://***@127.0.0.1" in res.output


def test_backend_errors_are_redacted_in_python(echo_server):
    from thresher.distill.backends import SamplingParams, make_backend
    from thresher.errors import ThresherError

    srv = echo_server(always=500)
    be = make_backend("openai", "m", base_url=srv.base_url, api_key_env="THRESHER_REDACT_KEY", max_retries=0,
                      backoff=0.01)
    with pytest.raises(ThresherError) as e:
        be.generate([[{"role": "user", "content": "q"}]], n=1, params=SamplingParams())
    be.close()
    assert KEY not in str(e.value) and "500" in str(e.value)
