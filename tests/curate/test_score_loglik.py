"""Log-likelihood scorer: rendering and truncation on a tiny LM; SmolLM2 ranks a correct answer
above a wrong one on real question pairs (slow)."""

from __future__ import annotations

import pytest

PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris.",
     "The capital of France is Tokyo."),
    ("How many days are there in a week?", "There are seven days in a week.",
     "There are thirty-two days in a week."),
    ("What color is the sky on a clear day?", "The sky is blue on a clear day.",
     "The sky is green with purple stripes on a clear day."),
    ("What is 2 + 2?", "2 + 2 = 4.", "2 + 2 = 17."),
    ("Which animal is known as the king of the jungle?",
     "The lion is known as the king of the jungle.",
     "The goldfish is known as the king of the jungle."),
    ("What do bees make?", "Bees make honey.", "Bees make bicycles."),
]


def _conv(q, a):
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def test_prepare_splits_prompt_and_response_tokens(tiny_lm_dir):
    from thresher.curate.score.loglik import LoglikScorer

    s = LoglikScorer(str(tiny_lm_dir), device="cpu", dtype="float32")
    (p,) = s.prepare([_conv("Name a colour.", "Blue.")])
    tok = s.tokenizer
    prompt = tok.decode(p.ids[: p.n_prompt])
    response = tok.decode(p.ids[p.n_prompt :])
    assert prompt.endswith("<|im_start|>assistant\n") and "Name a colour." in prompt
    assert response == "Blue.<|im_end|>"


def test_no_response_and_overflow_policies(tiny_lm_dir):
    from thresher.curate.score.loglik import LoglikScorer

    conv = _conv("word " * 60, "answer " * 40)
    skip = LoglikScorer(str(tiny_lm_dir), max_length=32, overflow="skip", device="cpu")
    res = skip.score([conv, [{"role": "user", "content": "hi"}]])
    assert res[0].score is None and res[0].error.startswith("skipped: ")
    assert "> max_length 32" in res[0].error
    assert res[1].score is None and res[1].error == "no final assistant turn to score"
    left = LoglikScorer(str(tiny_lm_dir), max_length=32, overflow="truncate_left", device="cpu")
    (p,) = left.prepare([conv])
    assert len(p.ids) == 32 and p.n_prompt >= 1
    right = LoglikScorer(str(tiny_lm_dir), max_length=32, overflow="truncate_right", device="cpu")
    (q,) = right.prepare([conv])
    assert len(q.ids) == 32 and q.n_prompt == 31  # the prompt fills it, one response token
    assert all(r.score is not None for r in left.score([conv]) + right.score([conv]))


@pytest.mark.slow
def test_smollm2_ranks_correct_answers_above_wrong_ones(smollm2_dir):
    from thresher.curate.score.loglik import LoglikScorer

    s = LoglikScorer(str(smollm2_dir), device="cpu", dtype="float32", batch_size=12)
    convs = [_conv(q, good) for q, good, _ in PAIRS] + [_conv(q, bad) for q, _, bad in PAIRS]
    res = s.score(convs)
    good = [r.score for r in res[: len(PAIRS)]]
    bad = [r.score for r in res[len(PAIRS) :]]
    assert s._fast  # Llama: the decoder-states x lm_head path matched the model's logits
    for (q, _, _), g, b in zip(PAIRS, good, bad):
        assert g > b, (q, g, b)
    assert sum(good) / len(good) > sum(bad) / len(bad) + 0.5
