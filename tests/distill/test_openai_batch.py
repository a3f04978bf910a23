"""`distill generate --backend openai-batch`: write a Batch API input file, read the output back."""

from __future__ import annotations

import json

import polars as pl

from tests.conftest import invoke

PROMPTS = [{"id": "p1", "prompt": "Name a prime."}, {"id": "p2", "prompt": "Name a colour.", "system": "Be brief."}]


def _gen(*args):
    return invoke("distill", "generate", *args)


def _answer(request: dict, k: int) -> dict:
    """What the Batch API returns for a request (k-th answer text per choice)."""
    user = request["body"]["messages"][-1]["content"]
    n = request["body"]["n"]
    return {"id": f"batch_req_{k}", "custom_id": request["custom_id"], "error": None,
            "response": {"status_code": 200, "body": {
                "model": "gpt-test-2025", "usage": {"prompt_tokens": 9, "completion_tokens": 4 * n},
                "choices": [{"index": j, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"answer {j} to {user}"}}
                            for j in range(n)]}}}


def test_write_requests_then_read_results(tmp_path):
    src = tmp_path / "prompts.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    out = tmp_path / "gen"
    args = (src, "--out", out, "--backend", "openai-batch", "--teacher", "gpt-test", "-n", 2,
            "--max-tokens", 32, "--temperature", 0.5)
    r = _gen(*args)
    req_file = out / "openai-batch-requests.jsonl"
    assert r.exit_code == 75  # EXIT_WAITING: nothing failed, rerun with the results
    assert r.output.endswith(f"openai-batch: wrote 2 requests to {req_file}; submit it to the OpenAI Batch "
                             "API (endpoint /v1/chat/completions), download the output file and rerun this "
                             "command with --batch-results FILE\n")
    requests = [json.loads(x) for x in req_file.read_text().splitlines()]
    assert {r["url"] for r in requests} == {"/v1/chat/completions"}
    bodies = sorted((r["body"]["messages"] for r in requests), key=len)
    assert bodies == [[{"role": "user", "content": "Name a prime."}],
                      [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]]
    assert all(r["body"]["model"] == "gpt-test" and r["body"]["n"] == 2 and r["body"]["max_tokens"] == 32
               for r in requests)

    results = tmp_path / "batch_output.jsonl"  # in any order, as the API writes it
    results.write_text("".join(json.dumps(_answer(q, k)) + "\n" for k, q in enumerate(reversed(requests))))
    r = _gen(*args, "--batch-results", results)
    assert r.exit_code == 0, r.output
    kept = pl.read_parquet(out / "kept.parquet").sort("parent_id", "sample_index")
    got = [(row["parent_id"], row["sample_index"], row["messages"][-1]["content"]) for row in kept.iter_rows(named=True)]
    assert got == [("p1", 0, "answer 0 to Name a prime."), ("p1", 1, "answer 1 to Name a prime."),
                   ("p2", 0, "answer 0 to Name a colour."), ("p2", 1, "answer 1 to Name a colour.")]
    assert set(kept["teacher"]) == {"gpt-test"} and set(kept["completion_tokens"]) == {4}


def test_results_missing_a_request(tmp_path):
    src = tmp_path / "prompts.jsonl"
    src.write_text(json.dumps(PROMPTS[0]) + "\n")
    results = tmp_path / "out.jsonl"
    results.write_text(json.dumps({"custom_id": "thr-other", "response": None, "error": None}) + "\n")
    r = _gen(src, "--out", tmp_path / "gen", "--backend", "openai-batch", "--teacher", "gpt-test",
             "--batch-results", results)
    assert r.exit_code == 1
    assert f"Error: openai-batch: {results} has no result for 1 of 1 requests" in r.output
    r = _gen(src, "--out", tmp_path / "gen2", "--backend", "openai-batch")
    assert r.exit_code != 0 and "teacher: required with backend openai-batch" in r.output
