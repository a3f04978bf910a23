"""Mask lint: failures detected and counted, token view, and the ``train lint-masks`` command."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from rich.console import Console

from tests.train.conftest import TEMPLATES
from thresher.cli.main import cli
from thresher.errors import ThresherError
from thresher.train.data import FAILURE_KINDS, lint_rows, render_token_view

GOOD = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Another?"},
    {"role": "assistant", "content": "Green."},
]
NO_ANSWER = [{"role": "user", "content": "Anyone there?"}]
LONG = [
    {"role": "user", "content": "Count."},
    {"role": "assistant", "content": " ".join(["one two three"] * 60)},
]
# SmolLM2's tokenizer merges the header's "\n" with a leading space of the answer: that token is
# masked as the template's (see masks.py), the row trains from the answer's next token
LEADING_SPACE = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "  indented answer"},
]


def rows():
    return [
        {"id": "good", "messages": GOOD},
        {"id": "noanswer", "messages": NO_ANSWER},
        {"id": "long", "messages": LONG},
        {"id": "space", "messages": LEADING_SPACE},
    ]


def test_lint_counts_every_kind_of_problem(chat_tokenizers):
    report = lint_rows(chat_tokenizers["smollm2"], rows(), max_length=96)
    assert report.rows == 4
    assert [e.row_id for e in report.examples] == ["good", "space"]
    assert report.counts == {"no_trainable_token": 1, "response_cut": 1}
    assert {i.row_id for i in report.failures} == {"noanswer"}  # cut rows are listed, not failures
    assert not report.ok
    with pytest.raises(
        ThresherError, match=r"1 of 4 rows fail the mask lint .*--allow-lint-failures"
    ):
        report.check()
    report.check(allow_failures=True)  # skips them
    stats = report.to_stats()
    assert stats["trainable_rows"] == 2 and stats["counts"]["response_cut"] == 1
    assert "response_cut" not in FAILURE_KINDS


def test_truncate_keeps_long_rows_and_lists_them(chat_tokenizers):
    report = lint_rows(chat_tokenizers["smollm2"], rows()[2:3], max_length=96, overlong="truncate")
    assert [e.row_id for e in report.examples] == ["long"] and len(report.examples[0]) == 96
    assert report.counts == {"response_cut": 1} and report.ok


def test_lint_accepts_a_dataframe(chat_tokenizers):
    import polars as pl

    df = pl.DataFrame({"id": ["a", "b"], "messages": [GOOD, GOOD[1:3]]})
    report = lint_rows(chat_tokenizers["llama3"], df, max_length=256)
    assert report.ok and [e.row_id for e in report.examples] == ["a", "b"]


def test_token_view_highlights_trained_tokens(chat_tokenizers):
    tok = chat_tokenizers["qwen2"]
    ex = lint_rows(tok, rows()[:1], max_length=256).examples[0]
    text = render_token_view(tok, ex)
    highlighted = "".join(
        text.plain[s.start : s.end] for s in text.spans if "green" in str(s.style)
    )
    assert highlighted == "Blue.<|im_end|>Green.<|im_end|>"
    console = Console(record=True, force_terminal=True, width=100)
    console.print(text)
    assert "\x1b[" in console.export_text(styles=True)  # coloured


def write_jsonl(path, items):
    path.write_text("".join(json.dumps({"messages": r["messages"]}) + "\n" for r in items))
    return path


def test_cli_lint_masks_ok(chat_tokenizer_dirs, tmp_path):
    three = [{"messages": GOOD}, {"messages": GOOD[1:3]}, {"messages": GOOD[:3]}]
    data = write_jsonl(tmp_path / "ok.jsonl", three)
    res = CliRunner().invoke(
        cli, ["train", "lint-masks", str(data), "--base", str(chat_tokenizer_dirs["smollm2"])]
    )
    assert res.exit_code == 0, res.output
    assert "lint-masks: 3 rows, 3 trainable (no issues)" in res.output
    assert "Blue." in res.output  # the token view


def test_cli_lint_masks_fails_on_bad_rows(chat_tokenizer_dirs, tmp_path):
    data = write_jsonl(tmp_path / "bad.jsonl", rows())
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "lint-masks",
            str(data),
            "--base",
            str(chat_tokenizer_dirs["smollm2"]),
            "--max-length",
            "96",
        ],
    )
    assert res.exit_code == 1
    assert (
        "Error: 1 of 4 rows fail the mask lint (no_trainable_token)"
        in res.output
    )
    assert "response_cut" in res.output and "Traceback" not in res.output


def test_cli_lint_masks_template_missing_and_override(chat_tokenizers, tmp_path):
    tok = chat_tokenizers["smollm2"]
    saved = tok.chat_template
    try:
        tok.chat_template = None
        tok.save_pretrained(str(tmp_path / "student"))
    finally:
        tok.chat_template = saved
    data = write_jsonl(tmp_path / "ok.jsonl", rows()[:1])
    res = CliRunner().invoke(
        cli, ["train", "lint-masks", str(data), "--base", str(tmp_path / "student")]
    )
    assert res.exit_code == 1
    assert "has no chat template; pass --chat-template" in res.output
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "lint-masks",
            str(data),
            "--base",
            str(tmp_path / "student"),
            "--chat-template",
            str(TEMPLATES / "qwen2_5.jinja"),
        ],
    )
    assert res.exit_code == 0, res.output


def test_cli_lint_masks_base_not_found(tmp_path):
    data = write_jsonl(tmp_path / "ok.jsonl", rows()[:1])
    res = CliRunner().invoke(
        cli, ["train", "lint-masks", str(data), "--base", str(tmp_path / "nope")]
    )
    assert res.exit_code == 1 and "Error: base model not found" in res.output
