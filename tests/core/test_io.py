"""Readers and writers: round trips of every input shape, and bad input."""

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from thresher.cli.main import cli
from thresher.errors import InputError
from thresher.io import read_rows, read_table, write_table

SHAPE_RECORDS = {
    "messages": [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                      {"role": "assistant", "content": "Hello."}], "category": "chat", "source": "unit"},
        {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
                      {"role": "user", "content": "and 3+3?"}, {"role": "assistant", "content": "6"}],
         "category": "math", "score": 0.5},
    ],
    "sharegpt": [
        {"conversations": [{"from": "human", "value": "Name a colour."}, {"from": "gpt", "value": "Blue."}],
         "system": "You are terse."},
        {"conversations": [{"from": "human", "value": "Ping"}, {"from": "gpt", "value": "Pong"}]},
    ],
    "alpaca": [
        {"instruction": "Translate to French.", "input": "cat", "output": "chat"},
        {"instruction": "Say yes.", "input": "", "output": "Yes."},
    ],
    "prompt-completion": [
        {"prompt": "Capital of France?", "completion": "Paris."},
        {"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hey"}]},
    ],
    "prompt": [{"prompt": "Write a haiku about rain.", "category": "poetry"}, {"prompt": "What is DNA?"}],
}


def _write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("shape", sorted(SHAPE_RECORDS))
@pytest.mark.parametrize("src_ext", [".jsonl", ".json", ".parquet", ".csv"])
def test_every_shape_round_trips_through_parquet_and_jsonl(tmp_path, shape, src_ext):
    recs = SHAPE_RECORDS[shape]
    if src_ext == ".parquet" and shape == "prompt-completion":
        recs = recs[:1]  # a Parquet column holds one type: strings or message lists, not both
    src = tmp_path / f"in{src_ext}"
    if src_ext == ".jsonl":
        _write_jsonl(src, recs)
    elif src_ext == ".json":
        src.write_text(json.dumps(recs))
    elif src_ext == ".parquet":
        pl.DataFrame(recs).write_parquet(src)
    else:
        rows = [{k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()} for r in recs]
        pl.DataFrame(rows).write_csv(src)
    table = read_table(src)
    assert table.height == len(recs)
    assert table["messages"].list.len().min() >= 1
    for out in ("a.parquet", "b.jsonl", "c_ds"):
        write_table(table, tmp_path / out)
        back = read_table(tmp_path / out)
        if src_ext == ".csv":  # CSV cells are strings: compare the core columns
            back = back.select(table.columns)
        assert back.equals(table), out
    # and back out in the original shape, then in again
    write_table(table, tmp_path / "shape.jsonl", shape=shape)
    again = read_table(tmp_path / "shape.jsonl", shape)
    assert again["messages"].to_list() == table["messages"].to_list()
    assert again["id"].to_list() == table["id"].to_list()


def test_ids_are_stable_content_hashes(tmp_path):
    a = read_table(_write_jsonl(tmp_path / "a.jsonl", SHAPE_RECORDS["alpaca"]))
    b = read_table(_write_jsonl(tmp_path / "b.jsonl", SHAPE_RECORDS["alpaca"]))
    assert a["id"].to_list() == b["id"].to_list()
    assert a["id"].n_unique() == 2
    given = read_table(_write_jsonl(tmp_path / "c.jsonl", [{"id": 7, "prompt": "x"}]))
    assert given["id"].to_list() == ["7"]


def test_sharegpt_and_alpaca_map_to_messages(tmp_path):
    t = read_table(_write_jsonl(tmp_path / "s.jsonl", SHAPE_RECORDS["sharegpt"][:1]))
    assert t["messages"][0].to_list() == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
    ]
    t = read_table(_write_jsonl(tmp_path / "a.jsonl", SHAPE_RECORDS["alpaca"][:1]))
    assert t["messages"][0].to_list()[0] == {"role": "user", "content": "Translate to French.\n\ncat"}


GOOD = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}'
BAD_CASES = [
    # (file name, raw bytes, expected error after the file name, args)
    ("malformed.jsonl", GOOD + '\n{"messages": [}\n', ":2: malformed JSON (Expecting value at column 15)", []),
    ("utf8.jsonl", GOOD.encode() + b'\n{"prompt": "caf\xe9"}\n', ":2: not valid UTF-8 (byte 0xe9 at column 16)", []),
    ("norole.jsonl", GOOD + '\n{"messages": [{"content": "x"}]}\n', ":2: message 1: missing role", []),
    ("badrole.jsonl", GOOD + '\n{"messages": [{"role": "bot", "content": "x"}]}\n',
     ":2: message 1: unknown role 'bot' (expected one of system, user, assistant, tool)", []),
    ("notstr.jsonl", GOOD + '\n{"messages": [{"role": "user", "content": 5}]}\n',
     ":2: message 1 (user): content must be a string, got int", []),
    ("empty.jsonl", "", ": empty file (no rows)", []),
    ("emptyconv.jsonl", GOOD + '\n{"messages": []}\n', ":2: empty conversation", []),
    ("emptyresp.jsonl", GOOD + '\n{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}, '
     '{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]}\n',
     ":2: message 2 (assistant): empty content", []),
    ("dupid.jsonl", '{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n',
     ":2: duplicate id 'a' (first seen at line 1)", []),
    ("unknowncol.jsonl", '{"instruction": "a", "output": "b", "extra": 1}\n',
     ":1: unknown column(s) 'extra' for format alpaca (expected instruction, input, output, system, id, category, source)",
     ["--format", "alpaca"]),
    ("sharegptrole.jsonl", '{"conversations": [{"from": "alien", "value": "x"}]}\n',
     ":1: message 1: unknown role 'alien' in 'from'", []),
    ("notobject.jsonl", GOOD + "\n[1, 2]\n", ":2: expected a JSON object, got list", []),
    ("missing.jsonl", '{"instruction": "a", "input": ""}\n{"instruction": "a", "output": "b"}\n', None, []),
]


