"""The openai backend: protocol, retries and errors against a loopback HTTP server."""

from __future__ import annotations

import pytest

from thresher.distill.backends import SamplingParams, make_backend
from thresher.errors import ThresherError
from thresher.io import read_table

from .conftest import write_prompts
from .loopback import ScriptedServer

KEY = "sk-test-0123456789-secret"


@pytest.fixture
def server_factory(monkeypatch):
    monkeypatch.setenv("THRESHER_TEST_KEY", KEY)
    servers = []

    def make(**kw):
        s = ScriptedServer(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def _backend(server, **kw):
    opts = {"base_url": server.base_url, "api_key_env": "THRESHER_TEST_KEY", "concurrency": 3, "max_retries": 2,
                "backoff": 0.01, "timeout": 10}
    opts.update(kw)
    return make_backend("openai", kw.pop("model", "m"), **opts)


def test_generate_n_samples_in_order_with_key(server_factory):
    srv = server_factory()
    be = _backend(srv)
    convs = [[{"role": "user", "content": f"q{i}"}] for i in range(5)]
    out = be.generate(convs, n=3, params=SamplingParams(seed=10, max_tokens=20))
    be.close()
    assert [[c.text for c in o] for o in out] == [[f"answer 10-{j} to q{i}" for j in range(3)] for i in range(5)]
    c = out[0][0]
    assert (c.reasoning, c.finish_reason, c.prompt_tokens, c.completion_tokens) == ("thought about it", "stop", 7, 5)
    assert srv.chat_requests() == 5 and all(r["n"] == 3 and r["max_tokens"] == 20 for r in srv.requests)
    assert set(srv.auth) == {f"Bearer {KEY}"}


def test_server_that_ignores_n_is_asked_again(server_factory):
    srv = server_factory(max_n=1)
    be = _backend(srv)
    out = be.generate([[{"role": "user", "content": "q"}]], n=3, params=SamplingParams(seed=0))
    assert [c.text for c in out[0]] == ["answer 0-0 to q", "answer 1-0 to q", "answer 2-0 to q"]
    assert [r["n"] for r in srv.requests] == [3, 2, 1]


def test_retries_429_and_5xx_then_succeeds(server_factory):
    srv = server_factory(fail=[429, 503])
    be = _backend(srv, concurrency=1)
    out = be.generate([[{"role": "user", "content": "q"}]], n=1, params=SamplingParams())
    assert out[0][0].text.endswith("to q") and srv.chat_requests() == 3


def test_persistent_500_gives_up_with_one_line(server_factory):
    srv = server_factory(always=500)
    be = _backend(srv, max_retries=2)
    with pytest.raises(ThresherError) as e:
        be.generate([[{"role": "user", "content": "q"}]], n=1, params=SamplingParams())
    msg = str(e.value)
    assert "500" in msg and "gave up after 3 attempts" in msg and "\n" not in msg and KEY not in msg
    assert srv.chat_requests() == 3


@pytest.mark.parametrize("status,needle", [(401, "check the API key in $THRESHER_TEST_KEY"),
                                           (403, "check the API key"), (404, "404 Not Found")])
def test_auth_and_not_found_fail_at_once(server_factory, status, needle):
    srv = server_factory(always=status)
    be = _backend(srv)
    with pytest.raises(ThresherError) as e:
        be.generate([[{"role": "user", "content": "q"}]], n=1, params=SamplingParams())
    assert needle in str(e.value) and KEY not in str(e.value)
    assert srv.chat_requests() == 1  # no retries


def test_unknown_model_fails_before_generating(server_factory):
    srv = server_factory()
    with pytest.raises(ThresherError, match="model 'other' is not served"):
        make_backend("openai", "other", base_url=srv.base_url)
    assert srv.chat_requests() == 0


def test_server_dies_mid_run_then_resume(server_factory, cli_run, tmp_path):
    inp = write_prompts(tmp_path / "p.jsonl", [f"prompt {i}" for i in range(12)])
    srv = server_factory(die_after=4)
    out = tmp_path / "run"
    args = ["distill", "generate", inp, "--out", out, "--backend", "openai", "--teacher", "m", "-n", "2",
            "--api-key-env", "THRESHER_TEST_KEY", "--concurrency", "2", "--batch-size", "2",
            "--max-retries", "1"]
    r = cli_run(*args, "--base-url", srv.base_url)
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "cannot reach the server" in lines[0] and "Traceback" not in r.output
    assert (out / "shards").is_dir() and not (out / "kept.parquet").exists()
    done_before = srv.answered
    assert done_before == 4

    srv2 = server_factory()
    r = cli_run(*args, "--base-url", srv2.base_url)
    assert r.exit_code == 0, r.output
    assert "(8 reused, 16 generated)" in r.output  # two full batches of 2 prompts x 2 samples
    assert srv2.chat_requests() == 8
    kept = read_table(out / "kept.parquet")
    assert kept.height == 24 and kept["id"].n_unique() == 24
    assert set(kept["teacher"]) == {"m"}
    # the key is never written to the run folder nor printed
    for f in out.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
    assert KEY not in r.output
