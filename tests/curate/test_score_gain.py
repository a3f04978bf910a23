"""The gain scorer: log p(answer | question) - log p(answer) per token, computed directly on a
tiny model; one batched pass in which identical answers share the answer-only pass."""

from __future__ import annotations

import math

import pytest

from ._direct_lm import DirectLM

CONVS = [
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "Paris is the capital of France."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Blue, like the sky over the sea."}],
    [{"role": "user", "content": "Where is the Eiffel tower?"},
     {"role": "assistant", "content": "Paris is the capital of France."}],
]


def _direct(model_dir, conv) -> tuple[float, float, float]:
    d = DirectLM(model_dir, conv)
    frame = d.tok.apply_chat_template([{"role": "user", "content": ""}], tokenize=False, add_generation_prompt=True)
    return -d.nll(d.p_ids), -d.nll(d.tok(frame, add_special_tokens=False)["input_ids"]), d.last_logp(d.p_ids)


def test_gain_equals_the_formula_in_one_pass_sharing_answers(tiny_lm_dir):
    from thresher.curate.score import gain
    from thresher.curate.score.gain import EndingScorer, GainScorer

    gain._MEMO.clear()
    scorer = GainScorer(str(tiny_lm_dir), device="cpu", dtype="float32", batch_size=64)
    calls = []
    inner = scorer.inner.score_batch_detail
    scorer.inner.score_batch_detail = lambda batch: calls.append(len(batch)) or inner(batch)
    got = scorer.score(CONVS)
    assert calls == [5]  # 3 conditional + 2 distinct answers, one batch
    for conv, r in zip(CONVS, got):
        cond, uncond, _ = _direct(tiny_lm_dir, conv)
        assert r.error is None
        assert math.isclose(r.score, cond - uncond, rel_tol=1e-4, abs_tol=1e-5), (r, conv)
    # the ending scorer reuses the same pass (no new forward pass) and reads the last token
    ending = EndingScorer(str(tiny_lm_dir), device="cpu", dtype="float32", batch_size=64)
    ending.inner.score_batch_detail = lambda batch: calls.append(-1) or []
    ends = ending.score(CONVS)
    assert calls == [5]
    for conv, r in zip(CONVS, ends):
        assert math.isclose(r.score, _direct(tiny_lm_dir, conv)[2], rel_tol=1e-4, abs_tol=1e-5)


def test_gain_without_an_answer_has_no_score_and_spec_parses(tiny_lm_dir):
    from thresher.curate.score.gain import GainScorer
    from thresher.curate.score.registry import parse_spec

    (r,) = GainScorer(str(tiny_lm_dir), device="cpu").score([[{"role": "user", "content": "Hi"}]])
    assert r.score is None and r.error == "no final assistant turn to score"
    assert parse_spec("g=gain:smollm2") .column == "score_g"
    assert parse_spec("gain").model is None


@pytest.mark.slow
def test_gain_prefers_the_right_answer_on_smollm2(smollm2_dir):
    """Real model: an answer to another question gains less than the right one."""
    from thresher.curate.score.gain import GainScorer

    q1, q2 = "What is the capital of France?", "How many legs does a spider have?"
    a1, a2 = "The capital of France is Paris.", "A spider has eight legs."
    convs = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
             for q, a in ((q1, a1), (q2, a2), (q1, a2), (q2, a1))]
    s = [r.score for r in GainScorer(str(smollm2_dir), device="cpu").score(convs)]
    assert min(s[0], s[1]) > max(s[2], s[3])