@pytest.mark.parametrize("name,raw,expected,args", [c for c in BAD_CASES if c[2]], ids=[c[0] for c in BAD_CASES if c[2]])
def test_bad_input_gives_one_line_error(tmp_path, name, raw, expected, args):
    src = tmp_path / name
    src.write_bytes(raw.encode() if isinstance(raw, str) else raw)
    out = tmp_path / "out.parquet"
    res = CliRunner().invoke(cli, ["convert", str(src), str(out), *args])
    assert res.exit_code == 1, res.output
    assert res.output == f"Error: {src}{expected}\n"
    assert "Traceback" not in res.output
    assert not out.exists()


def test_unknown_shape_and_missing_file(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"foo": 1}\n')
    res = CliRunner().invoke(cli, ["convert", str(tmp_path / "x.jsonl"), str(tmp_path / "o.parquet")])
    assert res.exit_code == 1
    assert "cannot tell the record format from its keys (foo)" in res.output
    res = CliRunner().invoke(cli, ["convert", str(tmp_path / "nope.jsonl"), str(tmp_path / "o.parquet")])
    assert res.exit_code == 1 and res.output == f"Error: {tmp_path / 'nope.jsonl'}: no such file or folder\n"
    (tmp_path / "x.txt").write_text("hi")
    res = CliRunner().invoke(cli, ["convert", str(tmp_path / "x.txt"), str(tmp_path / "o.parquet")])
    assert res.exit_code == 1 and "unsupported file type '.txt'" in res.output


def test_skip_mode_keeps_all_good_rows_and_lists_every_bad_one(tmp_path):
    bad_lines = []
    for name, raw, expected, args in BAD_CASES:
        if args or not expected or name in ("empty.jsonl", "dupid.jsonl"):
            continue
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        bad_lines.append(text.strip().splitlines()[-1])
    good = [json.dumps({"prompt": f"question {i}"}) for i in range(5)]
    dup = json.dumps({"id": "q0-copy", "prompt": "dup"})
    lines = good[:3] + bad_lines + [dup, dup] + good[3:]
    src = tmp_path / "mixed.jsonl"
    src.write_bytes(("\n".join(lines) + "\n").encode().replace("caf\ufffd".encode(), b"caf\xe9"))
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(cli, ["convert", str(src), str(out), "--on-bad-rows", "skip"])
    assert res.exit_code == 0, res.output
    kept = read_table(out)
    prompts = kept["messages"].list.first().struct.field("content").to_list()
    assert prompts == [f"question {i}" for i in range(3)] + ["dup"] + [f"question {i}" for i in range(3, 5)]
    rejects = [json.loads(x) for x in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    n_bad = len(bad_lines) + 1  # the second copy of the duplicate id
    assert len(bad_lines) >= 9
    assert len(rejects) == n_bad
    assert [int(r["where"]) for r in rejects] == [4 + i for i in range(len(bad_lines))] + [5 + len(bad_lines)]
    assert all(r["reason"] and r["raw"] for r in rejects)
    assert f"wrote 6 rows to {out}; {n_bad} bad rows skipped" in res.output


def test_read_rows_skip_returns_rejects(tmp_path):
    src = _write_jsonl(tmp_path / "a.jsonl", [{"prompt": "ok"}, {"prompt": ""}, {"prompt": 3}])
    res = read_rows(src, on_bad_rows="skip")
    assert res.table.height == 1
    assert [r["reason"] for r in res.rejects] == [
        "message 1 (user): empty content", "'prompt' must be a string or a list of messages, got int"]
    with pytest.raises(InputError, match=r"a.jsonl:2: message 1 \(user\): empty content"):
        read_rows(src)


def test_hub_name_offline_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    res = CliRunner().invoke(cli, ["stats", "nobody/no-such-dataset"])
    assert res.exit_code == 1
    assert res.output.startswith("Error: nobody/no-such-dataset: cannot load hub dataset 'nobody/no-such-dataset'")
    assert res.output.count("\n") == 1


def test_writes_are_atomic(tmp_path, monkeypatch):
    t = read_table(_write_jsonl(tmp_path / "a.jsonl", SHAPE_RECORDS["prompt"]))
    target = tmp_path / "out.parquet"
    write_table(t, target)
    before = target.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", boom)
    with pytest.raises(RuntimeError):
        write_table(t.head(1), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_stats_command(tmp_path):
    src = _write_jsonl(tmp_path / "a.jsonl", SHAPE_RECORDS["messages"])
    res = CliRunner().invoke(cli, ["stats", str(src), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["rows"] == 2
    assert data["categories"] == {"chat": 1, "math": 1}
    assert data["lengths"]["turns"]["max"] == "4"
