"""Fuzz every stage's command through CliRunner: hostile input files and random option values.

Invariant (tests/fuzz/_fuzz.py): exit 0, or one line ``Error: ...`` and exit != 0; never a
traceback; no file outside --out changed.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz._fuzz import JSON_VALUE, TEXT, budget, data_file, good_row, run_case
from thresher.cli.main import cli

INT = st.one_of(st.integers(-5, 50), st.sampled_from([0, -1, 2 ** 31, 10 ** 12]))
FLOAT = st.one_of(st.floats(-2, 2), st.sampled_from([0.0, 1.0, -0.0, 1e-9, 1e9]), st.floats(allow_nan=True))
COL = st.one_of(st.sampled_from(["score_a", "score_b", "id", "category", "messages", "nope", ""]), TEXT)


def opt(name: str, values) -> st.SearchStrategy:
    """``[]`` or ``[name, value]``."""
    return st.one_of(st.just([]), values.map(lambda v: [name, str(v)]))


def flag(name: str) -> st.SearchStrategy:
    return st.sampled_from([[], [name]])


def options(*parts) -> st.SearchStrategy:
    return st.tuples(*parts).map(lambda xs: [a for x in xs for a in x])


READ = options(opt("--on-bad-rows", st.sampled_from(["error", "skip", "maybe"])),
               opt("--format", st.sampled_from(["messages", "sharegpt", "alpaca", "prompt", "nope"])))


@budget(220)
@given(data_file(), READ, st.sampled_from(["o.parquet", "o.jsonl", "o.json", "o", "o.txt"]),
       opt("--to", st.sampled_from(["messages", "sharegpt", "alpaca", "prompt-completion", "x"])))
def test_convert(f, read, dst, to):
    suffix, body = f
    run_case(cli, lambda d: ["convert", d / f"in{suffix}", d / "out" / dst, *read, *to],
             {f"in{suffix}": body}, "convert")


@budget(150)
@given(data_file(), READ, flag("--json"))
def test_stats(f, read, as_json):
    suffix, body = f
    run_case(cli, lambda d: ["stats", d / f"in{suffix}", *read, *as_json], {f"in{suffix}": body}, "stats")


FILTER = options(
    opt("--min", st.tuples(COL, FLOAT).map(lambda x: f"{x[0]}={x[1]}") | TEXT),
    opt("--max", st.tuples(COL, FLOAT).map(lambda x: f"{x[0]}={x[1]}")),
    opt("--top-fraction", FLOAT), opt("--top-k", INT), opt("--top-by", COL), flag("--per-category"),
    opt("--best-of", INT), opt("--best-by", COL), opt("--margin", FLOAT), flag("--keep-empty"),
    opt("--min-chars", INT), opt("--max-chars", INT), opt("--max-repeat-ratio", FLOAT), opt("--ngram", INT),
    flag("--drop-refusals"), opt("--refusal-phrase", TEXT), opt("--max-echo-ratio", FLOAT),
    opt("--normalize", st.sampled_from(["none", "zscore", "rank", "x"])),
)


@budget(150)
@given(data_file(), READ, FILTER)
def test_filter(f, read, opts):
    suffix, body = f
    run_case(cli, lambda d: ["curate", "filter", d / f"in{suffix}", "--out", d / "out", *read, *opts],
             {f"in{suffix}": body}, "filter")


DEDUP = options(
    opt("--on", st.sampled_from(["conversation", "prompt", "response", "x"])), flag("--no-nfkc"),
    flag("--no-casefold"), opt("--shingle", st.sampled_from(["word", "char"])), opt("--ngram", INT),
    opt("--num-perm", INT), opt("--threshold", FLOAT), opt("--bands", INT), opt("--rows", INT), flag("--hash"),
    opt("--seed", INT), opt("--keep-by", COL), opt("--cluster", st.sampled_from(["components", "star"])),
    opt("--chunk-rows", INT), opt("--max-bucket", INT),
)


@budget(120)
@given(data_file(), READ, DEDUP)
def test_dedup(f, read, opts):
    suffix, body = f
    run_case(cli, lambda d: ["curate", "dedup", d / f"in{suffix}", "--out", d / "out", *read, *opts],
             {f"in{suffix}": body}, "dedup")


@budget(80)
@given(data_file(), st.lists(st.one_of(JSON_VALUE, st.fixed_dictionaries(
    {"question": TEXT, "answer": TEXT})), max_size=4),
    options(opt("--ngram", INT), opt("--min-overlap", INT), opt("--min-fraction", FLOAT),
            opt("--text-field", st.sampled_from(["question", "text", "x"]) | TEXT), opt("--batch-rows", INT)))
def test_decontam(f, bench, opts):
    suffix, body = f
    files = {f"in{suffix}": body, "bench.jsonl": "".join(json.dumps(b) + "\n" for b in bench).encode()}
    run_case(cli, lambda d: ["curate", "decontam", d / f"in{suffix}", "--against", d / "bench.jsonl",
                             "--out", d / "out", *opts], files, "decontam")


SPEC = st.one_of(
    st.fixed_dictionaries({}, optional={
        "total": st.one_of(INT, JSON_VALUE), "categories": st.one_of(
            st.dictionaries(st.sampled_from(["code", "math", "chat", ""]),
                            st.one_of(st.fixed_dictionaries({}, optional={"count": INT, "weight": FLOAT,
                                                                          "min_score": FLOAT}), JSON_VALUE),
                            max_size=3), JSON_VALUE),
        "rules": st.lists(st.fixed_dictionaries({"category": TEXT}, optional={
            "regex": st.one_of(TEXT, st.sampled_from(["(", "[a", "\\", "a{2,1}", "(?i)x"])),
            "keywords": st.lists(TEXT, max_size=2)}), max_size=2),
        "on_shortfall": st.sampled_from(["redistribute", "keep", "fail", "x"]),
        "max_repeats": INT, "temperature": FLOAT}),
    JSON_VALUE)


@budget(120)
@given(data_file(), SPEC, options(opt("--rank-by", COL), opt("--seed", INT)))
def test_mix(f, spec, opts):
    import yaml

    suffix, body = f
    try:
        text = yaml.safe_dump(spec, allow_unicode=True)
    except Exception:  # noqa: BLE001 - a value YAML cannot write: use its JSON text
        text = json.dumps(spec)
    files = {f"in{suffix}": body, "spec.yaml": text.encode("utf-8", "surrogatepass")}
    run_case(cli, lambda d: ["curate", "mix", d / f"in{suffix}", "--spec", d / "spec.yaml",
                             "--out", d / "out", *opts], files, "mix")


STAGE = st.one_of(
    st.sampled_from(["filter", "dedup", "mix", "score", "generate", "train", "report", "nope"]).flatmap(
        lambda name: st.dictionaries(st.just(name), st.one_of(st.none(), st.dictionaries(
            st.sampled_from(["min_chars", "threshold", "best_by", "base", "model", "spec", "x", "scorers"]),
            st.one_of(INT, FLOAT, TEXT, st.none(), JSON_VALUE), max_size=3)),
            min_size=1, max_size=1)),
    JSON_VALUE)


@budget(150)
@given(st.fixed_dictionaries({}, optional={
    "name": st.one_of(TEXT, JSON_VALUE), "seed": INT,
    "inputs": st.one_of(st.lists(st.one_of(st.just({"path": "in.jsonl"}), JSON_VALUE), max_size=2), JSON_VALUE),
    "stages": st.one_of(st.lists(STAGE, max_size=3), JSON_VALUE)}) | JSON_VALUE,
    st.booleans())
def test_recipe_validate(recipe, dup_key):
    import yaml

    try:
        text = yaml.safe_dump(recipe, allow_unicode=True)
    except Exception:  # noqa: BLE001
        text = json.dumps(recipe)
    if dup_key:
        text += "\nname: again\n"
    files = {"r.yaml": text.encode("utf-8", "surrogatepass"),
             "in.jsonl": (json.dumps({"messages": [{"role": "user", "content": "q?"},
                                                   {"role": "assistant", "content": "a"}]}) + "\n").encode()}
    run_case(cli, lambda d: ["recipe", "validate", d / "r.yaml"], files, "recipe-validate")


@budget(60)
@given(st.lists(good_row(), min_size=1, max_size=5), st.one_of(TEXT, st.sampled_from(["", "a", "0", "*"])))
def test_why_and_report_on_a_stage_folder(rows, row_id):
    from click.testing import CliRunner

    def args(d):
        src = d / "in.jsonl"
        res = CliRunner().invoke(cli, ["curate", "filter", str(src), "--min-chars", "3", "--out", str(d / "f")])
        assert res.exit_code == 0 or res.output.startswith("Error:"), res.output
        return ["why", d / "f", row_id]

    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    run_case(cli, args, {"in.jsonl": body}, "why")
