"""Reading and converting rows as users have them (issues 20, 22 and 26): compressed files,
shapes told from every record, values kept as they were, one validation for every input path,
and convert never replacing what it should not. Each test goes through the CLI."""

from __future__ import annotations

import bz2
import functools
import gzip
import json
import lzma
import os
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from tests.conftest import invoke as _run
from tests.conftest import one_error_line
from thresher.cli.main import cli

QA = {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}


def _jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


_error = functools.partial(one_error_line, status=1)


# ------------------------------------------------------------------ compressed inputs (issue 20)


def _zst(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


CODECS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress, ".zst": _zst}


def _frame_bytes(fmt: str, records) -> bytes:
    if fmt == ".jsonl":
        return "".join(json.dumps(r) + "\n" for r in records).encode()
    if fmt == ".json":
        return json.dumps(records).encode()
    if fmt == ".csv":
        return b"prompt,completion\n" + b"".join(
            f'"{r["prompt"]}","{r["completion"]}"\n'.encode() for r in records)
    import io

    buf = io.BytesIO()
    pl.DataFrame(records).write_parquet(buf)
    return buf.getvalue()


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("fmt", [".jsonl", ".json", ".csv", ".parquet"])
def test_compressed_files_read_in_every_format(tmp_path, fmt, codec):
    recs = [{"prompt": "What is 2+2?", "completion": "4."}, {"prompt": "Capital of Peru?", "completion": "Lima."}]
    src = tmp_path / f"data{fmt}{codec}"
    src.write_bytes(CODECS[codec](_frame_bytes(fmt, recs)))
    out = tmp_path / "out.jsonl"
    res = _run("convert", src, out)
    assert res.exit_code == 0, res.output
    got = [json.loads(x)["messages"][1]["content"] for x in out.read_text().splitlines()]
    assert got == ["4.", "Lima."]


def test_a_damaged_gzip_is_one_line_naming_the_file(tmp_path):
    src = tmp_path / "d.jsonl.gz"
    src.write_bytes(gzip.compress(json.dumps(QA).encode() * 50)[:40])
    assert _error(_run("convert", src, tmp_path / "o.jsonl")) == \
        f"Error: {src}: cannot decompress gzip (Compressed file ended before the end-of-stream marker was reached)"


# ------------------------------------------------------------------ empty answers are filterable (issue 20)


def test_an_empty_final_answer_is_a_row_and_filter_drops_it_with_its_reason(tmp_path):
    src = _jsonl(tmp_path / "d.jsonl", [QA, {"prompt": "Why?", "completion": ""}])
    src = _jsonl(tmp_path / "d.jsonl", [QA, {"messages": [{"role": "user", "content": "Why?"},
                                                          {"role": "assistant", "content": " "}]}])
    res = _run("curate", "filter", src, "--out", tmp_path / "f")
    assert res.exit_code == 0, res.output
    dropped = pl.read_parquet(tmp_path / "f" / "dropped.parquet")
    assert dropped["drop_reason"].to_list() == ["empty: no response text"]
    assert pl.read_parquet(tmp_path / "f" / "kept.parquet").height == 1


def test_an_empty_middle_turn_stays_a_bad_row(tmp_path):
    src = _jsonl(tmp_path / "d.jsonl", [{"messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": ""},
        {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}])
    assert _error(_run("convert", src, tmp_path / "o.jsonl")) == \
        f"Error: {src}:1: message 2 (assistant): empty content"


def test_recipe_reads_a_raw_jsonl_gz_with_empty_answers_end_to_end(tmp_path):
    """Issue 20's acceptance: no convert step; the recipe's drop_empty fires."""
    recs = [{"prompt": f"Question number {i}?", "completion": f"Answer number {i}."} for i in range(5)]
    recs[2]["completion"] = ""
    recs.append({"prompt": "broken"})  # missing completion: a bad row, skipped on read
    src = tmp_path / "noisy.jsonl.gz"
    src.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in recs).encode()))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: noisy\nseed: 0\ninputs:\n  - path: {src}\n    on_bad_rows: skip\n"
                      "    format: prompt-completion\nstages:\n  - filter:\n      drop_empty: true\n")
    out = tmp_path / "run"
    res = _run("run", recipe, "--out", out)
    assert res.exit_code == 0, res.output
    read_drop = pl.read_parquet(out / "00-inputs" / "dropped.parquet")
    assert read_drop.select("drop_stage", "drop_reason").rows() == [("read", f"{src}:6: missing 'completion'")]
    filt = next(p for p in out.iterdir() if p.name.endswith("-filter"))
    dropped = pl.read_parquet(filt / "dropped.parquet")
    assert dropped["drop_reason"].to_list() == ["empty: no response text"]
    assert pl.read_parquet(filt / "kept.parquet").height == 4


