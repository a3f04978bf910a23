"""Round trips and shape detection (issue 26, "Fuzz what was not fuzzed").

- Round trip: valid rows (every message field, declared columns of every JSON type) written
  in every shape and file type that can hold them, then read back, keep every message, role,
  content and column. A shape that cannot hold a row refuses it with one line.
- Shape detection: a file mixing records of several shapes, in any order, never moves an
  answer into a side column: every record is a row holding all its turns, or a reject.
- One validation: the record path (``validate_messages``) and the canonical Parquet path
  (``table_problems``) accept and refuse the same conversations, for the same reason.
"""

from __future__ import annotations

import json
import math

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz._fuzz import budget, count, workdir
from thresher.errors import ThresherError
from thresher.io import read_rows, write_table
from thresher.schema import messages_dtype, table_problems, validate_messages

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(lambda s: s.strip())
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
ROWS_PER_FILE = (8, 30)


@st.composite
def tool_call(draw):
    args = draw(st.dictionaries(st.sampled_from(["city", "n", "q"]), st.one_of(st.integers(-5, 5), ANY_TEXT),
                                max_size=2))
    return {"id": draw(st.sampled_from(["c1", "c2"])), "type": "function",
            "function": {"name": draw(st.sampled_from(["weather", "search"])),
                         "arguments": json.dumps(args, sort_keys=True, ensure_ascii=False)}}


@st.composite
def conversation(draw, rich: bool, turns: int = 3):
    """A valid conversation; ``rich`` adds tool calls, names, weights and reasoning."""
    msgs = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": "" if draw(st.integers(0, 19)) == 0 else draw(TEXT)})
    for _ in range(draw(st.integers(1, turns))):
        msgs.append({"role": "user", "content": draw(TEXT)})
        a = {"role": "assistant", "content": draw(TEXT)}
        if rich and draw(st.integers(0, 3)) == 0:
            a.update(content="", tool_calls=[draw(tool_call())])
            msgs.append(a)
            msgs.append({"role": "tool", "content": draw(TEXT), "tool_call_id": "c1"})
            a = {"role": "assistant", "content": draw(TEXT)}
        if rich and draw(st.booleans()):
            a["weight"] = draw(st.sampled_from([0.0, 1.0, 0.5]))
        if rich and draw(st.booleans()):
            a["reasoning_content"] = draw(TEXT)
        if rich and draw(st.booleans()):
            a["name"] = draw(st.sampled_from(["bob", "ann"]))
        msgs.append(a)
    if draw(st.integers(0, 4)) == 0:
        msgs[-1] = {**msgs[-1], "content": draw(st.sampled_from(["", " "]))} if not msgs[-1].get("tool_calls") \
            else msgs[-1]  # an empty final answer is a row (filter drops it)
    if turns > 1 and draw(st.integers(0, 19)) == 0:  # a system turn later in the conversation
        msgs.insert(draw(st.integers(1, len(msgs) - 1)) if len(msgs) > 1 else 0,
                    {"role": "system", "content": draw(TEXT)})
    return msgs


COLUMNS = {  # declared extra columns, one JSON type each
    "score": st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
    "n": st.integers(-(2 ** 40), 2 ** 40),
    "flag": st.booleans(),
    "tags": st.lists(TEXT, max_size=3),
    "meta": st.fixed_dictionaries({"url": ANY_TEXT, "rank": st.integers(0, 9)}),
}


#: what each written shape can hold: (tool calls and other fields, turns)
HOLDS = {"messages": (True, 3), "prompt-completion": (True, 3), "sharegpt": (False, 3), "alpaca": (False, 1),
         "prompt": (False, 1)}


@st.composite
def shaped_table(draw):
    """(shape, rows): mostly rows the shape can hold, sometimes rows it cannot."""
    shape = draw(st.sampled_from(sorted(HOLDS)))
    rich, turns = HOLDS[shape] if draw(st.integers(0, 9)) else (True, 3)
    rows = draw(table(rich, turns))
    if shape == "prompt" and draw(st.integers(0, 9)):
        for r in rows:
            r["messages"] = [m for m in r["messages"] if m["role"] != "assistant"]
    return shape, rows


@st.composite
def table(draw, rich: bool, turns: int = 3):
    n = draw(st.integers(*ROWS_PER_FILE))
    cols = draw(st.sets(st.sampled_from(sorted(COLUMNS))))
    rows = []
    for i in range(n):
        row = {"id": f"r{i}", "messages": draw(conversation(rich, turns)),
               "category": draw(st.sampled_from([None, "chat", "math", "é x"])),
               "source": draw(st.sampled_from([None, "unit"]))}
        row.update({c: draw(COLUMNS[c]) for c in sorted(cols)})
        rows.append(row)
    return rows


def _frame(rows) -> pl.DataFrame:
    from thresher.schema import conform

    fields = {k for r in rows for m in r["messages"] for k in m if k not in ("role", "content")}
    schema = {"id": pl.String, "messages": messages_dtype(fields), "category": pl.String, "source": pl.String}
    return conform(pl.DataFrame(rows, schema_overrides=schema, infer_schema_length=None))


