"""Reasoning traces are trained (issue 21 section 4): rendered natively by a template that
renders ``reasoning_content`` (Qwen3's) and as ``<think>...</think>`` before the answer
otherwise (SmolLM2's); trained like the answer, masked with ``train_reasoning=False``; the
generate stage's ``reasoning`` column reaches the trainer; length limits never cut a trace."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.train._trainer_helpers import make_rows, one_thread, write_rows  # noqa: F401 (autouse fixture)
from tests.train.conftest import TEMPLATES
from tests.train.test_masks import EOT, templated
from thresher.cli.main import cli
from thresher.train.data import (
    FAILURE_KINDS,
    IGNORE_INDEX,
    Example,
    LintIssue,
    encode_conversation,
    lint_rows,
    renders_reasoning,
)

TRACE = "Two plus three: count 3, 4, 5.\nSo the sum is 5."
ANSWER = "The answer is 5."
ROW = [{"role": "user", "content": "What is 2+3?"},
       {"role": "assistant", "content": ANSWER, "reasoning_content": TRACE}]


@pytest.fixture(params=["smollm2", "qwen3"])
def student(request, chat_tokenizers):
    """(name, tokenizer): SmolLM2's own template, or Qwen3's template on the Qwen2 vocabulary."""
    if request.param == "smollm2":
        yield "smollm2", chat_tokenizers["smollm2"]
        return
    tok = chat_tokenizers["qwen2"]
    with templated(tok, (TEMPLATES / "qwen3.jinja").read_text(encoding="utf-8")) as t:
        yield "qwen3", t


def decoded(tok, ids):
    return tok.decode(ids, skip_special_tokens=False)


def trained_text(tok, ex: Example) -> str:
    return decoded(tok, [t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE_INDEX])


def test_native_rendering_is_detected(student):
    name, tok = student
    assert renders_reasoning(tok) is (name == "qwen3")


def test_trace_and_answer_are_trained(student):
    name, tok = student
    ex = encode_conversation(tok, ROW, max_length=512)
    assert isinstance(ex, Example), ex
    (a, b), = ex.traces
    trace = decoded(tok, ex.input_ids[a:b])
    assert trace.startswith("<think>\n") and TRACE in trace and trace.rstrip().endswith("</think>")
    # the trace and then the answer and its end-of-turn token, as one trained run
    assert trained_text(tok, ex) == decoded(tok, ex.input_ids[a:b]) + ANSWER + EOT["qwen2"]
    assert all(lab != IGNORE_INDEX for lab in ex.labels[a:b])
    full = decoded(tok, ex.input_ids)
    assert full == tok.apply_chat_template(
        [ROW[0], {"role": "assistant", "content": f"<think>\n{TRACE}\n</think>\n\n{ANSWER}"}], tokenize=False)


def test_train_reasoning_false_masks_the_trace_only(student):
    _, tok = student
    ex = encode_conversation(tok, ROW, max_length=512, train_reasoning=False)
    (a, b), = ex.traces
    assert all(lab == IGNORE_INDEX for lab in ex.labels[a:b])
    assert trained_text(tok, ex) == ANSWER + EOT["qwen2"]
    on = encode_conversation(tok, ROW, max_length=512)
    assert on.input_ids == ex.input_ids and on.n_trained == ex.n_trained + (b - a)


def test_lint_passes_and_reports_traces(student):
    _, tok = student
    rows = [{"id": "r", "messages": ROW}, {"id": "plain", "messages": ROW[:1] + [{"role": "assistant", "content": "5"}]}]
    for train in (True, False):
        report = lint_rows(tok, rows, max_length=512, train_reasoning=train)
        assert report.ok and not report.issues, [(i.kind, i.message) for i in report.issues]
        n = report.examples[0].n_reasoning
        assert report.summary().endswith(f"; 1 with reasoning traces ({n} tokens, {'trained' if train else 'masked'})")
        assert report.to_stats()["reasoning_tokens"] == n > 10


def test_generation_markers_agree_with_a_folded_trace(chat_tokenizers):
    tok = chat_tokenizers["smollm2"]
    with templated(tok, (TEMPLATES / "smollm2_generation.jinja").read_text(encoding="utf-8")):
        for train in (True, False):
            report = lint_rows(tok, [{"id": "r", "messages": ROW}], max_length=512, train_reasoning=train)
            assert report.ok and not report.issues, [(i.kind, i.message) for i in report.issues]


def test_reasoning_column_and_leading_think_block_are_traces(chat_tokenizers):
    import polars as pl

    tok = chat_tokenizers["smollm2"]
    plain = [ROW[0], {"role": "assistant", "content": ANSWER}]
    df = pl.DataFrame({"id": ["col", "none", "inline"], "reasoning": [TRACE, None, None],
                       "messages": [plain, plain, [ROW[0], {"role": "assistant",
                                                            "content": f"<think>{TRACE}</think>{ANSWER}"}]]})
    report = lint_rows(tok, df, max_length=512, train_reasoning=False)
    assert report.ok, [(i.kind, i.message) for i in report.issues]
    col, none, inline = report.examples
    assert col.traces and inline.traces and not none.traces
    assert col.input_ids == inline.input_ids and col.labels == inline.labels
    assert trained_text(tok, col) == ANSWER + "<|im_end|>"


def test_max_reasoning_tokens_drops_the_row_without_failing(chat_tokenizers):
    tok = chat_tokenizers["smollm2"]
    ex = encode_conversation(tok, ROW, max_length=512)
    out = encode_conversation(tok, ROW, max_length=512, max_reasoning_tokens=ex.n_reasoning - 1)
    assert isinstance(out, LintIssue) and out.kind == "reasoning_too_long" and "reasoning_too_long" not in FAILURE_KINDS
    assert out.message == (f"a reasoning trace of {ex.n_reasoning} tokens > --max-reasoning-tokens "
                           f"{ex.n_reasoning - 1} (row dropped)")
    assert isinstance(encode_conversation(tok, ROW, max_length=512, max_reasoning_tokens=ex.n_reasoning), Example)


def test_truncation_never_cuts_inside_a_trace(chat_tokenizers):
    tok = chat_tokenizers["smollm2"]
    ex = encode_conversation(tok, ROW, max_length=512)
    (a, b), = ex.traces
    for limit in (a + 1, b - 1, b):  # inside the trace, or right at its end (no answer left)
        out = encode_conversation(tok, ROW, max_length=limit, overlong="truncate")
        assert isinstance(out, LintIssue) and out.kind == "reasoning_cut", limit
        assert out.message.startswith(f"{len(ex)} tokens > --max-length {limit}: truncation would cut a reasoning trace")
    cut = encode_conversation(tok, ROW, max_length=b + 2, overlong="truncate")  # in the answer: kept, reported
    assert isinstance(cut, Example) and cut.cut and cut.traces == ((a, b),)
    report = lint_rows(tok, [{"id": "r", "messages": ROW}], max_length=a + 1, overlong="truncate")
    assert report.counts == {"reasoning_cut": 1} and report.ok and not report.examples


def _lint_cli(folder, data, *extra):
    return CliRunner().invoke(cli, ["train", "lint-masks", str(data), "--base", str(folder), "--show", "1", *extra])


def test_lint_masks_shows_the_trace_as_trained(chat_tokenizer_dirs, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"id": "r", "messages": ROW}) + "\n")
    res = _lint_cli(chat_tokenizer_dirs["smollm2"], data)
    assert res.exit_code == 0, res.output
    assert "«<think>\\n" in res.output and "</think>" in res.output  # the trace opens the trained run
    assert "1 with reasoning traces (" in res.output and "tokens, trained)" in res.output
    res = _lint_cli(chat_tokenizer_dirs["smollm2"], data, "--no-train-reasoning")
    assert res.exit_code == 0, res.output
    assert "«<think>" not in res.output and "«The answer is 5." in res.output
    assert "tokens, masked)" in res.output
    res = _lint_cli(chat_tokenizer_dirs["qwen2"], data, "--chat-template", TEMPLATES / "qwen3.jinja")
    assert res.exit_code == 0 and "«<think>\\n" in res.output, res.output


def _reasoning_rows(n: int, long_every: int = 4) -> list[dict]:
    rows = make_rows(n, multi_turn=False)
    for i, r in enumerate(rows):
        words = (" ".join(["step by step the count goes on"] * (40 if i % long_every == 0 else 2)))
        r["messages"][-1]["reasoning_content"] = words
        if i % long_every == 1:  # a short trace and a long answer: truncated in the answer
            r["messages"][-1]["content"] += " and so on" * 150
    return rows


def test_train_lora_trains_traces_and_reports_rows_cut_inside_one(tmp_path, tiny_lm_dir):
    data = write_rows(tmp_path / "rows.jsonl", _reasoning_rows(16))
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["train", "lora", str(data), "--base", str(tiny_lm_dir), "--out", str(out),
                                 "--max-steps", "2", "--batch-size", "4", "--max-length", "256",
                                 "--overlong", "truncate", "--packing"])
    assert r.exit_code == 0, r.output
    stats = json.loads((out / "stats.json").read_text())
    o = stats["overlong"]
    assert o["reasoning_cut"] == 4 and o["rows"] == 8 and o["dropped"] == 4 and o["truncated"] == 4
    assert o["truncated_rows"] == ["row1", "row5", "row9", "row13"]
    assert ("train: warning: 8 of 16 rows are longer than --max-length 256 (longest "
            f"{o['longest']} tokens): 4 dropped, 4 of them because the cut fell inside a reasoning trace, "
            "4 truncated (dropped rows in dropped.parquet, truncated ones in stats.json)") in r.output
    assert stats["lint"]["reasoning_rows"] == 12 and stats["lint"]["reasoning_trained"] is True
    import polars as pl

    dropped = pl.read_parquet(out / "dropped.parquet")
    assert dropped.height == 4 and all(x.startswith("reasoning_cut: ") for x in dropped["drop_reason"])
    r = CliRunner().invoke(cli, ["train", "lora", str(data), "--base", str(tiny_lm_dir), "--out", str(tmp_path / "m"),
                                 "--max-steps", "1", "--max-length", "1024", "--no-train-reasoning"])
    assert r.exit_code == 0, r.output
    lint = json.loads((tmp_path / "m" / "stats.json").read_text())["lint"]
    assert lint["reasoning_trained"] is False and lint["reasoning_rows"] == 16
    from thresher.train.data import load_tokenizer

    trained = lint_rows(load_tokenizer(str(tiny_lm_dir)), _reasoning_rows(16), max_length=1024)
    assert lint["trained_tokens"] == trained.to_stats()["trained_tokens"] - lint["reasoning_tokens"]


def test_long_cpu_sequences_fix_the_malloc_mmap_threshold(monkeypatch):
    import os
    import subprocess
    import sys

    from thresher.train.config import TrainConfig
    from thresher.train.stage import bound_allocator

    assert bound_allocator(TrainConfig(max_length=4096), "cpu") is False  # short: the heap is faster
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    assert bound_allocator(TrainConfig(max_length=16384), "cpu") is False  # the user's own setting wins
    code = ("import sys; from thresher.train.config import TrainConfig; "
            "from thresher.train.stage import bound_allocator; "
            "sys.exit(0 if bound_allocator(TrainConfig(max_length=16384), 'cpu') else 3)")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_qwen3_multi_turn_trains_every_turn(chat_tokenizers):
    """Qwen3 renders the last turn with its <think> block and earlier turns without one, so
    prefix renders disagree; every turn is still located (in the whole rendering)."""
    tok = chat_tokenizers["qwen2"]
    msgs = [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1", "reasoning_content": "R1"},
            {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2", "reasoning_content": "R2"}]
    with templated(tok, (TEMPLATES / "qwen3.jinja").read_text(encoding="utf-8")):
        ex = encode_conversation(tok, msgs, max_length=512)
        assert isinstance(ex, Example), ex
        assert trained_text(tok, ex) == "A1<|im_end|><think>\nR2\n</think>\n\nA2<|im_end|>"  # R1: dropped by Qwen3
        masked = encode_conversation(tok, msgs, max_length=512, train_reasoning=False)
        assert trained_text(tok, masked) == "A1<|im_end|>A2<|im_end|>"
        assert lint_rows(tok, [{"id": "r", "messages": msgs}], max_length=512).ok
