"""Bad input gives a one-line ``Error:`` message and exit status 1, never a traceback."""

from __future__ import annotations

import json
import socket

import pytest

from tests.conftest import one_error_line


def _one_line_error(r, *needles):
    msg = one_error_line(r, status=1)
    for n in needles:
        assert n in msg, msg
    return msg


def test_missing_prompt(cli_run, tmp_path):
    inp = tmp_path / "p.jsonl"
    inp.write_text(json.dumps({"messages": [{"role": "user", "content": "ok"}]}) + "\n"
                   + json.dumps({"id": "x7", "messages": [{"role": "assistant", "content": "no question"}]}) + "\n")
    r = cli_run("distill", "generate", inp, "--out", tmp_path / "o")
    _one_line_error(r, "p.jsonl", "row 2", "x7", "missing prompt")


def test_empty_prompt_field(cli_run, tmp_path):
    inp = tmp_path / "p.jsonl"
    inp.write_text(json.dumps({"prompt": "fine"}) + "\n" + json.dumps({"prompt": "   "}) + "\n")
    r = cli_run("distill", "generate", inp, "--out", tmp_path / "o")
    _one_line_error(r, "p.jsonl")


def test_unknown_backend(cli_run, prompts_file, tmp_path):
    """The choices come from the Config's Literal: a usage error (exit 2) listing them."""
    r = cli_run("distill", "generate", prompts_file, "--out", tmp_path / "o", "--backend", "magic")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.output.strip().splitlines()[-1] == ("Error: Invalid value for '--backend' / '-b': 'magic' is not one of "
                                                 "'auto', 'transformers', 'vllm', 'openai', 'openai-batch'.")


@pytest.mark.parametrize("n", ["0", "-2"])
def test_n_below_one(cli_run, prompts_file, tmp_path, n):
    r = cli_run("distill", "generate", prompts_file, "--out", tmp_path / "o", "-n", n)
    _one_line_error(r, "n: must be >= 1")


def test_several_bad_options_at_once(cli_run, prompts_file, tmp_path):
    r = cli_run("distill", "generate", prompts_file, "--out", tmp_path / "o", "-n", "0",
                "--temperature", "-1", "--top-p", "2")
    _one_line_error(r, "3 problems", "n:", "temperature:", "top_p:")


def test_model_not_found(cli_run, prompts_file, tmp_path):
    r = cli_run("distill", "generate", prompts_file, "--out", tmp_path / "o", "--teacher", tmp_path / "missing")
    _one_line_error(r, "not found")


def test_hub_name_offline_fails_fast(cli_run, prompts_file, tmp_path):
    r = cli_run("distill", "generate", prompts_file, "--out", tmp_path / "o", "--teacher", "nobody/no-such-model",
                env={"HF_HUB_OFFLINE": "1"})
    _one_line_error(r, "nobody/no-such-model")


def test_missing_input_file(cli_run, tmp_path):
    r = cli_run("distill", "generate", tmp_path / "nope.jsonl", "--out", tmp_path / "o")
    _one_line_error(r, "nope.jsonl")


def test_unreachable_server(cli_run, prompts_file, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cli_run("distill", "generate", prompts_file, "--out", tmp_path / "o", "--backend", "openai",
                "--base-url", f"http://127.0.0.1:{port}/v1", "--teacher", "m", "--max-retries", "1")
    _one_line_error(r, "cannot reach the server", f"127.0.0.1:{port}")


def test_openai_needs_base_url(cli_run, prompts_file, tmp_path):
    r = cli_run("distill", "generate", prompts_file, "--out", tmp_path / "o", "--backend", "openai")
    _one_line_error(r, "base_url: required")


def test_vllm_backend_without_vllm(cli_run, prompts_file, tmp_path, tiny_lm_dir):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    r = cli_run("distill", "generate", prompts_file, "--out", tmp_path / "o", "--backend", "vllm",
                "--teacher", tiny_lm_dir)
    _one_line_error(r, "vllm package is not installed")


def test_help_lists_the_options(cli_run):
    r = cli_run("distill", "generate", "--help")
    assert r.exit_code == 0
    for opt in ("--teacher", "--backend", "-n", "--base-url", "--api-key-env", "--system", "--reasoning"):
        assert opt in r.output
