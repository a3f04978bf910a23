"""openai-batch: failed and expired requests are re-submitted alone; --batch-results reads the
error file too; batch pricing in the estimate."""

from __future__ import annotations

import json

import polars as pl

from .test_openai_batch import PROMPTS, _answer, _gen


def test_failed_and_expired_requests_are_resubmitted_alone(tmp_path):
    src = tmp_path / "prompts.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    out = tmp_path / "gen"
    args = (src, "--out", out, "--backend", "openai-batch", "--teacher", "gpt-4o-mini", "-n", 2, "--max-tokens", 32)
    assert _gen(*args).exit_code == 75  # waiting for batch results (thresher.errors.EXIT_WAITING)
    requests = [json.loads(x) for x in (out / "openai-batch-requests.jsonl").read_text().splitlines()]
    ok, expired = requests
    output, errors = tmp_path / "output.jsonl", tmp_path / "errors.jsonl"
    output.write_text(json.dumps(_answer(ok, 0)) + "\n")
    errors.write_text(json.dumps({"id": "batch_req_1", "custom_id": expired["custom_id"], "response": None,
                                  "error": {"code": "batch_expired", "message": "not done in 24h"}}) + "\n")
    r = _gen(*args, "--batch-results", f"{output},{errors}")
    retry = out / "openai-batch-requests-retry.jsonl"
    assert r.exit_code == 1
    assert r.output.strip() == (f"Error: openai-batch: 1 of 2 requests failed or expired (first {expired['custom_id']}: "
                                f"batch_expired); wrote them alone to {retry}: submit it to the Batch API and rerun "
                                f"with --batch-results {output},{errors},RETRY_OUTPUT_FILE")
    again = [json.loads(x) for x in retry.read_text().splitlines()]
    assert again == [expired]  # the failed request alone, unchanged (same custom_id and body)
    retried = tmp_path / "retry-output.jsonl"
    retried.write_text(json.dumps(_answer(expired, 7)) + "\n")
    r = _gen(*args, "--batch-results", f"{output},{errors},{retried}")
    assert r.exit_code == 0, r.output
    kept = pl.read_parquet(out / "kept.parquet")
    assert kept.height == 4 and set(kept["parent_id"]) == {"p1", "p2"}


def test_batch_estimate_uses_batch_prices(tmp_path):
    src = tmp_path / "prompts.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    r = _gen(src, "--out", tmp_path / "g", "--backend", "openai-batch", "--teacher", "gpt-4o-mini", "--estimate")
    assert r.exit_code == 0, r.output
    assert "at USD 0.075 in / 0.3 out per 1M tokens (table 2025-06-01: gpt-4o-mini (batch: half price)" in r.output
    assert "2 requests" in r.output and "(approximation: characters/4" in r.output
