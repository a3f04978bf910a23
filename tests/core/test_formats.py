"""The formats people bring (issue 14): OpenAI Batch files, content parts, tool calls,
per-message keys, DatasetDict splits and TRL's conversational prompt-completion; each through
``thresher convert`` and through a stage (``curate filter``), asserting the exact rows read."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from thresher.cli.main import cli
from thresher.io.chat import strip_nulls

CALL = {"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}
TOOL_ROW = {"id": "t1", "messages": [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"},
    {"role": "assistant", "content": "It is 21 degrees."},
]}
TOOL_MESSAGES = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "content": "{\"temp\": 21}", "tool_call_id": "call_1"},
    {"role": "assistant", "content": "It is 21 degrees."},
]


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _convert(*args: str):
    return CliRunner().invoke(cli, ["convert", *args])


def _rows(path: Path) -> list[dict]:
    df = pl.read_parquet(path)
    return [{"id": r["id"], "messages": strip_nulls(r["messages"])} for r in df.iter_rows(named=True)]


def _through_convert(tmp_path: Path, *srcs: Path, args: tuple[str, ...] = ()) -> list[dict]:
    out = tmp_path / "converted.parquet"
    res = _convert(*map(str, srcs), str(out), *args)
    assert res.exit_code == 0, res.output
    return _rows(out)


def _through_stage(tmp_path: Path, *srcs: Path) -> list[dict]:
    out = tmp_path / "filter"
    res = CliRunner().invoke(cli, ["curate", "filter", *map(str, srcs), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return _rows(out / "kept.parquet")


def _both(tmp_path: Path, *srcs: Path) -> list[dict]:
    a = _through_convert(tmp_path, *srcs)
    b = _through_stage(tmp_path, *srcs)
    assert sorted(a, key=lambda r: r["id"]) == sorted(b, key=lambda r: r["id"])
    return sorted(a, key=lambda r: r["id"])


REQUESTS = [
    {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Be brief."},
                                                   {"role": "user", "content": "Capital of France?"}]}},
    {"custom_id": "r2", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "2+2?"}]}},
]


def _result(cid: str, text: str) -> dict:
    return {"id": f"batch_req_{cid}", "custom_id": cid, "error": None,
            "response": {"status_code": 200, "request_id": "x", "body": {
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                             "finish_reason": "stop"}]}}}


def test_openai_batch_input_file_reads_as_prompts(tmp_path):
    src = _jsonl(tmp_path / "requests.jsonl", REQUESTS)
    out = tmp_path / "p.jsonl"
    res = _convert(str(src), str(out), "--to", "prompt")
    assert res.exit_code == 0, res.output
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r.get("system"), r["prompt"]) for r in got] == [
        ("r1", "Be brief.", "Capital of France?"), ("r2", None, "2+2?")]


def test_openai_batch_output_joined_to_input_by_custom_id(tmp_path):
    req = _jsonl(tmp_path / "requests.jsonl", REQUESTS)
    res_file = _jsonl(tmp_path / "results.jsonl", [_result("r2", "4"), _result("r1", "Paris.")])
    rows = _both(tmp_path, req, res_file)
    assert rows == [
        {"id": "r1", "messages": [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "Capital of France?"},
                                  {"role": "assistant", "content": "Paris."}]},
        {"id": "r2", "messages": [{"role": "user", "content": "2+2?"},
                                  {"role": "assistant", "content": "4"}]},
    ]
    df = pl.read_parquet(tmp_path / "converted.parquet")
    assert set(df["teacher"]) == {"gpt-4o-mini-2024-07-18"}


def test_openai_batch_output_alone_and_failed_requests(tmp_path):
    failed = {"id": "batch_req_r3", "custom_id": "r3", "response": None,
              "error": {"code": "server_error", "message": "boom"}}
    src = _jsonl(tmp_path / "results.jsonl", [_result("r1", "Paris."), failed])
    res = _convert(str(src), str(tmp_path / "o.parquet"))
    assert res.exit_code == 1
    assert res.output == f"Error: {src}:2: batch request 'r3' failed: boom\n"
    res = _convert(str(src), str(tmp_path / "o.parquet"), "--on-bad-rows", "skip")
    assert res.exit_code == 0, res.output
    assert _rows(tmp_path / "o.parquet") == [{"id": "r1", "messages": [{"role": "assistant", "content": "Paris."}]}]


def test_result_without_request_is_an_error(tmp_path):
    req = _jsonl(tmp_path / "requests.jsonl", REQUESTS[:1])
    out = _jsonl(tmp_path / "results.jsonl", [_result("r9", "x")])
    res = _convert(str(req), str(out), str(tmp_path / "o.parquet"))
    assert res.exit_code == 1
    assert res.output == f"Error: {out}: custom_id 'r9' has no request in {req}\n"


def test_content_parts_are_joined(tmp_path):
    src = _jsonl(tmp_path / "parts.jsonl", [{"id": "a", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi!"}]}]}])
    assert _both(tmp_path, src) == [{"id": "a", "messages": [
        {"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "Hi!"}]}]


def test_image_part_is_an_error_or_a_reject(tmp_path):
    good = {"id": "g", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}
    img = {"id": "i", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]},
        {"role": "assistant", "content": "A cat."}]}
    src = _jsonl(tmp_path / "img.jsonl", [good, img])
    res = _convert(str(src), str(tmp_path / "o.parquet"))
    assert res.exit_code == 1
    assert res.output == (f"Error: {src}:2: message 1 (user): content part 2 is 'image_url', not text "
                          "(only text parts can be trained on)\n")
    res = _convert(str(src), str(tmp_path / "o.parquet"), "--on-bad-rows", "skip")
    assert res.exit_code == 0, res.output
    assert _rows(tmp_path / "o.parquet") == [{"id": "g", "messages": good["messages"]}]
    rejects = [json.loads(x) for x in (tmp_path / "o.rejects.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejects] == ["message 1 (user): content part 2 is 'image_url', not text "
                                              "(only text parts can be trained on)"]


def test_tool_calls_are_kept(tmp_path):
    src = _jsonl(tmp_path / "tools.jsonl", [TOOL_ROW])
    assert _both(tmp_path, src) == [{"id": "t1", "messages": TOOL_MESSAGES}]
    # and they survive a round trip through JSONL messages
    out = tmp_path / "back.jsonl"
    assert _convert(str(tmp_path / "converted.parquet"), str(out)).exit_code == 0
    again = _through_convert(tmp_path, out)
    assert again == [{"id": "t1", "messages": TOOL_MESSAGES}]


def test_tool_calls_only_on_assistant_turns(tmp_path):
    src = _jsonl(tmp_path / "bad.jsonl", [{"messages": [
        {"role": "user", "content": "x", "tool_calls": [CALL]}, {"role": "assistant", "content": "y"}]}])
    res = _convert(str(src), str(tmp_path / "o.parquet"))
    assert res.output == f"Error: {src}:1: message 1 (user): tool_calls are only allowed on assistant turns\n"


def test_per_message_keys_kept_and_others_warned_once(tmp_path):
    src = _jsonl(tmp_path / "keys.jsonl", [
        {"id": "k1", "messages": [
            {"role": "system", "content": "S", "train": False},
            {"role": "user", "content": "Q1", "name": "alice", "mood": "happy"},
            {"role": "assistant", "content": "A1", "weight": 0, "thinking": "hmm"},
            {"role": "user", "content": "Q2", "mood": "sad", "lang": "en"},
            {"role": "assistant", "content": "A2", "train": True, "reasoning_content": "so"}]},
    ])
    rows = _both(tmp_path, src)
    assert rows == [{"id": "k1", "messages": [
        {"role": "system", "content": "S", "weight": 0.0},
        {"role": "user", "content": "Q1", "name": "alice"},
        {"role": "assistant", "content": "A1", "weight": 0.0, "reasoning_content": "hmm"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "A2", "weight": 1.0, "reasoning_content": "so"}]}]
    res = _convert(str(src), str(tmp_path / "o.parquet"))
    warnings = [line for line in res.output.splitlines() if "ignored message key" in line]
    assert warnings == [f"{src}: ignored message key(s) lang, mood (kept: role, content, tool_calls, "
                        "tool_call_id, name, weight/train, reasoning_content/thinking)"]


def test_bad_weight_is_one_line_error(tmp_path):
    src = _jsonl(tmp_path / "w.jsonl", [{"messages": [
        {"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": "high"}]}])
    res = _convert(str(src), str(tmp_path / "o.parquet"))
    assert res.output == (f"Error: {src}:1: message 2 (assistant): 'weight' must be true/false or a number "
                          "in [0, 1], got 'high'\n")


@pytest.fixture
def dataset_dict(tmp_path) -> Path:
    import datasets

    def split(name: str) -> datasets.Dataset:
        return datasets.Dataset.from_list([{"id": f"{name}-1", "messages": [
            {"role": "user", "content": f"{name} question"}, {"role": "assistant", "content": f"{name} answer"}]}])

    folder = tmp_path / "dd"
    datasets.DatasetDict({"train": split("train"), "test": split("test")}).save_to_disk(str(folder))
    return folder


def test_dataset_dict_split_by_folder_colon_split(tmp_path, dataset_dict):
    expect = [{"id": "test-1", "messages": [{"role": "user", "content": "test question"},
                                            {"role": "assistant", "content": "test answer"}]}]
    assert _through_convert(tmp_path, Path(f"{dataset_dict}:test")) == expect
    assert _through_stage(tmp_path, Path(f"{dataset_dict}:test")) == expect
    assert _through_convert(tmp_path, dataset_dict)[0]["id"] == "train-1"
    res = _convert(f"{dataset_dict}:test", str(tmp_path / "t.parquet"))
    assert f"{dataset_dict}:test: reading split 'test' of train, test" in res.output
    res = _convert(f"{dataset_dict}:validation", str(tmp_path / "o.parquet"))
    assert res.exit_code == 1
    assert res.output == (f"Error: {dataset_dict}:validation: dataset dict has no 'validation' split "
                          "(splits: train, test; choose one with --split)\n")


def test_prompt_completion_is_trl_conversational(tmp_path):
    src = _jsonl(tmp_path / "m.jsonl", [{"id": "c", "messages": [
        {"role": "system", "content": "Sys"}, {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"}]}])
    out = tmp_path / "pc.jsonl"
    res = _convert(str(src), str(out), "--to", "prompt-completion")
    assert res.exit_code == 0, res.output
    rec = json.loads(out.read_text())
    assert rec["prompt"] == [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Q"}]
    assert rec["completion"] == [{"role": "assistant", "content": "A"}]
    assert "system" not in rec
    # and it reads back to the same conversation, through convert and a stage
    assert _both(tmp_path, out) == [{"id": "c", "messages": [
        {"role": "system", "content": "Sys"}, {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"}]}]
