"""The Arrow fast path for canonical JSONL (:mod:`thresher.io.arrow_jsonl`) against the record
path: on any file, in both --on-bad-rows modes and after an earlier input has taken ids, both
give the same table (values, dtypes, column order), rejects, errors and id registrations."""

from __future__ import annotations

import json
from unittest import mock

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz._fuzz import budget, count, data_file, workdir
from thresher.errors import ThresherError
from thresher.io import arrow_jsonl, read_rows, readers
from thresher.schema import IdAssigner

CLEAN = st.sampled_from(["hi", "question?", "é💥", "a\nb", "2024-01-02", "2024-01-02T03:04:05", "<|im_end|>",
                         "\\", '"', "\ud83d\ude00", "\u3000x", "x" * 300])
TEXTS = st.one_of(CLEAN, CLEAN, CLEAN, st.sampled_from([" ", "", "\x1f", "\x85", "\u3000"]))
PLAIN_ROLES = st.sampled_from(["user", "assistant"])
ROLES = st.one_of(PLAIN_ROLES, PLAIN_ROLES, PLAIN_ROLES, st.sampled_from(["system", "tool", "bot"]))
EXTRA_KEYS = st.sampled_from(["name", "tool_call_id", "reasoning_content", "thinking", "weight", "train", "x"])
EXTRA_VALUES = st.one_of(st.none(), TEXTS, st.sampled_from([0, 1, 0.5, 2, True]))


@st.composite
def _message(draw):
    m = {"role": draw(ROLES), "content": draw(TEXTS)}
    if draw(st.integers(0, 2)) == 0:
        m.update(draw(st.dictionaries(EXTRA_KEYS, EXTRA_VALUES, max_size=2)))
    if draw(st.integers(0, 19)) == 0:
        m.pop(draw(st.sampled_from(["role", "content"])))
    keys = draw(st.permutations(list(m)))
    return {k: m[k] for k in keys}


SCALARS = st.one_of(st.none(), st.booleans(), st.sampled_from([0, 1, -7, 2 ** 62, 2 ** 64, 1.5, 1e300]), TEXTS)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.sampled_from(["a", "b"]), SCALARS,
                                                                            max_size=2))


@st.composite
def _clean_pair(draw):
    """A valid user/assistant pair, the assistant turn sometimes with valid optional fields."""
    answer = {"role": "assistant", "content": draw(CLEAN)}
    answer.update(draw(st.dictionaries(st.sampled_from(["name", "reasoning_content", "tool_call_id"]), CLEAN,
                                       max_size=2)))
    if draw(st.integers(0, 3)) == 0:
        answer["weight"] = draw(st.sampled_from([0, 1, 0.5, 1.0]))
    return [{"role": "user", "content": draw(CLEAN)}, answer]


@st.composite
def _row(draw):
    row = {"messages": draw(st.one_of(_clean_pair(), _clean_pair(), _clean_pair(),
                                      st.tuples(_message(), _message()).map(list), st.lists(_message(), max_size=3)))}
    for key, values in (("id", st.one_of(st.none(), st.sampled_from(["a", "b", "", "7"]), st.integers(0, 3),
                                         st.just(1.5), st.just(True))),
                        ("category", st.one_of(st.none(), TEXTS, st.integers(0, 3), st.just(2.5))),
                        ("source", st.just("s")), ("score", st.one_of(st.integers(0, 3), st.floats(0, 1))),
                        ("meta", VALUES), ("answer", VALUES), ("custom_id", st.just("c"))):
        if draw(st.integers(0, 5)) == 0:
            row[key] = draw(values)
    keys = draw(st.permutations(list(row)))
    return {k: row[k] for k in keys}


@st.composite
def canonical_file(draw):
    """(suffix, bytes) of a mostly clean messages JSONL file, sometimes with a subtle twist."""
    rows = draw(st.lists(_row(), min_size=1, max_size=6))
    eol = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    lines = [json.dumps(r, ensure_ascii=draw(st.booleans())) for r in rows]
    twist = draw(st.integers(0, 19))
    if twist == 0:
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", " ", "\t", "\x0c"])))
    elif twist == 1:
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = lines[i] + draw(st.sampled_from([" ", lines[i], "x", ' {"messages": []}']))
    elif twist == 2:
        lines[0] = lines[0].replace('"role"', '"role": "user", "role"', 1)  # a key given twice
    elif twist == 3:
        lines[-1] = lines[-1].replace('{"', '{\n"', 1)  # an object over two lines
    body = eol.join(lines) + (eol if draw(st.booleans()) else "")
    data = ("\ufeff" if draw(st.integers(0, 5)) == 0 else "") + body
    return ".jsonl", data.encode("utf-8", "surrogatepass")