def test_recipe_input_reads_a_split(tmp_path):
    import datasets

    folder = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"prompt": "t", "completion": "x"}]),
                          "test": datasets.Dataset.from_list([{"prompt": "held out", "completion": "y."}])}
                         ).save_to_disk(str(folder))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: s\nseed: 0\ninputs:\n  - path: {folder}\n    split: test\n"
                      "stages:\n  - filter:\n      min_chars: 1\n")
    out = tmp_path / "run"
    res = _run("run", recipe, "--out", out)
    assert res.exit_code == 0, res.output
    kept = pl.read_parquet(out / "00-inputs" / "kept.parquet")
    assert kept["messages"].to_list()[0][0]["content"] == "held out"


@pytest.mark.parametrize("key,msg", [
    ("on_bad_rows: ignore", "inputs[0].on_bad_rows: must be one of 'error' | 'skip', got 'ignore'"),
    ("format: tsv", "inputs[0].format: must be one of 'messages' | 'sharegpt' | 'alpaca' | 'prompt-completion' | "
     "'prompt' | 'openai-batch' | 'openai-batch-output' | null, got 'tsv'"),
])
def test_recipe_input_keys_are_validated(tmp_path, key, msg):
    src = _jsonl(tmp_path / "d.jsonl", [QA])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: x\nseed: 0\ninputs:\n  - path: {src}\n    {key}\nstages:\n  - filter: {{}}\n")
    assert _error(_run("recipe", "validate", recipe)) == f"Error: {recipe}: {msg}"


# ------------------------------------------------------------------ deep nesting (issue 22 section 8)


@pytest.mark.parametrize("depth,why", [
    (1000, "nested too deeply (more than 32 levels)"),  # past the JSON parser's own limit
    (600, "column 'meta': nested deeper than 32 levels"),  # 2.9 GB and 6.8 s on main
])
def test_an_extra_column_nested_1000_deep_is_a_bad_row_fast_and_small(tmp_path, depth, why):
    import psutil

    deep = '{"a":' * depth + "1" + "}" * depth
    line = json.dumps(QA)[:-1] + ', "meta": ' + deep + "}"
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps(QA) + "\n" + line + "\n")
    rss = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    msg = _error(_run("convert", src, tmp_path / "o.jsonl"))
    took = time.perf_counter() - t0
    grew = psutil.Process().memory_info().rss - rss
    assert msg == f"Error: {src}:2: {why}"
    assert took < 1.0 and grew < 200 * 2 ** 20, (took, grew)
    res = _run("convert", src, tmp_path / "o.jsonl", "--on-bad-rows", "skip")
    assert res.exit_code == 0 and "wrote 1 rows" in res.output


# ------------------------------------------------------------------ silent changes (issue 26, 1-6)


def test_shape_is_told_from_every_record_not_the_first(tmp_path):
    src = _jsonl(tmp_path / "x.jsonl", [{"prompt": "q1"}, {"prompt": "q2", "completion": "a2"}])
    assert _error(_run("convert", src, tmp_path / "o.jsonl")) == f"Error: {src}:1: missing 'completion'"
    res = _run("convert", src, tmp_path / "o.jsonl", "--on-bad-rows", "skip")
    assert res.exit_code == 0
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [m["content"] for m in rows[0]["messages"]] == ["q2", "a2"] and "completion" not in rows[0]


def test_a_record_of_another_shape_is_a_bad_row(tmp_path):
    src = _jsonl(tmp_path / "x.jsonl", [QA, QA | {"id": "b"}, {"conversations": [{"from": "human", "value": "x"}]}])
    assert _error(_run("convert", src, tmp_path / "o.jsonl")) == \
        f"Error: {src}:3: a sharegpt record, but this file's records are messages (pass --format to choose)"


