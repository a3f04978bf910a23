"""The eval stage on verifiable sets (issue 21): the math and code judges judge the answer
after its reasoning block, and avg@k (pass@1 averaged over k sampled answers) with
bootstrap CIs over prompts. The answers come from a real HTTP server through the openai
backend (scripted answers: the eval's own logic is under test)."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

from tests.distill.loopback import ScriptedServer
from thresher.evaluate.judges import parse_judge
from thresher.evaluate.verifiers import Item, after_reasoning


def judge(spec: str, answer: str, **item) -> float:
    return parse_judge(spec).verifier()(answer, Item(**item))


def test_after_reasoning():
    assert after_reasoning("<think>a</think> The answer is 4.") == "The answer is 4."
    assert after_reasoning("reasoning only</think>4") == "4"  # the template opened the block
    assert after_reasoning("Sure. <think>never closed 4") == "Sure."
    assert after_reasoning("<thinking>x</thinking>y") == "y"
    assert after_reasoning("plain 4") == "plain 4"


def test_math_and_code_judges_read_the_answer_after_the_reasoning():
    assert judge("math", r"<think>it is \frac{1}{2}</think>So $\boxed{0.5}$.", reference=r"\frac12") == 1.0
    assert judge("math", r"<think>it is \boxed{0.5}</think>So $\boxed{0.7}$.", reference="0.5") == 0.0
    assert judge("math", "The answer is 7", reference="") == 0.0
    good = "```python\ndef sq(x):\n    return x * x\n```"
    bad = "```python\ndef sq(x):\n    return x + x\n```"
    tests = "def check(f):\n    assert f(3) == 9\n"
    assert judge("code", f"<think>{bad}</think>{good}", tests=tests, entry_point="sq") == 1.0
    assert judge("code", f"<think>{good}</think>{bad}", tests=tests, entry_point="sq") == 0.0
    assert judge("numeric", "<think>7</think>8", reference="7") == 0.0
    assert judge("exact", "<think>no</think>Paris", reference="paris") == 1.0
    assert judge("ends", "<think>x</think>", finish_reason="stop") == 1.0  # ends reads the whole answer


#: question -> sample index -> answer: 4/4, 2/4 and 0/4 right
def _answer(question: str, i: int) -> str:
    if question.startswith("Q1"):
        return "<think>3 + 4</think>The answer is 7."
    if question.startswith("Q2"):
        return "$\\boxed{0.5}$" if i < 2 else "$\\boxed{0.25}$"
    return "<think>the answer is 3</think>The answer is 4."


def _content(text: str) -> str:
    m = re.match(r"answer \S+-(\d+) to (.*)", text, re.S)
    return _answer(m.group(2), int(m.group(1)))


@pytest.fixture
def server():
    s = ScriptedServer(content=_content)
    yield s
    s.stop()


def test_avg_at_k_with_bootstrap_cis_over_prompts(tmp_path, server):
    from thresher.config import from_dict
    from thresher.evaluate.stage import Config, run

    held = tmp_path / "held.jsonl"
    with open(held, "w") as f:
        for q, ref in (("Q1: 3 + 4?", "7"), ("Q2: half of 1?", "\\frac{1}{2}"), ("Q3: 1 + 2?", "3")):
            f.write(json.dumps({"prompt": q, "answer": ref}) + "\n")  # answer: read as the reference
    cfg = from_dict(Config, {"models": ["m=m"], "judges": ["math", "ends"], "samples": 4, "baseline": False,
                             "resamples": 500, "backend": "openai", "base_url": server.base_url,
                             "max_tokens": 32, "generate": {"max_retries": 0}})
    res = run([held], tmp_path / "ev", cfg)
    ev = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert ev["samples"] == 4 and ev["temperature"] == 0.6
    assert {r["n"] for r in server.requests} == {4} and {r["temperature"] for r in server.requests} == {0.6}
    kept = pl.read_parquet(res.kept_path)
    assert kept["eval_math"].to_list() == [1.0, 0.5, 0.0] and kept["eval_ends"].to_list() == [1.0] * 3
    m = ev["models"]["m"]["metrics"]["math"]
    assert m["mean"] == 0.5 and m["n"] == 3 and 0.0 <= m["low"] < 0.5 < m["high"] <= 1.0


def test_avg_at_k_needs_sampling(tmp_path):
    from click.testing import CliRunner

    from thresher.cli.main import cli

    held = tmp_path / "held.jsonl"
    held.write_text('{"prompt": "Q?", "answer": "1"}\n')
    r = CliRunner().invoke(cli, ["eval", str(held), "-m", "m=smollm2", "-j", "math", "--samples", "4",
                                 "--temperature", "0", "--out", str(tmp_path / "e")])
    assert r.exit_code == 1
    assert r.output == "Error: temperature: avg@k (samples > 1) needs sampled answers, temperature > 0\n"
