"""Cost estimate, accounting and the hard budget against a real local HTTP server that counts
tokens with the real SmolLM2 tokenizer (as a vLLM server of that model would)."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from thresher.io import read_table
from thresher.stage import StageStats

from .conftest import write_prompts
from .counting_server import CountingServer

PRICE = ["--price-in", "1000", "--price-out", "2000"]  # USD per 1M tokens: 0.001 / 0.002 per token


def _prompts(k: int) -> list[str]:
    topics = ["the sea", "prime numbers", "a red bicycle", "Paris in winter", "photosynthesis", "a haiku",
              "the history of bread", "why the sky is blue", "sorting algorithms", "a polite refusal"]
    return [f"Question {i}: write {1 + i % 4} sentences about {topics[i % len(topics)]}"
            + " please" * (i % 7) + "." for i in range(k)]


@pytest.fixture(scope="module")
def smol_count(smollm2_dir):
    from thresher.models import load_tokenizer

    tok = load_tokenizer(smollm2_dir)

    def count(msgs):
        ids = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)

    return count


@pytest.fixture
def server(smol_count):
    servers = []

    def make(**kw):
        s = CountingServer(smol_count, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def _gen(cli_run, prompts, out, srv, *extra):
    return cli_run("distill", "generate", str(prompts), "--out", str(out), "--backend", "openai",
                   "--base-url", srv.base_url, "--teacher", "smollm2", "--max-tokens", "16",
                   "--concurrency", "4", *extra)


@pytest.mark.slow
def test_estimate_within_10_percent_of_the_tokens_used(cli_run, tmp_path, server):
    prompts = write_prompts(tmp_path / "p.jsonl", _prompts(1000))
    srv = server()
    est = _gen(cli_run, prompts, tmp_path / "g", srv, "--estimate", *PRICE)
    assert est.exit_code == 0, est.output
    assert srv.log == []  # no request sent
    estimated = int(re.search(r"prompt tokens: ([\d,]+) \(tokenizer of smollm2\)", est.output)[1].replace(",", ""))
    assert "1,000 requests" in est.output and "at most 16,000 (max_tokens x samples)" in est.output
    res = _gen(cli_run, prompts, tmp_path / "g", srv, *PRICE)
    assert res.exit_code == 0, res.output
    actual = sum(e["prompt_tokens"] for e in srv.log)
    assert len(srv.log) == 1000 and abs(estimated - actual) <= 0.1 * actual
    stats = StageStats.read(tmp_path / "g").extra
    assert stats["prompt_tokens"] == actual and stats["requests"] == 1000
    assert stats["cost_usd"] == pytest.approx((actual * 1000 + stats["completion_tokens_total"] * 2000) / 1e6)
    usage = json.loads((tmp_path / "g" / "manifest.json").read_text())["usage"]  # the manifest carries them too
    assert usage["prompt_tokens"] == actual and usage["requests"] == 1000 and usage["cost_usd"] == stats["cost_usd"]
    # the same teacher again: the observed completion mean comes from the stored run
    again = _gen(cli_run, prompts, tmp_path / "g", srv, "--estimate", *PRICE)
    assert "0 samples to generate (1,000 already stored)" in again.output
    # a hosted model name with no local tokenizer: the documented approximation
    approx = cli_run("distill", "generate", str(prompts), "--out", str(tmp_path / "h"), "--backend", "openai",
                     "--base-url", srv.base_url, "--teacher", "gpt-4o-mini", "--max-tokens", "16", "--estimate")
    approx_tokens = int(re.search(r"prompt tokens: ([\d,]+) \(approximation", approx.output)[1].replace(",", ""))
    assert "gpt-4o-mini: USD 0.15/" not in approx.output and "table 2025-06-01: gpt-4o-mini" in approx.output
    print(f"\nestimate vs actual prompt tokens (1,000 prompts): tokenizer {estimated} vs {actual} "
          f"({(estimated - actual) / actual:+.1%}); approximation {approx_tokens} ({(approx_tokens - actual) / actual:+.1%})")


def test_unknown_model_has_no_price_never_zero(cli_run, tmp_path, server):
    prompts = write_prompts(tmp_path / "p.jsonl", _prompts(5))
    srv = server()
    res = _gen(cli_run, prompts, tmp_path / "g", srv, "--estimate")
    assert res.exit_code == 0 and "cost: price unknown" in res.output and "USD 0.0000" not in res.output
    run = _gen(cli_run, prompts, tmp_path / "g", srv)
    assert run.exit_code == 0 and "price unknown" in run.output
    stats = StageStats.read(tmp_path / "g").extra
    assert stats["cost_usd"] is None and stats["price"] == "unknown" and stats["prompt_tokens"] > 0


def test_max_cost_without_a_price_is_refused(cli_run, tmp_path, server):
    prompts = write_prompts(tmp_path / "p.jsonl", _prompts(3))
    res = _gen(cli_run, prompts, tmp_path / "g", server(), "--max-cost", "1")
    assert res.exit_code == 1 and "max_cost: the price of 'smollm2' is unknown" in res.output


@pytest.mark.parametrize("concurrency", ["1", "4"])
def test_max_cost_stops_within_one_request_and_the_rerun_loses_nothing(cli_run, tmp_path, server, concurrency):
    texts = _prompts(60)
    prompts = write_prompts(tmp_path / "p.jsonl", texts)
    srv = server()
    out = tmp_path / "g"

    def spent():
        return sum(e["prompt_tokens"] * 1000 + 12 * 2000 for e in srv.log) / 1e6

    res = _gen(cli_run, prompts, out, srv, *PRICE, "--max-cost", "1.5", "--concurrency", concurrency)
    asked = len(srv.log)
    assert res.exit_code == 1
    assert res.output.strip() == (f"Error: budget USD 1.5 reached after {asked} of 60 prompts; "
                                  "rerun with a higher --max-cost to continue")
    worst = max(e["prompt_tokens"] * 1000 + 16 * 2000 for e in srv.log) / 1e6
    assert 1.5 - worst < spent() <= 1.5
    print(f"\nbudget USD 1.5, concurrency {concurrency}: stopped after {asked} of 60 prompts at USD {spent():.4f} "
          f"(one request: at most USD {worst:.4f})")
    est = _gen(cli_run, prompts, out, srv, *PRICE, "--estimate")
    assert f"{60 - asked} samples to generate ({asked} already stored)" in est.output
    assert f"expected {12 * (60 - asked):,} (observed mean 12.0 over {asked} samples, stored samples" in est.output
    # the same budget again: nothing more is asked
    same = _gen(cli_run, prompts, out, srv, *PRICE, "--max-cost", "1.5")
    assert same.exit_code == 1 and len(srv.log) == asked
    res = _gen(cli_run, prompts, out, srv, *PRICE, "--max-cost", "100")
    assert res.exit_code == 0, res.output
    assert Counter(srv.questions()) == Counter(texts)  # every prompt asked exactly once
    kept = read_table(out / "kept.parquet")
    assert kept.height == 60
    stats = StageStats.read(out).extra
    assert stats["cost_usd_with_reused"] == pytest.approx(spent(), rel=1e-6)


def test_recipe_prices_block_and_max_cost_key(tmp_path):
    from thresher.distill.stage import make_config

    cfg = make_config(backend="openai", base_url="http://x/v1", prices={"input": 1.0, "output": 2.0}, max_cost=3)
    from thresher.distill.costs import price_for

    assert price_for(cfg, "openai", "anything").as_dict()["output_per_1m"] == 2.0
    with pytest.raises(Exception, match="prices: unknown key"):
        make_config(prices={"in": 1.0})
    assert cfg.max_cost == 3


def test_budget_and_rates_need_the_openai_backend():
    from thresher.distill.stage import make_config

    with pytest.raises(Exception) as e:
        make_config(backend="transformers", max_cost=1.0, tpm=1000)
    assert "max_cost: applies to --backend openai" in str(e.value) and "tpm: applies" in str(e.value)
