"""Smaller hostile-input defects (issue 15): each is a one-line error naming what is wrong,
or input that must be accepted."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.conftest import ROW, invoke
from tests.conftest import one_error_line as error
from tests.recipe.conftest import fake_recipe


@pytest.mark.parametrize("phrase", ["", "   "])
def test_empty_refusal_phrase_is_refused(rows, tmp_path, phrase):
    msg = error(invoke("curate", "filter", rows, "--refusal-phrase", phrase, "--out", tmp_path / "f"))
    assert msg == "Error: refusal_phrases: an empty phrase would match (and drop) every response"


def test_why_with_an_ambiguous_prefix_lists_candidates(fake_stages, write_recipe, tmp_path):
    run = tmp_path / "run"
    assert invoke("run", write_recipe(fake_recipe()), "--out", run).exit_code == 0
    ids, parents = set(), set()
    for f in run.glob("*/*.parquet"):
        df = pl.read_parquet(f)
        if "id" in df.columns:
            ids.update(df["id"].cast(pl.String).to_list())
        if "parent_id" in df.columns:
            parents.update(x for x in df["parent_id"].cast(pl.String).to_list() if x)
    prefix = next(p for n in range(1, 6) for i in sorted(ids) if (p := i[:n])
                  and sum(x.startswith(p) for x in ids) > 1 and not any(x.startswith(p) for x in parents))
    msg = error(invoke("why", run, prefix))
    head = f"Error: row id prefix {prefix!r} is ambiguous: it starts "
    assert msg.startswith(head) and msg.endswith("; give more of the id"), msg
    listed = msg[len(head):].split(";")[0].split(", ... (")[0].split(", ")
    assert len(listed) > 1 and set(listed) <= ids and listed == sorted(listed)


@pytest.mark.parametrize("suffix, text", [
    (".jsonl", json.dumps(ROW) + "\n"),
    (".json", json.dumps([ROW])),
])
def test_utf8_bom_is_accepted(tmp_path, suffix, text):
    src = tmp_path / f"bom{suffix}"
    src.write_bytes(b"\xef\xbb\xbf" + text.encode())
    res = invoke("convert", src, tmp_path / "o.parquet")
    assert res.exit_code == 0, res.output
    assert pl.read_parquet(tmp_path / "o.parquet")["id"].to_list() == ["a"]


def test_duplicate_yaml_keys_are_refused(tmp_path, rows):
    recipe = tmp_path / "dup.yaml"
    recipe.write_text(f"name: a\ninputs:\n  - path: {rows}\nstages:\n  - filter: {{min_chars: 1}}\nname: b\n")
    assert error(invoke("recipe", "validate", recipe)) == \
        f"Error: {recipe}:6: invalid YAML: duplicate key 'name' (first at line 1)"
    nested = tmp_path / "nested.yaml"
    nested.write_text(f"name: a\ninputs:\n  - path: {rows}\nstages:\n  - filter:\n      min_chars: 1\n      min_chars: 2\n")
    assert error(invoke("recipe", "validate", nested)) == \
        f"Error: {nested}:7: invalid YAML: duplicate key 'min_chars' (first at line 6)"
    spec = tmp_path / "spec.yaml"
    spec.write_text("total: 2\ncategories:\n  code: {count: 1}\n  code: {count: 1}\n")
    assert error(invoke("curate", "mix", rows, "--spec", spec, "--out", tmp_path / "m")) == \
        f"Error: {spec}:4: duplicate key 'code' (first at line 3)"


@pytest.mark.parametrize("value, kind", [({"a": 1}, "an object"), (True, "a bool"), ([1], "an array")])
def test_id_that_is_not_a_string_or_number_is_refused(tmp_path, value, kind):
    src = tmp_path / "ids.jsonl"
    src.write_text(json.dumps({**ROW, "id": value}) + "\n")
    assert error(invoke("convert", src, tmp_path / "o.parquet")) == \
        f"Error: {src}:1: id must be a string or a number, got {kind}"
    res = invoke("convert", src, tmp_path / "o.parquet", "--on-bad-rows", "skip")  # skipped as a bad row
    assert res.exit_code == 0, res.output
    assert res.output.strip() == (f"wrote 0 rows to {tmp_path / 'o.parquet'}; 1 bad rows skipped, listed with "
                                  f"reasons in {tmp_path / 'o.rejects.jsonl'}")
    rejected = json.loads((tmp_path / "o.rejects.jsonl").read_text())
    assert (rejected["code"], rejected["reason"]) == ("bad-id", f"id must be a string or a number, got {kind}")


def test_dedup_keep_by_a_string_column_is_refused(tmp_path):
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps({**ROW, "id": f"r{i}", "category": "c"}) + "\n" for i in range(3)))
    msg = error(invoke("curate", "dedup", src, "--keep-by", "category", "--out", tmp_path / "d"))
    assert msg.endswith("keep_by column 'category' is String, not a number (keep_by keeps the highest value, "
                        "e.g. a score_* column)")


def test_label_without_a_reward_scorer_is_an_error(rows, tmp_path):
    msg = error(invoke("curate", "score", rows, "--label", "1", "--out", tmp_path / "s"))
    assert msg == "Error: label: applies to a reward scorer (--scorer reward:MODEL), and none is given"


@pytest.mark.parametrize("body, where", [
    ('{"question": "a b c d e f g h"}\n{"question": oops}\n', "2: malformed JSON (Expecting value at column 14)"),
    ('{"question": "a"}\n[1, 2]\n', "2: expected a JSON object, got list"),
])
def test_malformed_benchmark_names_the_line(rows, tmp_path, body, where):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(body)
    msg = error(invoke("curate", "decontam", rows, "--against", bench, "--out", tmp_path / "dc"))
    assert msg == f"Error: {bench}:{where}"


def test_broken_template_file_is_blamed_on_the_file(rows, tmp_path):
    bad = tmp_path / "bad.jinja"
    bad.write_text("{% for m in messages %}{{ m.content }")
    msg = error(invoke("train", "lint-masks", rows, "--chat-template", bad))
    assert msg == f"Error: --chat-template {bad} fails to render a conversation: unexpected '}}'"
    assert "default model" not in msg


def test_cosmetics_json_column_and_hub_offline(tmp_path, rows, monkeypatch):
    src = tmp_path / "u.jsonl"
    src.write_text('{"id": "a", "messages": "unterminated')
    assert error(invoke("convert", src, tmp_path / "o.parquet")) == \
        f"Error: {src}:1: malformed JSON (Unterminated string starting at column 25)"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    msg = error(invoke("curate", "score", rows, "--scorer", "reward:someorg/nomodel", "--out", tmp_path / "s"))
    assert msg == ("Error: model 'someorg/nomodel' is not in the local cache, and HF_HUB_OFFLINE is set, so it "
                   "cannot be downloaded (unset HF_HUB_OFFLINE to download it, or give a local model folder)")
