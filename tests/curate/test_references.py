"""References and tests travel with the rows (issue 21, section 1): prompt files' reference,
answer, solution, ideal, test(s) and entry_point columns are normalised on read and kept by
generate, score, filter, dedup and mix; ``why`` shows them."""

from __future__ import annotations

import json

import polars as pl

from tests.conftest import invoke
from thresher.io.references import last_boxed, normalize_references, solution_answer

GSM8K = ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
         "altogether in April and May.\n#### 72")
MATH_SOLUTION = r"The sum is $\frac{1}{2} + \frac{1}{4} = \boxed{\frac{3}{4}}$."


def test_solution_answers():
    assert solution_answer(GSM8K) == "72"
    assert solution_answer(MATH_SOLUTION) == r"\frac{3}{4}"
    assert last_boxed(r"first \boxed{1} then \boxed{\{1, 2\} \cup \{3\}}") == r"\{1, 2\} \cup \{3\}"
    assert last_boxed(r"\boxed{unclosed") is None
    assert solution_answer("42") is None


def test_normalize_every_shape():
    df = pl.DataFrame({"answer": [GSM8K, "7", None], "solution": [None, MATH_SOLUTION, MATH_SOLUTION]})
    out = normalize_references(df)
    assert out.columns == ["reference", "reference_solution"]
    assert out["reference"].to_list() == ["72", "7", r"\frac{3}{4}"]
    assert out["reference_solution"].to_list() == [GSM8K, MATH_SOLUTION, MATH_SOLUTION]
    assert normalize_references(out).equals(out)  # idempotent
    he = normalize_references(pl.DataFrame({"test": ["def check(c): pass"], "entry_point": ["f"]}))
    assert he.columns == ["entry_point", "tests"] and he["tests"][0] == "def check(c): pass"
    mbpp = normalize_references(pl.DataFrame({"test_list": [["assert f(1) == 1", "assert f(2) == 4"]]}))
    assert mbpp["tests"].to_list() == ["assert f(1) == 1\nassert f(2) == 4"]
    ideal = normalize_references(pl.DataFrame({"ideal": [["Paris", "paris"]], "n": [1]}))
    assert ideal["reference"].to_list() == ["Paris"] and "ideal" not in ideal.columns
    assert normalize_references(pl.DataFrame({"answer": [18, 2]}))["reference"].to_list() == ["18", "2"]
    plain = pl.DataFrame({"id": ["a"], "x": [1]})
    assert normalize_references(plain) is plain


class _Scripted:
    """Stands in for a teacher: the stage's own row logic is under test, not generation."""

    name, model, revision, chat_template, batch_size = "transformers", "scripted", "r1", "t", 4

    def generate(self, conversations, *, n, params):
        from thresher.distill.backends.base import make_completion

        return [[make_completion(f"<think>add them</think>The answer is {72 if j == 0 else 60 + j}.",
                                 finish_reason="stop", prompt_tokens=3, completion_tokens=5, params=params)
                 for j in range(n)] for _ in conversations]

    def close(self):
        pass


def _invoke(*args):
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    return r


def test_references_travel_from_prompts_through_every_stage(tmp_path):
    from thresher.distill.stage import Config, run

    prompts = tmp_path / "gsm8k.jsonl"
    with open(prompts, "w") as f:  # GSM8K's own shape: question text, a worked answer
        for q in ("How many clips did Natalia sell?", "How many clips in all?"):
            f.write(json.dumps({"prompt": q, "answer": GSM8K, "category": "math"}) + "\n")
    gen = run([prompts], tmp_path / "gen", Config(n=3), backend_factory=lambda *a, **k: _Scripted())
    rows = pl.read_parquet(gen.kept_path)
    assert rows.height == 6 and rows["reference"].to_list() == ["72"] * 6
    assert rows["reference_solution"].to_list() == [GSM8K] * 6
    _invoke("curate", "score", tmp_path / "gen", "--out", tmp_path / "score", "-s", "m=verify:math", "-s", "passrate:m")
    _invoke("curate", "filter", tmp_path / "score", "--out", tmp_path / "filter", "--only-passing", "score_m")
    _invoke("curate", "dedup", tmp_path / "filter", "--out", tmp_path / "dedup")
    spec = tmp_path / "mix.yaml"
    spec.write_text("total: 10\ntemperature: 1.0\n")
    _invoke("curate", "mix", tmp_path / "dedup", "--out", tmp_path / "mix", "--spec", spec)
    for stage in ("score", "filter", "dedup", "mix"):
        df = pl.read_parquet(tmp_path / stage / "kept.parquet")
        assert {"reference", "reference_solution", "parent_id"} <= set(df.columns), stage
    final = pl.read_parquet(tmp_path / "mix" / "kept.parquet")
    assert final["score_m"].to_list() == [1.0] * final.height and final["reference"].to_list() == ["72"] * final.height
    assert final["score_passrate"].to_list() == [1 / 3] * final.height


def test_why_shows_the_reference(tmp_path):
    from thresher.report.why import _describe

    lines = _describe({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                       "reference": "72", "tests": "assert f(1)", "entry_point": "f", "score_m": 1.0})
    assert "  reference: '72'" in lines
    assert "  tests:    'assert f(1)' (entry point f)" in lines


def test_a_forced_prompt_format_accepts_reference_and_test_columns(tmp_path):
    from thresher.io.inputs import ReadOptions, read_inputs

    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"prompt": "Add.", "answer": "#### 4", "test": "assert f() == 4",
                             "entry_point": "f"}) + "\n")
    df, _ = read_inputs([p], ReadOptions(fmt="prompt"))
    assert df.select("reference", "reference_solution", "tests", "entry_point").row(0) == (
        "4", "#### 4", "assert f() == 4", "f")