def _outcome(path, mode: str, fast: bool, earlier=None):
    """What reading ``path`` gives (after ``earlier`` when given), with or without the fast path."""
    ids = IdAssigner()
    real = arrow_jsonl.read_canonical

    def spy(*args):
        rows = real(*args) if fast else None
        if rows is not None:
            count("arrow-jsonl-fast-path-taken")
        return rows

    with mock.patch.object(arrow_jsonl, "read_canonical", side_effect=spy):
        try:
            if earlier is not None:
                read_rows(earlier, on_bad_rows="skip", ids=ids)
            res = read_rows(path, on_bad_rows=mode, ids=ids)
        except ThresherError as e:
            return ("error", str(e))
    return (res.table, res.table.columns, res.table.schema, res.rejects, res.shape, dict(ids.seen),
            dict(ids._count))


def _compare(suffix: str, body: bytes, mode: str, twice: bool) -> None:
    with workdir() as d:
        p = d / f"in{suffix}"
        p.write_bytes(body)
        earlier = p if twice else None
        fast, slow = _outcome(p, mode, True, earlier), _outcome(p, mode, False, earlier)
        if isinstance(fast[0], str) or isinstance(slow[0], str):
            assert fast == slow
            return
        assert fast[0].equals(slow[0]), (fast[0], slow[0])
        assert fast[1:] == slow[1:]


@budget(300)
@given(canonical_file(), st.sampled_from(["error", "skip"]), st.booleans())
def test_fast_path_reads_canonical_jsonl_as_the_record_path(f, mode, twice):
    _compare(*f, mode, twice)
    count("arrow-jsonl")


@budget(150)
@given(data_file(), st.sampled_from(["error", "skip"]))
def test_fast_path_on_hostile_files(f, mode):
    suffix, body = f
    if ".jsonl" in suffix or ".ndjson" in suffix:
        _compare(suffix, body, mode, False)
    count("arrow-jsonl-hostile")


def test_fast_path_takes_clean_files(tmp_path):
    """A clean file is read by the fast path (not only by the record path it falls back to)."""
    p = tmp_path / "in.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}],
             "category": "c", "score": i / 2} for i in range(5)]
    rows[1]["id"] = "given"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ids = IdAssigner()
    ids.file = str(p)
    table = arrow_jsonl.read_canonical(p, str(p), ids)
    assert table is not None and table.height == 5 and ids.seen["given"] == (str(p), "2")
    with mock.patch.object(arrow_jsonl, "read_canonical", side_effect=lambda *a: None):
        slow = read_rows(p).table
    assert table.equals(slow) and table.schema == slow.schema


def _read_with(path, mode: str, frame):
    with mock.patch.object(readers, "_row_frame", frame):
        try:
            res = read_rows(path, on_bad_rows=mode)
        except ThresherError as e:
            return str(e)
    return res.table, res.table.schema, res.table.columns, res.rejects


@budget(150)
@given(st.one_of(data_file(), canonical_file()), st.sampled_from(["error", "skip"]))
def test_record_path_builds_messages_through_arrow_as_polars_would(f, mode):
    """The record path's table (messages built through Arrow) equals ``pl.DataFrame(rows)``'s."""
    suffix, body = f
    with workdir() as d:
        p = d / f"in{suffix}"
        p.write_bytes(body)
        ours = _read_with(p, mode, readers._row_frame)
        plain = _read_with(p, mode, lambda rows: pl.DataFrame(rows, infer_schema_length=None))
    if isinstance(ours, str) or isinstance(plain, str):
        assert ours == plain
    else:
        assert ours[0].equals(plain[0]) and ours[1:] == plain[1:]
    count("record-path-arrow-messages")


def test_fast_path_reads_compressed_files_and_leaves_long_lines_to_the_record_path(tmp_path):
    import gzip

    rows = [{"messages": [{"role": "user", "content": "q" * n}, {"role": "assistant", "content": "a"}]}
            for n in (10, 300, 20)]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    p = tmp_path / "in.jsonl.gz"
    p.write_bytes(gzip.compress(body))
    ids = IdAssigner()
    fast = arrow_jsonl.read_canonical(p, str(p), ids)
    assert fast is not None and fast.height == 3
    assert fast.equals(read_rows(p).table)
    with mock.patch.object(arrow_jsonl, "BLOCK_BYTES", 100), mock.patch.object(arrow_jsonl, "SCAN_BYTES", 16):
        assert arrow_jsonl.read_canonical(p, str(p), IdAssigner()) is None  # the 300-byte line
        assert read_rows(p).table.equals(fast)


@budget(150)
@given(st.one_of(canonical_file(), data_file()), st.integers(1, 64))
def test_the_line_scan_in_pieces_answers_as_in_one(f, piece):
    import numpy as np

    _, body = f
    if not body:
        return
    a = np.frombuffer(body, dtype=np.uint8)
    last = not body.endswith(b"\n")
    whole = arrow_jsonl._lines_ok_piece(a, True, last)
    with mock.patch.object(arrow_jsonl, "SCAN_BYTES", piece):
        assert arrow_jsonl._lines_ok(a, True, last) == whole
    count("arrow-jsonl-pieces")