def test_csv_with_an_empty_first_completion_keeps_every_answer(tmp_path):
    src = tmp_path / "x.csv"
    src.write_text('prompt,completion\nq1,\nq2,a2\n')
    out = tmp_path / "o.jsonl"
    assert _run("convert", src, out).exit_code == 0
    rows = [json.loads(x)["messages"] for x in out.read_text().splitlines()]
    assert rows == [[{"role": "user", "content": "q1"}, {"role": "assistant", "content": ""}],
                    [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]]


def test_bare_strings_in_a_content_list_are_refused(tmp_path):
    src = _jsonl(tmp_path / "x.jsonl", [{"messages": [{"role": "user", "content": ["not", "a", "string"]},
                                                      {"role": "assistant", "content": "ok"}]}])
    assert _error(_run("convert", src, tmp_path / "o.jsonl")) == \
        f'Error: {src}:1: message 1 (user): content part 1 is a bare string, not a {{"type": "text", "text": ...}} object'


@pytest.mark.parametrize("extra,msg", [
    ({"category": {"a": 1}}, "'category' must be a string, got an object"),
    ({"source": True}, "'source' must be a string, got a bool"),
    ({"category": ["a"]}, "'category' must be a string, got a list"),
])
def test_category_and_source_are_never_stringified(tmp_path, extra, msg):
    src = _jsonl(tmp_path / "x.jsonl", [QA | extra, QA | {"id": "ok", "category": "chat"}])
    assert _error(_run("convert", src, tmp_path / "o.jsonl")) == f"Error: {src}:1: {msg}"
    res = _run("convert", src, tmp_path / "o.jsonl", "--on-bad-rows", "skip")  # item 10: the row, not the file
    assert res.exit_code == 0 and res.output.startswith(f"wrote 1 rows to {tmp_path / 'o.jsonl'}; 1 bad rows")


@pytest.mark.parametrize("a,b,msg", [
    (1, "x", "column 'n': string, but line 1 holds number"),
    ({"a": 1}, {"b": 2}, "column 'n': an object with keys {b}, but line 1 holds an object with keys {a}"),
    ({"a": 1}, [1], "column 'n': a list of number, but line 1 holds an object with keys {a}"),
    ([1, 2], ["x"], "column 'n': a list of string, but line 1 holds a list of number"),
])
def test_extra_columns_keep_their_type_or_the_row_is_refused(tmp_path, a, b, msg):
    src = _jsonl(tmp_path / "x.jsonl", [QA | {"n": a}, QA | {"n": b, "id": "2"}])
    assert _error(_run("convert", src, tmp_path / "o.jsonl")) == f"Error: {src}:2: {msg}"
    out = tmp_path / "o.jsonl"
    res = _run("convert", src, out, "--on-bad-rows", "skip")  # issue 26 item 10: the row, not the file
    assert res.exit_code == 0, res.output
    assert [json.loads(x)["n"] for x in out.read_text().splitlines()] == [a]
    rej = json.loads((tmp_path / "o.rejects.jsonl").read_text())
    assert (rej["where"], rej["reason"], rej["code"]) == ("2", msg, "column-type")


def test_mixed_ints_and_floats_stay_numbers(tmp_path):
    src = _jsonl(tmp_path / "x.jsonl", [QA | {"n": 1}, QA | {"n": 2.5, "id": "2"}])
    out = tmp_path / "o.jsonl"
    assert _run("convert", src, out).exit_code == 0
    assert [json.loads(x)["n"] for x in out.read_text().splitlines()] == [1, 2.5]


def _batch(tmp_path, n_req=3, n_res=2):
    req = _jsonl(tmp_path / "req.jsonl", [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                                           "body": {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}}
                                          for i in range(1, n_req + 1)])
    res = _jsonl(tmp_path / "res.jsonl", [{"custom_id": f"r{i}", "response": {"status_code": 200, "body": {
        "model": "m", "choices": [{"message": {"role": "assistant", "content": f"a{i}"}, "finish_reason": "stop"}]}}}
        for i in range(1, n_res + 1)])
    return req, res