def _norm(msgs):
    return [{k: v for k, v in m.items() if v is not None} for m in msgs]


def _same_value(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12)
    return a == b


@budget(140)
@given(shaped_table(), st.sampled_from([".jsonl", ".json", ".parquet", ".jsonl.gz"]))
def test_round_trip_keeps_every_message_and_column(case, ext):
    shape, rows = case
    df = _frame(rows)
    with workdir() as d:
        path = d / f"out{ext}"
        try:
            if ext.endswith(".gz"):
                import gzip

                plain = d / "out.jsonl"
                write_table(df, plain, shape=shape)
                path.write_bytes(gzip.compress(plain.read_bytes()))
            else:
                write_table(df, path, shape=shape)
        except ThresherError as e:  # a shape that cannot hold a row says so
            assert "\n" not in str(e) and "cannot" in str(e), e
            count("roundtrip-refused")
            return
        back = read_rows(path)  # detected: a forced format refuses extra columns
    assert not back.rejects, back.rejects[:2]
    got = back.table
    assert got["id"].to_list() == df["id"].to_list()
    for want, have in zip(df["messages"].to_list(), got["messages"].to_list()):
        assert _norm(have) == _norm(want), (shape, ext)
    for c in ("category", "source", *[c for c in COLUMNS if c in df.columns]):
        assert c in got.columns, (c, got.columns)
        for a, b in zip(df[c].to_list(), got[c].to_list()):
            assert _same_value(a, b), (c, a, b)
    count("roundtrip-files")
    for _ in range(df.height):
        count("roundtrip-rows")


# ------------------------------------------------------------------ shape detection


SHAPE_RECORDS = {
    "messages": lambda q, a: {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
    "sharegpt": lambda q, a: {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]},
    "alpaca": lambda q, a: {"instruction": q, "input": "", "output": a},
    "prompt-completion": lambda q, a: {"prompt": q, "completion": a},
    "prompt": lambda q, a: {"prompt": q},
}


@budget(150)
@given(st.lists(st.tuples(st.sampled_from(sorted(SHAPE_RECORDS)), TEXT, ANY_TEXT), min_size=1, max_size=12),
       st.sampled_from([".jsonl", ".json"]))
def test_mixed_shapes_never_lose_an_answer(recs, ext):
    records = [SHAPE_RECORDS[s](q, a) | {"id": f"r{i}"} for i, (s, q, a) in enumerate(recs)]
    with workdir() as d:
        p = d / f"in{ext}"
        p.write_text(json.dumps(records) if ext == ".json" else "".join(json.dumps(r) + "\n" for r in records))
        res = read_rows(p, on_bad_rows="skip")
    assert res.table.height + len(res.rejects) == len(records)
    side = {"completion", "output", "conversations", "instruction", "prompt", "input"} & set(res.table.columns)
    assert not side, f"shape keys moved into side columns: {side}"
    by_id = {r["id"]: r for r in res.table.iter_rows(named=True)}
    for i, (shape, q, a) in enumerate(recs):
        row = by_id.get(f"r{i}")
        if row is None:
            continue
        texts = [m["content"] for m in row["messages"]]
        assert texts[0] == q, (shape, texts)
        if shape != "prompt":  # every answer the record held is in its row
            assert texts[-1] == a and row["messages"][-1]["role"] == "assistant", (shape, res.shape, texts)
    count("shape-files")


# ------------------------------------------------------------------ one validation


ROLES = st.sampled_from(["system", "user", "assistant", "tool", "bot"])


@st.composite
def maybe_bad_messages(draw):
    out = []
    for _ in range(draw(st.integers(0, 4))):
        m = {"role": draw(st.one_of(ROLES, st.none())),
             "content": draw(st.one_of(st.sampled_from(["", " ", "x", "hi there"]), st.none())),
             "weight": draw(st.one_of(st.none(), st.sampled_from([0.0, 1.0, 0.5, -1.0, 7.0, float("nan")]))),
             "tool_calls": draw(st.one_of(st.none(), st.just([{"id": "c", "type": "function",
                                                                "function": {"name": "f", "arguments": "{}"}}])))}
        out.append(m)
    return out


@budget(300)
@given(st.lists(maybe_bad_messages(), min_size=1, max_size=8))
def test_record_path_and_parquet_path_validate_alike(convs):
    df = pl.DataFrame({"id": [f"r{i}" for i in range(len(convs))], "messages": convs},
                      schema={"id": pl.String, "messages": messages_dtype(["tool_calls", "weight"])})
    fast = dict(table_problems(df).iter_rows())
    for i, msgs in enumerate(df["messages"].to_list(), start=1):
        slow = validate_messages(msgs)
        got = fast.get(i)
        assert (slow is None) == (got is None), (msgs, slow, got)
        if slow is not None and "'weight'" not in slow:
            assert slow == got, (msgs, slow, got)
    count("validation-tables")
