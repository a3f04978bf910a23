"""Text to compare (same as thresher.schema) and normalisation steps."""

from __future__ import annotations

import polars as pl
import pytest

from thresher.curate.dedup.normalize import NormalizeOptions, normalize, normalize_text, text_column
from thresher.schema import MESSAGES_DTYPE, conversation_text, prompt_text, response_text

CONVS = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
     {"role": "assistant", "content": "Hello."}],
    [{"role": "user", "content": "first"}, {"role": "assistant", "content": "a1"},
     {"role": "user", "content": "second"}, {"role": "assistant", "content": "a2"}],
    [{"role": "user", "content": "only a question"}],
    [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"}],
]


@pytest.mark.parametrize("on,ref", [("conversation", conversation_text), ("prompt", prompt_text),
                                    ("response", response_text)])
def test_text_column_matches_schema_helpers(on, ref):
    df = pl.DataFrame({"messages": CONVS}, schema={"messages": MESSAGES_DTYPE})
    assert text_column(df, on).to_list() == [ref(m) for m in CONVS]


def test_normalize_all_steps():
    raw = "Straße\u00a0 ＡＢＣ — the ﬁle's   END!!\n\tok"
    assert normalize_text(raw) == "strasse abc the file s end ok"


def test_each_step_can_be_switched_off():
    raw = "Ａ  B,c"
    assert normalize_text(raw, NormalizeOptions(nfkc=False)) == "ａ b c"
    assert normalize_text(raw, NormalizeOptions(casefold=False)) == "A B c"
    assert normalize_text(raw, NormalizeOptions(punctuation=False)) == "a b,c"
    assert normalize_text(raw, NormalizeOptions(whitespace=False)) == "a  b c"


def test_normalize_keeps_nulls_as_empty_and_length():
    s = normalize(pl.Series(["A", None, "!!!"]))
    assert s.to_list() == ["a", "", ""]