def test_a_batch_request_without_a_result_is_never_lost(tmp_path):
    req, results = _batch(tmp_path)
    out = tmp_path / "o.jsonl"
    assert _error(_run("convert", req, results, out)) == \
        f"Error: {req}: request custom_id 'r3' has no successful result in {results}"
    res = _run("convert", req, results, out, "--on-bad-rows", "skip")
    assert res.exit_code == 0
    assert res.output.strip() == f"wrote 2 rows to {out}; 1 bad rows skipped, listed with reasons in " \
        f"{tmp_path / 'o.rejects.jsonl'}"
    rej = json.loads((tmp_path / "o.rejects.jsonl").read_text())
    assert (rej["id"], rej["code"], rej["where"]) == ("r3", "no-result", "custom_id r3")


def test_duplicate_given_ids_across_files_are_refused(tmp_path):
    a = _jsonl(tmp_path / "a.jsonl", [QA | {"id": "x"}])
    b = _jsonl(tmp_path / "b.jsonl", [{"messages": [{"role": "user", "content": "other"},
                                                     {"role": "assistant", "content": "row"}], "id": "x"}])
    assert _error(_run("curate", "filter", a, b, "--out", tmp_path / "f")) == \
        f"Error: {b}:1: duplicate id 'x' (first seen at {a}:1)"
    assert _error(_run("convert", a, a, tmp_path / "o.parquet")) == \
        f"Error: {a}:1: duplicate id 'x' (first seen at line 1)"


def test_the_same_file_twice_without_ids_gets_occurrence_ids(tmp_path):
    a = _jsonl(tmp_path / "a.jsonl", [QA])
    res = _run("curate", "filter", a, a, "--out", tmp_path / "f", "--min-chars", "1")
    assert res.exit_code == 0, res.output
    ids = pl.read_parquet(tmp_path / "f" / "kept.parquet")["id"].to_list()
    assert len(ids) == 2 and ids[1] == ids[0] + "-1"


def _canonical(tmp_path, messages, **cols) -> Path:
    from thresher.schema import messages_dtype

    fields = {k for m in messages for k in m if k not in ("role", "content")}
    df = pl.DataFrame({"id": ["a"], "messages": [messages], **{k: [v] for k, v in cols.items()}},
                      schema_overrides={"messages": messages_dtype(fields)})
    p = tmp_path / "c.parquet"
    df.write_parquet(p)
    return p


@pytest.mark.parametrize("messages,msg", [
    ([{"role": "system", "content": "s"}], "conversation has only system messages"),
    ([{"role": "user", "content": "q", "tool_calls": [{"id": "1", "type": "function",
                                                        "function": {"name": "f", "arguments": "{}"}}]},
      {"role": "assistant", "content": "a", "tool_calls": None}],
     "message 1 (user): tool_calls are only allowed on assistant turns"),
    ([{"role": "user", "content": "q", "weight": None}, {"role": "assistant", "content": "a", "weight": 7.0}],
     "message 2 (assistant): 'weight' must be a number in [0, 1], got 7.0"),
    ([{"role": "user", "content": "q", "weight": None}, {"role": "assistant", "content": "a", "weight": float("nan")}],
     "message 2 (assistant): 'weight' must be a number in [0, 1], got NaN"),
])
def test_canonical_parquet_is_validated_like_jsonl(tmp_path, messages, msg):
    src = _canonical(tmp_path, messages)
    assert _error(_run("convert", src, tmp_path / "o.jsonl")) == f"Error: {src}:row 1: {msg}"
    js = _jsonl(tmp_path / "c.jsonl", [{"id": "a", "messages": messages}])
    assert _error(_run("convert", js, tmp_path / "o.jsonl")).startswith(f"Error: {js}:1: message" if "message " in msg
                                                                      else f"Error: {js}:1: {msg}")


# ------------------------------------------------------------------ overwrites (issue 26, 7-9)


def test_convert_refuses_out_equal_to_in(tmp_path):
    src = _jsonl(tmp_path / "x.jsonl", [QA])
    before = src.read_bytes()
    assert _error(_run("convert", src, src, "--to", "sharegpt")) == f"Error: {src}: is also an input; write to another file"
    assert src.read_bytes() == before


def test_convert_refuses_fields_the_target_cannot_hold(tmp_path):
    src = _jsonl(tmp_path / "x.jsonl", [{"id": "t", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c", "type": "function",
                                                              "function": {"name": "w", "arguments": {}}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "c"}, {"role": "assistant", "content": "Sunny."}]}])
    out = tmp_path / "o.jsonl"
    assert _error(_run("convert", src, out, "--to", "sharegpt")) == \
        "Error: row 1 (id t): --to sharegpt cannot hold the message field 'tool_calls' (it would be lost); " \
        "write --to messages or prompt-completion to keep it"
    assert not out.exists()


