"""The ifd and length scorers: IFD equals loss(answer | prompt) / loss(answer) computed
directly on a tiny model; length counts the answer's tokens."""

from __future__ import annotations

import math

import pytest

from ._direct_lm import DirectLM

CONVS = [
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "Paris is the capital of France."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Blue, like the sky over the sea."}],
]


def _direct_ifd(model_dir, conv) -> float:
    d = DirectLM(model_dir, conv)
    return d.nll(d.p_ids) / d.nll([d.tok.bos_token_id])


def test_ifd_equals_the_formula(tiny_lm_dir):
    from thresher.curate.score.ifd import IfdScorer

    got = IfdScorer(str(tiny_lm_dir), device="cpu", dtype="float32").score(CONVS)
    for conv, r in zip(CONVS, got):
        assert r.error is None
        assert math.isclose(r.score, _direct_ifd(tiny_lm_dir, conv), rel_tol=1e-4), (r, conv)


def test_ifd_without_an_answer_has_no_score(tiny_lm_dir):
    from thresher.curate.score.ifd import IfdScorer

    (r,) = IfdScorer(str(tiny_lm_dir), device="cpu").score([[{"role": "user", "content": "Hi"}]])
    assert r.score is None and r.error == "no final assistant turn to score"


def test_length_counts_answer_tokens(tiny_lm_dir):
    from transformers import AutoTokenizer

    from thresher.curate.score.length import LengthScorer

    tok = AutoTokenizer.from_pretrained(str(tiny_lm_dir))
    got = LengthScorer(str(tiny_lm_dir)).score(CONVS + [[{"role": "user", "content": "Hi"}]])
    want = [len(tok(c[-1]["content"], add_special_tokens=False)["input_ids"]) for c in CONVS]
    assert [r.score for r in got[:2]] == want and got[2].score is None


@pytest.mark.parametrize("spec,kind", [("length", "length"), ("ifd", "ifd"), ("d=ifd:/m", "ifd")])
def test_specs_parse(spec, kind):
    from thresher.curate.score.registry import parse_spec

    assert parse_spec(spec).kind == kind


def test_score_stage_writes_ifd_and_length_columns(tmp_path, tiny_lm_dir):
    import polars as pl

    from thresher.config import from_dict
    from thresher.curate.score.stage import Config, run
    from thresher.io import write_table
    from thresher.schema import make_rows

    src = tmp_path / "rows.parquet"
    write_table(make_rows([{"messages": c} for c in CONVS]), src)
    cfg = from_dict(Config, {"scorers": [f"ifd:{tiny_lm_dir}", f"length:{tiny_lm_dir}"], "cache": False})
    res = run([src], tmp_path / "out", cfg)
    df = pl.read_parquet(res.kept_path)
    assert df["score_ifd"].null_count() == 0 and df["score_length"].null_count() == 0


def test_verify_scorer_and_its_errors():
    from thresher.curate.score.verify import VerifyScorer
    from thresher.errors import ThresherError

    v = VerifyScorer("sentences:1-2", name="concise")
    got = v.score([CONVS[0], [{"role": "user", "content": "x"}, {"role": "assistant", "content": "A. B. C."}],
                   [{"role": "user", "content": "x"}]])
    assert [r.score for r in got] == [1.0, 0.0, None]
    for bad, msg in [("refnll", "scorer verify:refnll: refnll is not a verifier"),
                     ("sentences:x", "scorer verify:sentences:x: judge 'sentences:x': expected a range")]:
        with pytest.raises(ThresherError) as e:
            VerifyScorer(bad)
        assert str(e.value).startswith(msg)
