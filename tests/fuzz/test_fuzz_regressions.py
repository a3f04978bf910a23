"""Defects the fuzz suite found, kept as plain regression tests (one per defect)."""

from __future__ import annotations

import json

import polars as pl
from click.testing import CliRunner

from tests.conftest import invoke, one_error_line
from thresher.cli.main import cli

GOOD = [{"role": "user", "content": "q?"}, {"role": "assistant", "content": "a"}]


def _error(args) -> str:
    msg = one_error_line(invoke(*args))
    assert "unexpected error" not in msg, msg
    return msg


def test_parquet_row_with_null_messages(tmp_path):
    """TypeError in fill_ids: a Parquet row whose messages is null."""
    p = tmp_path / "in.parquet"
    pl.DataFrame({"messages": [GOOD, None]}).write_parquet(p)
    res = CliRunner().invoke(cli, ["convert", str(p), str(tmp_path / "o.parquet"), "--on-bad-rows", "skip"])
    assert res.exit_code == 0, res.output
    assert pl.read_parquet(tmp_path / "o.parquet").height == 1


def test_parquet_id_column_of_lists(tmp_path):
    """InvalidOperationError: an id column of List(Null) could not be cast to strings."""
    p = tmp_path / "in.parquet"
    pl.DataFrame({"messages": [GOOD], "id": [[]]}).write_parquet(p)
    assert _error(["convert", p, tmp_path / "o.parquet"]).endswith(
        "the id column holds List(Null) values; ids must be strings or numbers")


def test_newline_in_a_role_stays_one_line(tmp_path):
    """A bad-row reason quoting data with a newline made a two-line error."""
    p = tmp_path / "in.jsonl"
    p.write_text(json.dumps({"messages": [{"role": "us\ner", "content": "x"}]}) + "\n")
    msg = _error(["convert", p, tmp_path / "o.parquet"])
    assert "\\n" in msg


def test_newline_in_a_recipe_key_stays_one_line(tmp_path):
    """A ConfigError naming a key with a carriage return made a two-line error."""
    p = tmp_path / "r.yaml"
    p.write_text('"\\r": null\n')
    assert "\\r" in _error(["recipe", "validate", p])


def test_mix_rank_by_empty_string(tmp_path):
    """ColumnNotFoundError __score: --rank-by '' passed the checks."""
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"messages": GOOD, "category": "code"}) + "\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("total: 1\ncategories:\n  code: {count: 1}\n")
    assert "rank_by: must be a column name, got an empty string" in _error(
        ["curate", "mix", data, "--spec", spec, "--rank-by", "", "--out", tmp_path / "m"])


def test_mix_rule_without_a_condition(tmp_path):
    """IndexError in the rule expression: a rule with a category and no regex/keywords/source."""
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"messages": GOOD}) + "\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text('rules:\n  - {category: "0"}\n')
    assert "spec.rules[0]: needs at least one of regex, keywords, source" in _error(
        ["curate", "mix", data, "--spec", spec, "--out", tmp_path / "m"])


def test_reader_error_naming_a_key_with_a_newline_is_one_line(tmp_path):
    """InputError quoting an unknown record key '\\n' had a line break (API level, not CLI)."""
    import pytest

    from thresher.errors import ThresherError
    from thresher.io import read_rows

    p = tmp_path / "in.jsonl"
    p.write_text('{"\\n": null}\n')
    with pytest.raises(ThresherError) as exc:
        read_rows(p)
    assert "\n" not in str(exc.value) and "keys (\\n)" in str(exc.value)


def _convert_to(tmp_path, messages, shape):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "messages": messages}) + "\n")
    return _error(["convert", src, tmp_path / "o.jsonl", "--to", shape])


def test_an_empty_system_turn_is_not_silently_lost_by_a_system_field(tmp_path):
    """Round-trip fuzz (issue 26): ``--to alpaca|sharegpt|prompt`` wrote ``"system": ""``, which
    reads back as no system turn."""
    msgs = [{"role": "system", "content": ""}, *GOOD]
    assert _convert_to(tmp_path, msgs, "alpaca") == \
        "Error: row 1 (id a): cannot write as alpaca: alpaca cannot hold an empty system message " \
        "(an empty 'system' field reads back as none)"


def test_a_later_system_turn_is_not_silently_moved_first(tmp_path):
    """Round-trip fuzz (issue 26): ``--to sharegpt`` moved a system turn from the middle of a
    conversation into the ``system`` field, which reads back as the first turn."""
    msgs = [*GOOD, {"role": "system", "content": "be brief"}, *GOOD]
    assert _convert_to(tmp_path, msgs, "sharegpt") == \
        "Error: row 1 (id a): cannot write as sharegpt: sharegpt holds a system message only as the first turn"


def test_a_truncated_compressed_csv_is_one_line(tmp_path):
    """Reader fuzz with compressed files: a truncated ``.csv.gz`` raised EOFError from the CSV
    reader (the other formats named the file)."""
    import gzip

    p = tmp_path / "in.csv.gz"
    p.write_bytes(gzip.compress(b"prompt,completion\nq,a\n")[:12])
    assert _error(["convert", p, tmp_path / "o.jsonl"]) == \
        f"Error: {p}: cannot decompress gzip (Compressed file ended before the end-of-stream marker was reached)"