def test_convert_never_writes_into_a_stage_folder(tmp_path):
    src = _jsonl(tmp_path / "x.jsonl", [QA])
    stage = tmp_path / "r"
    assert _run("curate", "filter", src, "--out", stage).exit_code == 0
    kept = (stage / "kept.parquet").read_bytes()
    assert _error(_run("convert", src, stage / "kept.parquet")) == \
        f"Error: {stage / 'kept.parquet'}: inside the stage or run folder {stage}; convert never writes into one " \
        "(write to another path)"
    assert (stage / "kept.parquet").read_bytes() == kept


def test_convert_writes_beside_a_manifest_that_is_not_a_stages(tmp_path):
    src = _jsonl(tmp_path / "x.jsonl", [QA])
    app = tmp_path / "webapp"
    app.mkdir()
    (app / "manifest.json").write_text('{"name": "my app"}')
    assert _run("convert", src, app / "data.jsonl").exit_code == 0


def test_convert_keeps_a_users_rejects_named_file(tmp_path):
    src = _jsonl(tmp_path / "x.jsonl", [QA])
    mine = tmp_path / "o.rejects.jsonl"
    mine.write_text("my notes\n")
    assert _run("convert", src, tmp_path / "o.jsonl").exit_code == 0
    assert mine.read_text() == "my notes\n"
    assert _error(_run("convert", src, tmp_path / "o.jsonl", "--on-bad-rows", "skip")) == \
        f"Error: {mine}: exists and is not a rejects file thresher wrote; move it away or choose another OUT"
    assert mine.read_text() == "my notes\n"


def test_convert_removes_its_own_stale_rejects(tmp_path):
    bad = _jsonl(tmp_path / "x.jsonl", [QA, {"messages": []}])
    out = tmp_path / "o.jsonl"
    assert _run("convert", bad, out, "--on-bad-rows", "skip").exit_code == 0
    assert (tmp_path / "o.rejects.jsonl").is_file()
    good = _jsonl(tmp_path / "y.jsonl", [QA])
    assert _run("convert", good, out, "--on-bad-rows", "skip").exit_code == 0
    assert not (tmp_path / "o.rejects.jsonl").exists()


@pytest.mark.parametrize("mode", [[], ["--on-bad-rows", "skip"]])
def test_convert_never_deletes_an_input_named_like_its_rejects(tmp_path, mode):
    src = _jsonl(tmp_path / "data.rejects.jsonl", [QA])
    before = src.read_bytes()
    assert _error(_run("convert", src, tmp_path / "data.jsonl", *mode)) == \
        f"Error: {src}: is an input, and the rejects file of {tmp_path / 'data.jsonl'} would replace it; choose another OUT"
    assert src.read_bytes() == before


# ------------------------------------------------------------------ messages (issue 26, 10-12)


def test_parquet_with_a_null_message_names_file_and_row(tmp_path):
    from thresher.schema import MESSAGES_DTYPE

    src = tmp_path / "n.parquet"
    pl.DataFrame({"messages": [[{"role": "user", "content": "q"}, None]]},
                 schema={"messages": MESSAGES_DTYPE}).write_parquet(src)
    assert _error(_run("convert", src, tmp_path / "o.jsonl")) == \
        f"Error: {src}:row 1: message 2: must be an object with role and content"


def test_parquet_with_a_list_category_names_file_and_column(tmp_path):
    src = tmp_path / "c.parquet"
    pl.DataFrame({"messages": [QA["messages"]], "category": [["a", "b"]]}).write_parquet(src)
    assert _error(_run("convert", src, tmp_path / "o.jsonl")) == \
        f"Error: {src}: the category column holds List(String) values; it must hold strings"


def test_tsv_is_read_with_tabs(tmp_path):
    src = tmp_path / "x.tsv"
    src.write_text("prompt\tcompletion\nq, with comma\ta\n")
    out = tmp_path / "o.jsonl"
    assert _run("convert", src, out).exit_code == 0
    assert json.loads(out.read_text())["messages"][0]["content"] == "q, with comma"


