"""Structured output: response_format to the server, every answer checked against the schema,
invalid ones retried then dropped with a reason, the parsed object in the ``structured`` column."""

from __future__ import annotations

import json

import jsonschema
import polars as pl
import pytest

from thresher.distill.structured import OutputSpec, load_spec
from thresher.errors import ThresherError
from thresher.io import read_table
from thresher.stage import StageStats

from .conftest import write_prompts
from .test_costs import _prompts, server, smol_count  # noqa: F401 - fixtures

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
          "required": ["answer", "confidence"], "additionalProperties": False}


@pytest.fixture
def schema_file(tmp_path):
    p = tmp_path / "answer.schema.json"
    p.write_text(json.dumps(SCHEMA))
    return p


def test_check_parses_fences_and_reports_the_first_error():
    spec = OutputSpec(SCHEMA)
    assert spec.check('```json\n{"answer": "x", "confidence": 1}\n```') == ('{"answer":"x","confidence":1}', None)
    assert spec.check('{"answer": "x"}')[1] == "schema: (root): 'confidence' is a required property"
    assert spec.check('{"answer": 3, "confidence": 1}')[1].startswith("schema: answer: 3 is not of type")
    assert spec.check("Sure! here").__getitem__(1).startswith("not JSON")
    assert OutputSpec(None).check("[1]")[1] == "not a JSON object (a list)"
    assert OutputSpec(None).response_format() == {"type": "json_object"}
    assert OutputSpec(SCHEMA).prefill() == '{"answer":' and OutputSpec(None).prefill() == "{"


def test_bad_schema_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "nope"}')
    with pytest.raises(ThresherError, match=r"bad.json: not a valid JSON schema"):
        load_spec(None, str(bad))
    bad.write_text("{")
    with pytest.raises(ThresherError, match=r"bad.json:1: not JSON"):
        load_spec(None, str(bad))
    with pytest.raises(ThresherError, match="cannot read the JSON schema"):
        load_spec(None, str(tmp_path / "missing.json"))


@pytest.mark.parametrize("retries", [0, 3])
def test_schema_run_keeps_valid_rows_only(cli_run, tmp_path, server, schema_file, retries):  # noqa: F811
    srv = server(bad_json_every=3)
    prompts = write_prompts(tmp_path / "p.jsonl", _prompts(30))
    out = tmp_path / "g"
    res = cli_run("distill", "generate", str(prompts), "--out", str(out), "--backend", "openai",
                  "--base-url", srv.base_url, "--teacher", "smollm2", "--max-tokens", "32",
                  "--json-schema", str(schema_file), "--schema-retries", str(retries))
    assert res.exit_code == 0, res.output
    kept, dropped = read_table(out / "kept.parquet"), pl.read_parquet(out / "dropped.parquet")
    for row in kept.iter_rows(named=True):
        obj = json.loads(row["structured"])
        jsonschema.validate(obj, SCHEMA)
        assert json.loads(row["messages"][-1]["content"]) == obj
    st = StageStats.read(out).extra["structured"]
    assert st["invalid_first_try"] == 10 and st["checked_first_try"] == 30
    assert st["invalid_dropped"] == dropped.height == 30 - kept.height
    assert set(dropped["drop_code"]) <= {"schema-invalid"}
    assert f"{st['invalid_dropped']} dropped" in res.output
    if retries == 0:
        assert dropped.height == 10 and dropped["drop_reason"][0].startswith("not JSON")
    else:
        assert dropped.height < 10 and st["retried"] >= 10
    first = srv.log and srv.log[0]
    assert first and 'JSON object of this form, no other text: {"answer": "...", "confidence": 0.0}' in first["question"]
    # the rows keep the prompt as given
    assert all("JSON object" not in m["content"] for r in kept["messages"] for m in r if m["role"] == "user")


def test_server_gets_response_format(tmp_path, schema_file):
    from .loopback import ScriptedServer

    srv = ScriptedServer(model="m")
    try:
        from thresher.distill.backends import SamplingParams, make_backend

        be = make_backend("openai", "m", base_url=srv.base_url, max_retries=0)
        be.output_spec = load_spec(None, str(schema_file))
        be.generate([[{"role": "user", "content": "q"}]], n=1, params=SamplingParams())
        be.close()
        rf = srv.requests[0]["response_format"]
        assert rf["type"] == "json_schema" and rf["json_schema"]["schema"] == SCHEMA
    finally:
        srv.stop()


@pytest.mark.slow
def test_smollm2_transformers_json_run(cli_run, tmp_path, smollm2_dir):
    """The prompt instruction plus verification (and a retry) on the real SmolLM2."""
    simple = tmp_path / "s.json"
    simple.write_text(json.dumps({"type": "object", "required": ["answer"],
                                  "properties": {"answer": {"type": "string"}}}))
    qs = ["What is the capital of France?", "Name a prime number.", "What colour is the sky?",
          "How many legs does a spider have?"]
    prompts = write_prompts(tmp_path / "p.jsonl", qs)
    out = tmp_path / "g"
    res = cli_run("distill", "generate", str(prompts), "--out", str(out), "--backend", "transformers",
                  "--max-tokens", "32", "--json-schema", str(simple), "--schema-retries", "1", "--threads", "2")
    assert res.exit_code == 0, res.output
    kept = pl.read_parquet(out / "kept.parquet")
    st = StageStats.read(out).extra["structured"]
    print(f"\nSmolLM2 (transformers, T=0.7) JSON schema: {st['invalid_first_try']} of {st['checked_first_try']} "
          f"failed at first, {st['retried']} asked again, {st['invalid_dropped']} dropped")
    for row in kept.iter_rows(named=True):
        assert isinstance(json.loads(row["structured"])["answer"], str)
    assert kept.height + st["invalid_dropped"] == len(qs) and kept.height >= 1  # the prefill makes most valid
