"""Backend behaviour: the shared helpers and the real transformers backend on a tiny model."""

from __future__ import annotations

import pytest

from thresher.distill.backends import SamplingParams, default_backend, make_backend, split_reasoning
from thresher.distill.backends.base import make_completion, model_fingerprint, trim_at_stop
from thresher.errors import ThresherError


def test_split_reasoning_variants():
    assert split_reasoning("<think>add 2 and 2</think>\n\nIt is 4.") == ("It is 4.", "add 2 and 2")
    # template put the open marker in the prompt: everything before the close is reasoning
    assert split_reasoning("hmm, 4?</think>It is 4.") == ("It is 4.", "hmm, 4?")
    # cut by max_tokens inside the reasoning: no answer
    assert split_reasoning("<think>still thinking") == ("", "still thinking")
    assert split_reasoning("Plain answer. ") == ("Plain answer.", None)
    assert split_reasoning("<thinking>x</thinking>y") == ("y", "x")


def test_stop_strings_and_completion():
    assert trim_at_stop("abc###def", ("###",)) == ("abc", True)
    assert trim_at_stop("abc", ("###",)) == ("abc", False)
    c = make_completion("<think>r</think>answer END tail", finish_reason="length", prompt_tokens=3,
                        completion_tokens=9, params=SamplingParams(stop=("END",)))
    assert (c.text, c.reasoning, c.finish_reason) == ("answer", "r", "stop")
    c = make_completion("x", finish_reason="stop", prompt_tokens=1, completion_tokens=1,
                        params=SamplingParams(), reasoning="server-side reasoning")
    assert c.reasoning == "server-side reasoning" and c.text == "x"


def test_sampling_params_check():
    bad = SamplingParams(temperature=-1, top_p=0, top_k=-2, max_tokens=0, stop=("",))
    problems = bad.check()
    assert len(problems) == 5 and all(":" in p for p in problems)
    assert SamplingParams().check() == []


def test_unknown_backend_and_default():
    with pytest.raises(ThresherError, match="unknown backend 'nope'"):
        make_backend("nope", None)
    assert default_backend() == "transformers"  # no GPU on this machine


def test_fingerprint_changes_with_weights(tmp_path, tiny_lm_dir):
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(tiny_lm_dir, copy)
    assert model_fingerprint(copy) == model_fingerprint(tiny_lm_dir)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    assert model_fingerprint(copy) != model_fingerprint(tiny_lm_dir)


@pytest.fixture(scope="module")
def tiny_backend(tiny_lm_dir):
    be = make_backend("transformers", str(tiny_lm_dir), max_batch_sequences=8)
    yield be
    be.close()


def test_transformers_n_samples_in_order(tiny_backend):
    convs = [[{"role": "user", "content": "hi"}],
             [{"role": "system", "content": "Be brief and exact in every answer you give."},
              {"role": "user", "content": "What is the meaning of the built-in function len?"}],
             [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"},
              {"role": "user", "content": "three"}]]
    out = tiny_backend.generate(convs, n=3, params=SamplingParams(max_tokens=12, seed=1))
    assert [len(o) for o in out] == [3, 3, 3]
    tok = tiny_backend.tokenizer
    for conv, samples in zip(convs, out):
        expected = len(tok(tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True),
                           add_special_tokens=False)["input_ids"])
        for c in samples:
            assert c.prompt_tokens == expected  # results map back to their own prompt
            assert 1 <= c.completion_tokens <= 12
            assert c.finish_reason in ("stop", "length")
            assert (c.finish_reason == "length") == (c.completion_tokens == 12 and "<|im_end|>" not in c.text)
    # sampling gives distinct samples for one prompt
    assert len({c.text for c in out[1]}) > 1


def test_transformers_batched_greedy_matches_single(tiny_backend):
    """Left padding and length sorting must not change what a prompt gets."""
    convs = [[{"role": "user", "content": t}] for t in
             ("a", "a much longer prompt about the for statement and its else clause", "mid length here")]
    params = SamplingParams(temperature=0, max_tokens=10)
    batched = tiny_backend.generate(convs, n=2, params=params)
    for conv, samples in zip(convs, batched):
        single = tiny_backend.generate([conv], n=1, params=params)[0][0]
        assert samples[0].text == samples[1].text == single.text
        assert samples[0].completion_tokens == single.completion_tokens


def test_transformers_rejects_bad_args(tiny_backend):
    with pytest.raises(ThresherError, match="n: must be"):
        tiny_backend.generate([[{"role": "user", "content": "x"}]], n=0, params=SamplingParams())
    with pytest.raises(ThresherError, match="last message must be the user"):
        tiny_backend.generate([[{"role": "assistant", "content": "x"}]], n=1, params=SamplingParams())


def test_missing_model_is_one_line_error(tmp_path):
    with pytest.raises(ThresherError) as e:
        make_backend("transformers", str(tmp_path / "nowhere"))
    assert "not found" in str(e.value) and "\n" not in str(e.value)
