"""--rpm/--tpm: the client-side token bucket, its adaptation to x-ratelimit-* headers, and the
observed rates at a real local HTTP server that counts tokens with the SmolLM2 tokenizer.

The tpm window is THRESHER_TEST_TPM_WINDOW seconds (default 6; the issue's 30 s check:
THRESHER_TEST_TPM_WINDOW=30)."""

from __future__ import annotations

import os
import time

import pytest

from thresher.distill.ratelimit import RateLimiter, parse_reset

from .conftest import write_prompts
from .test_costs import _prompts, server, smol_count  # noqa: F401 - fixtures

WINDOW = float(os.environ.get("THRESHER_TEST_TPM_WINDOW", "6"))


@pytest.mark.parametrize("text,seconds", [("1s", 1.0), ("6m0s", 360.0), ("250ms", 0.25), ("1.5", 1.5),
                                          ("2h1m", 7260.0), ("", None), ("soon", None)])
def test_parse_reset(text, seconds):
    assert parse_reset(text) == seconds


def test_bucket_spaces_requests_at_the_rate():
    lim = RateLimiter(tpm=60_000, burst_s=0.0)  # 1000 tokens/s
    t0 = time.monotonic()
    for _ in range(6):
        lim.acquire(100)
    assert 0.45 <= time.monotonic() - t0 <= 0.9  # 5 intervals of 0.1 s


def test_headers_lower_the_rate_and_pause_until_reset():
    lim = RateLimiter(rpm=6000)
    lim.observe({"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "0",
                 "x-ratelimit-reset-requests": "300ms"})
    assert lim.requests.rate == 10.0
    t0 = time.monotonic()
    lim.acquire(1)
    assert time.monotonic() - t0 >= 0.25


def _observed_per_minute(log, window, cost):
    t0 = log[0]["t"]
    used = sum(cost(e) for e in log if e["t"] - t0 < window)
    return used / window * 60


def test_tpm_keeps_the_observed_rate_within_10_percent(cli_run, tmp_path, server):  # noqa: F811
    tpm = 30_000  # 500 tokens/s; a request is about 45 prompt + 16 max_tokens
    srv = server(limit_tpm=tpm * 1.25)
    k = int(tpm / 60 * WINDOW / 50 * 1.5) + 20
    prompts = write_prompts(tmp_path / "p.jsonl", _prompts(k))
    res = cli_run("distill", "generate", str(prompts), "--out", str(tmp_path / "g"), "--backend", "openai",
                  "--base-url", srv.base_url, "--teacher", "smollm2", "--max-tokens", "16", "--concurrency", "8",
                  "--tpm", str(tpm))
    assert res.exit_code == 0, res.output
    assert srv.log[-1]["t"] - srv.log[0]["t"] > WINDOW  # the run outlasted the window
    rate = _observed_per_minute(srv.log, WINDOW, lambda e: e["prompt_tokens"] + e["max_tokens"] * e["n"])
    print(f"\ntpm {tpm}: observed {rate:.0f} tokens/min over {WINDOW:g} s ({rate / tpm - 1:+.1%}), "
          f"{len(srv.log)} requests, {srv.rejected} refused by the server")
    assert abs(rate - tpm) <= 0.1 * tpm and srv.rejected == 0


def test_rpm_keeps_the_observed_request_rate(cli_run, tmp_path, server):  # noqa: F811
    srv = server()
    prompts = write_prompts(tmp_path / "p.jsonl", _prompts(70))
    res = cli_run("distill", "generate", str(prompts), "--out", str(tmp_path / "g"), "--backend", "openai",
                  "--base-url", srv.base_url, "--teacher", "smollm2", "--max-tokens", "8", "--rpm", "600")
    assert res.exit_code == 0, res.output
    rate = _observed_per_minute(srv.log, 5.0, lambda e: 1)
    print(f"\nrpm 600: observed {rate:.0f} requests/min over 5 s")
    assert abs(rate - 600) <= 0.15 * 600  # one request is 2% of the window; the burst allowance 4%