def test_a_fifo_or_device_is_named_as_such(tmp_path):
    fifo = tmp_path / "p.jsonl"
    os.mkfifo(fifo)
    msg = "not a regular file (a pipe, socket or device); give a file, a dataset folder or a hub dataset name"
    assert _error(_run("convert", fifo, tmp_path / "o.jsonl")) == f"Error: {fifo}: {msg}"
    assert _error(_run("convert", "/dev/null", tmp_path / "o.jsonl")) == f"Error: /dev/null: {msg}"


def test_csv_errors_count_lines_not_records(tmp_path):
    src = tmp_path / "x.csv"
    src.write_text('prompt,completion\n"line one\nline two",answer\n"q",\n"multi\n\nline",a\n,orphan\n')
    assert _error(_run("convert", src, tmp_path / "o.jsonl")) == f"Error: {src}:8: missing 'prompt'"


# ------------------------------------------------------------------ minor (issue 26, 18)


def test_duplicate_json_keys_warn_once_per_file(tmp_path):
    src = tmp_path / "x.jsonl"
    line = '{"messages": [{"role": "user", "content": "a", "content": "b"}, {"role": "assistant", "content": "c"}]}'
    src.write_text(line + "\n" + json.dumps(QA) + "\n" + line.replace('"c"', '"d"') + "\n")
    res = _run("convert", src, tmp_path / "o.jsonl")
    assert res.exit_code == 0
    warnings = [x for x in res.output.splitlines() if "duplicate key" in x]
    assert warnings == [f"{src}:1: duplicate key 'content' in an object; the last value is kept "
                        "(1 more record(s) in this file)"]


def test_nan_is_never_written_as_bare_nan(tmp_path):
    src = tmp_path / "x.parquet"
    pl.DataFrame({"messages": [QA["messages"]], "score": [float("nan")], "w": [[1.0, float("inf")]]}).write_parquet(src)
    out = tmp_path / "o.jsonl"
    res = _run("convert", src, out)
    assert res.exit_code == 0
    assert f"{out}: 2 NaN/Infinity value(s) written as null (JSON has no NaN)" in res.output
    rec = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert rec["score"] is None and rec["w"] == [1.0, None]


def test_convert_split(tmp_path):
    import datasets

    folder = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"prompt": "t", "completion": "x"}]),
                          "test": datasets.Dataset.from_list([{"prompt": "held", "completion": "y"}])}
                         ).save_to_disk(str(folder))
    out = tmp_path / "o.jsonl"
    assert _run("convert", folder, out, "--split", "test").exit_code == 0
    assert json.loads(out.read_text())["messages"][0]["content"] == "held"


def test_convert_on_a_full_disk_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    """Issue 26 item 14: ``convert`` said ``[Errno 28] No space left on device`` with no path."""
    import errno as _errno

    import thresher.io.atomic as atomic

    src = tmp_path / "d.jsonl"
    src.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
    real_replace = atomic.os.replace

    def full(a, b):  # the disk fills while the output is committed
        raise OSError(_errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    out = tmp_path / "o.jsonl"
    r = CliRunner().invoke(cli, ["convert", str(src), str(out)])
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert r.exit_code == 1
    assert r.output.strip() == f"Error: {out}: no space left on device; nothing was written (free some space and rerun)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]


def test_one_hostile_row_does_not_abort_a_verify_stage(tmp_path):
    """Issue 26 item 6c: an answer of 100,000 ``[`` scores 0 under ``verify:json``; the stage finishes."""
    import json as _json

    import polars as pl

    rows = tmp_path / "r.jsonl"
    rows.write_text("".join(_json.dumps({"id": i, "messages": [{"role": "user", "content": "json?"},
                                                               {"role": "assistant", "content": a}]}) + "\n"
                            for i, a in (("a", "[" * 100_000), ("b", '{"x": 1}'))))
    r = CliRunner().invoke(cli, ["curate", "score", str(rows), "--out", str(tmp_path / "o"), "-s", "j=verify:json"])
    assert r.exit_code == 0, r.output
    kept = pl.read_parquet(tmp_path / "o" / "kept.parquet")
    assert dict(zip(kept["id"], kept["score_j"])) == {"a": 0.0, "b": 1.0}
