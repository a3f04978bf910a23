"""CompactIds (the streamed read's id set) answers exactly as IdAssigner (the whole-table read's)."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

import thresher.io.idset as idset
from thresher.io.idset import CompactIds
from thresher.schema import IdAssigner

ids_ = st.sampled_from(["a", "b", "c", "7", "x-1", "0f3c", None, "", None])
texts = st.sampled_from(["hi", "hello", "hi there", "hi"])
step = st.one_of(
    st.tuples(st.just("row"), ids_, texts, st.sampled_from(["f1", "f2"])),
    st.tuples(st.just("all"), st.lists(st.sampled_from(["a", "b", "k", "m", "n", "q"]), max_size=4), st.just(""),
              st.sampled_from(["f1", "f2"])),
    st.tuples(st.just("trial"), st.lists(st.tuples(ids_, texts), max_size=4), st.booleans(), st.just("f1")),
    st.tuples(st.just("settle"), st.none(), st.none(), st.just("f1")),  # a streamed read's batch ends
)


def _play(ids, steps):
    out, n = [], 0
    for kind, a, b, file in steps:
        ids.file = file
        if kind == "row":
            n += 1
            out.append(ids.assign(a, [{"role": "user", "content": b}], str(n) if n % 2 else f"row {n}"))
        elif kind == "settle":
            if isinstance(ids, CompactIds):
                ids.settle()
        elif kind == "all":
            out.append(ids.take_all(pl.Series("id", a, dtype=pl.String), file, prefix="", start=n + 1))
            n += len(a)
        else:
            trial = ids.overlay()
            got = [trial.assign(g, [{"role": "user", "content": t}], f"line {n + i}") for i, (g, t) in enumerate(a)]
            out.append(got)
            if b:
                ids.commit(trial)
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=25))
def test_the_same_answers_as_the_whole_table_assigner(steps):
    old = idset.FLUSH, idset.SPILL
    idset.FLUSH, idset.SPILL = 3, 6  # levels, merges and levels on disk on small inputs
    try:
        assert _play(CompactIds(), steps) == _play(IdAssigner(), steps)
    finally:
        idset.FLUSH, idset.SPILL = old


def test_a_repeat_names_the_first_place_after_levels_merged(monkeypatch):
    monkeypatch.setattr(idset, "FLUSH", 10)
    ids = CompactIds()
    ids.file = "a.jsonl"
    for i in range(200):
        assert ids.assign(f"r{i}", [], str(i + 1)) == (f"r{i}", None)
    assert len(ids._levels) <= 6  # 200 ids in levels of 10, merged by size
    assert ids.assign("r5", [], "201") == ("r5", "duplicate id 'r5' (first seen at line 6)")
    ids.file = "b.parquet"
    assert ids.assign("r7", [], "row 3") == ("r7", "duplicate id 'r7' (first seen at a.jsonl:8)")


def test_about_thirty_bytes_a_row():
    ids = CompactIds()
    ids.file = "x"
    for i in range(250_000):
        ids.assign(None, [{"role": "user", "content": f"q{i}"}], str(i + 1))
    ids._flush()
    assert len(ids) == 250_000 and ids.nbytes() / 250_000 <= 32


def test_merging_two_levels_keeps_every_key_sorted_with_its_place():
    import numpy as np

    from thresher.io.idset import _Level, _merge, digest

    keys = np.array([digest(f"id{i}") for i in range(500)], dtype="S16")
    places = np.arange(500, dtype=np.int64)
    merged = _merge(_Level(keys[:180], places[:180]), _Level(keys[180:], places[180:]))
    whole = _Level(keys, places)
    assert np.array_equal(merged.keys, whole.keys) and np.array_equal(merged.places, whole.places)


def test_levels_on_disk_answer_as_in_memory_and_leave_no_folder(monkeypatch):
    import gc
    import os

    monkeypatch.setattr(idset, "FLUSH", 1000)
    monkeypatch.setattr(idset, "SPILL", 4000)
    ids = CompactIds()
    ids.file = "a.jsonl"
    for i in range(30_000):
        assert ids.assign(f"r{i}", [], str(i + 1)) == (f"r{i}", None)
    assert len(ids._disk) >= 20_000 and len(ids) == 30_000
    folder = ids._disk._folder
    assert os.path.isdir(folder)
    for i in (0, 3999, 12_345, 29_999):
        assert ids.assign(f"r{i}", [], "x")[1] == f"duplicate id 'r{i}' (first seen at line {i + 1})"
    assert ids.take_all(pl.Series("id", ["new1", "r17"]), "b.jsonl") is False
    assert ids.take_all(pl.Series("id", ["new1", "new2"]), "b.jsonl") is True
    del ids
    gc.collect()
    assert not os.path.exists(folder)


def test_a_full_bloom_filter_is_followed_by_one_twice_its_size(monkeypatch):
    import numpy as np

    import thresher.io.idspill as idspill
    from thresher.io.idset import digest
    from thresher.io.idspill import DiskLevels

    monkeypatch.setattr(idspill, "FIRST_CAPACITY", 4000)
    disk = DiskLevels()
    keys = np.sort(np.array([digest(f"k{i}") for i in range(50_000)], dtype="S16"))
    for part in np.array_split(keys, 5):  # 10k keys a level: filters of 4k, 8k, 16k, 32k
        disk.add(np.sort(part), np.arange(len(part), dtype=np.int64))
    assert [b.capacity for b in disk._blooms] == [4000, 8000, 16000, 32000] and disk._filled == 50_000 - 28_000
    assert disk.hits(keys).all()
    absent = np.array([digest(f"z{i}") for i in range(20_000)], dtype="S16")
    assert not disk.hits(absent).any()
    assert sum(b.maybe(absent).mean() for b in disk._blooms) < 0.04
    assert all(disk.find(k) is not None for k in keys[::997].tolist()) and disk.find(absent[0].tobytes()) is None
