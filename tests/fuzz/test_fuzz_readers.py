"""Fuzz the readers: any bytes under any supported name either read into valid rows or raise a
one-line ThresherError (never another exception), in both --on-bad-rows modes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz._fuzz import budget, count, data_file, workdir
from thresher.errors import ThresherError
from thresher.io import read_rows
from thresher.schema import table_problems


def _read(suffix: str, body: bytes, mode: str):
    with workdir() as d:
        p = d / f"in{suffix}"
        p.write_bytes(body)
        try:
            res = read_rows(p, on_bad_rows=mode)
        except ThresherError as e:
            msg = str(e)
            assert msg and "\n" not in msg and "Traceback" not in msg, repr(msg)
            return None
        assert table_problems(res.table).is_empty(), table_problems(res.table)
        for r in res.rejects:
            assert r["reason"] and "\n" not in r["reason"]
        return res


@budget(600)
@given(data_file(), st.sampled_from(["error", "skip"]))
def test_readers_never_crash(f, mode):
    suffix, body = f
    _read(suffix, body, mode)
    count("readers")


@budget(250)
@given(st.binary(max_size=300), st.sampled_from([".jsonl", ".json", ".csv", ".parquet"]))
def test_readers_on_random_bytes(body, suffix):
    _read(suffix, body, "skip")
    count("readers-bytes")


@budget(100)
@given(data_file())
def test_skip_mode_keeps_what_error_mode_accepts(f):
    """A file that reads without error gives the same rows in skip mode, and no rejects."""
    suffix, body = f
    ok = _read(suffix, body, "error")
    if ok is not None:
        skipped = _read(suffix, body, "skip")
        assert skipped is not None and skipped.table.equals(ok.table) and not skipped.rejects
    count("readers-modes")
