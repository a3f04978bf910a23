"""LLM judge: strict answer parsing, retries, and garbage that never becomes a number."""

from __future__ import annotations

import pytest

from thresher.curate.score.judge import JudgeScorer, parse_judge_answer

CONV = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]


@pytest.mark.parametrize("text, expected", [
    ('{"score": 7, "reason": "fine"}', 7.0),
    ('Sure! Here it is:\n```json\n{"reason": "ok", "score": "8"}\n```', 8.0),
    ("Score: 6/10", 6.0),
    ("score = 9", 9.0),
    ("3", 3.0),
    ("  10. ", 10.0),
])
def test_parse_accepts_explicit_scores(text, expected):
    assert parse_judge_answer(text, 1, 10) == (expected, None)


@pytest.mark.parametrize("text, why", [
    ("", "empty answer"),
    (None, "empty answer"),
    ("This answer is great, I'd rate it highly.", "no score found"),
    ("I would give it a seven out of ten", "no score found"),
    ("The response has 3 errors and 2 typos.", "no score found"),
    ('{"score": "excellent"}', "score is not a number: 'excellent'"),
    ('{"score": true}', "score is not a number: True"),
    ('{"score": 42}', "score 42 outside 1-10"),
    ("Score: 0", "score 0 outside 1-10"),
    ("score: 4/5", "score 4/5 is not on the 1-10 scale"),
])
def test_parse_rejects_garbage(text, why):
    assert parse_judge_answer(text, 1, 10) == (None, why)


class FakeJudge:
    """Returns scripted answers per call; records the prompts it was sent."""

    def __init__(self, scripts):
        self.scripts = [list(s) for s in scripts]  # one list of answers per call
        self.calls = []

    def __call__(self, convs):
        self.calls.append(convs)
        return self.scripts.pop(0)


def test_retries_only_unreadable_rows_then_records_raw_text():
    fake = FakeJudge([
        ['{"score": 9}', "lol no", "banana"],            # first try: row 0 ok
        ['{"score": 2, "reason": "wrong"}', "still no"],  # retry: row 1 fixed, row 2 not
        ["nope nope"],                                     # last retry for row 2
    ])
    judge = JudgeScorer(fake, model_id="fake", retries=2, batch_size=8)
    res = judge.score([CONV, CONV, CONV])
    assert [r.score for r in res] == [9.0, 2.0, None]
    assert res[0].error is None and res[1].error is None
    assert res[2].error.startswith("judge_error: unreadable answer after 3 tries (no score found)")
    assert "'nope nope'" in res[2].error
    assert [len(c) for c in fake.calls] == [3, 2, 1]
    retry = fake.calls[1][0]  # row 1, second try
    # the retry shows the judge its own answer and repeats the format
    assert retry[-2] == {"role": "assistant", "content": "lol no"}
    assert "could not be read (no score found)" in retry[-1]["content"]
    assert '"score"' in retry[-1]["content"]


def test_all_garbage_gives_no_score_ever():
    fake = FakeJudge([["I love this!"] * 2, ["10/10 would read again"] * 2])
    judge = JudgeScorer(fake, model_id="fake", retries=1)
    res = judge.score([CONV, CONV])
    assert all(r.score is None for r in res)
    assert all("10/10 would read again" in r.error for r in res)


def test_zero_retries_and_prompt_contents():
    fake = FakeJudge([["??"]])
    judge = JudgeScorer(fake, model_id="fake", retries=0, scale=(1, 5), rubric="Be harsh.")
    (res,) = judge.score([CONV])
    assert res.score is None and "after 1 tries" in res.error
    (prompt,) = fake.calls[0]
    assert prompt[0] == {"role": "system", "content": "Be harsh."}
    assert "What is 2 + 2?" in prompt[1]["content"] and "from 1 (worst) to 5 (best)" in prompt[1]["content"]


def test_backend_returning_wrong_count_is_an_error():
    judge = JudgeScorer(lambda convs: ["7"], model_id="fake")
    with pytest.raises(RuntimeError, match="returned 1 answers for 2 prompts"):
        judge.score([CONV, CONV])


def test_identity_changes_with_rubric_and_model():
    a = JudgeScorer(lambda c: [], model_id="transformers:x").identity
    assert a != JudgeScorer(lambda c: [], model_id="transformers:y").identity
    assert a != JudgeScorer(lambda c: [], model_id="transformers:x", rubric="other").identity


@pytest.mark.slow
def test_real_transformers_backend_judge(tiny_lm_dir):
    """A real (tiny, random) model through the transformers distill backend: its answers are
    noise, so every row must end with no score and the raw answer recorded."""
    from thresher.generation import make_text_generator

    gen = make_text_generator("transformers", str(tiny_lm_dir), max_tokens=12, device="cpu")
    judge = JudgeScorer(gen, model_id="tiny", retries=1, batch_size=4)
    res = judge.score([CONV, CONV])
    for r in res:
        if r.score is None:
            assert r.error.startswith("judge_error: unreadable answer after 2 tries")
        else:  # only an explicit, in-range score may come back
            assert 1 <= r.score <= 10 and r.error is None
    assert any(r.score is None for r in res)
