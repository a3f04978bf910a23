"""Shared pieces of the fuzz suite: hostile inputs (hypothesis strategies) and the invariant.

The invariant for every command: exit 0, or exit != 0 with exactly one line ``Error: ...``
(the last line of the output), never a traceback or an "unexpected error", and no file outside
``--out`` created, changed or removed.

Budget: CI runs a fixed-seed budget (``derandomize=True``); ``THRESHER_FUZZ_SCALE=N`` (``make
fuzz``) runs N times as many random (not derandomized) cases.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SCALE = float(os.environ.get("THRESHER_FUZZ_SCALE", "1") or 1)
COUNTS: dict[str, int] = {}


def budget(n: int):
    """Hypothesis settings for ``n`` cases (times THRESHER_FUZZ_SCALE)."""
    return settings(max_examples=max(1, int(n * SCALE)), derandomize=SCALE == 1, deadline=None,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])


def count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


# -- values -----------------------------------------------------------------------------------

NASTY_TEXT = st.sampled_from([
    "", " ", "\n", "\ud800", "\udfff x", "\x00", "\u202e", "\ufeff", "é", "e\u0301", "<|im_end|>",
    "<|im_start|>assistant\n", "{{ x }}", "{% raise %}", "a" * 5000, "\r\n", "\t", "💥", "NaN", "null",
    "../../etc/passwd", "C:\\x", "%s%n", "'; DROP TABLE x; --", "\\", "\"", "[", "{", "0", "-1", "1e309",
])
TEXT = st.one_of(st.text(max_size=40), NASTY_TEXT)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                   st.floats(allow_nan=True, allow_infinity=True), TEXT)
JSON_VALUE = st.recursive(SCALAR, lambda c: st.one_of(st.lists(c, max_size=4),
                                                      st.dictionaries(TEXT, c, max_size=4)), max_leaves=12)
ROLE = st.one_of(st.sampled_from(["user", "assistant", "system", "tool"]), TEXT, JSON_VALUE)


@st.composite
def message(draw):
    m = {"role": draw(ROLE), "content": draw(st.one_of(TEXT, TEXT, JSON_VALUE))}
    if draw(st.booleans()):
        m.update(draw(st.dictionaries(st.sampled_from(["weight", "name", "tool_calls", "train", "x"]),
                                      JSON_VALUE, max_size=2)))
    return m


@st.composite
def good_row(draw, i: int = 0):
    """A plausible conversation row (most cases should pass validation)."""
    n = draw(st.integers(min_value=1, max_value=3))
    msgs = []
    for _ in range(n):
        msgs.append({"role": "user", "content": draw(st.text(min_size=1, max_size=30)) + " question?"})
        msgs.append({"role": "assistant", "content": draw(st.text(min_size=0, max_size=60))})
    row = {"messages": msgs}
    if draw(st.booleans()):
        row["id"] = draw(st.one_of(st.text(max_size=8), st.integers(0, 5)))
    if draw(st.booleans()):
        row["category"] = draw(st.sampled_from(["code", "math", "chat", None]))
    if draw(st.booleans()):
        row[draw(st.sampled_from(["score_a", "score_b", "parent_id", "source"]))] = draw(SCALAR)
    return row


@st.composite
def record(draw):
    """A record: plausible, another shape, partly broken, or any JSON value."""
    kind = draw(st.integers(0, 9))
    if kind <= 4:
        return draw(good_row())
    if kind == 5:
        return draw(st.fixed_dictionaries({}, optional={
            "instruction": TEXT, "input": TEXT, "output": TEXT, "prompt": TEXT, "completion": TEXT,
            "conversations": st.lists(st.fixed_dictionaries({"from": TEXT, "value": TEXT}), max_size=3)}))
    if kind in (6, 7):
        row = draw(good_row())
        row["messages"] = draw(st.lists(message(), max_size=4))
        if draw(st.booleans()):
            row["id"] = draw(JSON_VALUE)
        return row
    if kind == 8:
        return {"messages": draw(JSON_VALUE), "id": draw(JSON_VALUE)}
    return draw(JSON_VALUE)


ENCODINGS = st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"])


@st.composite
def data_file(draw):
    """(suffix, bytes) of an input file: JSONL, JSON, CSV or Parquet-named, possibly mangled."""
    suffix = draw(st.sampled_from([".jsonl", ".jsonl", ".json", ".csv", ".parquet", ".ndjson"]))
    recs = draw(st.lists(record(), min_size=0, max_size=6))
    enc = draw(ENCODINGS)
    if suffix == ".parquet":
        body = _parquet_bytes(recs) if draw(st.booleans()) else draw(st.binary(max_size=200))
    elif suffix == ".json":
        text = json.dumps(recs, ensure_ascii=draw(st.booleans()), allow_nan=True)
        body = _encode(text, enc)
    elif suffix == ".csv":
        lines = ["prompt,response,category"] + [
            ",".join(json.dumps(str(v))[1:-1] for v in (draw(TEXT), draw(TEXT), draw(TEXT))) for _ in recs]
        body = _encode("\n".join(lines), enc)
    else:
        body = _encode("".join(json.dumps(r, ensure_ascii=draw(st.booleans()), allow_nan=True) + "\n"
                               for r in recs), enc)
    mangle = draw(st.integers(0, 6))
    if mangle == 0 and body:
        body = body[: draw(st.integers(0, len(body)))]
    elif mangle == 1:
        body = body + draw(st.binary(max_size=20))
    elif mangle == 2:
        depth = draw(st.integers(1, 3000))
        body = body + (b'{"messages": ' + b"[" * depth + b"]" * depth + b"}\n")
    codec = draw(st.sampled_from(["", "", "", "", ".gz", ".bz2", ".xz", ".zst"]))
    if codec:  # compressed, sometimes damaged after compression
        body = _compress(codec, body)
        if draw(st.integers(0, 3)) == 0 and body:
            body = body[: draw(st.integers(0, len(body)))]
        suffix += codec
    return suffix, body


def _compress(codec: str, body: bytes) -> bytes:
    import bz2
    import gzip
    import lzma

    if codec == ".zst":
        import zstandard

        return zstandard.ZstdCompressor().compress(body)
    return {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}[codec](body)


def _encode(text: str, enc: str) -> bytes:
    return text.encode(enc, errors="surrogatepass" if enc.startswith("utf-8") else "replace")


def _parquet_bytes(recs) -> bytes:
    import io

    import polars as pl

    buf = io.BytesIO()
    try:
        pl.DataFrame([r for r in recs if isinstance(r, dict)] or [{"x": 1}], strict=False).write_parquet(buf)
    except Exception:  # noqa: BLE001 - an unrepresentable frame: garbage bytes instead
        return b"PAR1garbage"
    return buf.getvalue()


# -- the invariant ----------------------------------------------------------------------------

def snapshot(root: Path, skip: Path | None) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if skip is not None and (p == skip or skip in p.parents):
            continue
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.blake2b(p.read_bytes(), digest_size=8).hexdigest()
        elif p.is_dir():
            out[str(p.relative_to(root)) + "/"] = ""
    return out


def check(res, case: str, before: dict, after: dict) -> None:
    """The invariant (see the module docstring)."""
    out = res.output
    assert "Traceback" not in out, f"{case}: traceback\n{out[-3000:]}"
    if res.exit_code == 0:
        assert res.exception is None, f"{case}: exit 0 with {res.exception!r}"
    else:
        assert res.exception is None or isinstance(res.exception, SystemExit), \
            f"{case}: uncaught {type(res.exception).__name__}: {res.exception}"
        lines = [ln for ln in out.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("Error:")]
        assert len(errors) == 1 and lines and lines[-1] == errors[0], f"{case}: not one Error line:\n{out[-3000:]}"
        assert "unexpected error" not in errors[0], f"{case}: {errors[0]}"
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert not changed, f"{case}: files outside --out changed: {sorted(changed)[:5]}"


@contextlib.contextmanager
def workdir():
    d = Path(tempfile.mkdtemp(prefix="thresher-fuzz-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_case(cli, args_fn, files: dict[str, bytes], case: str):
    """Write ``files`` in a fresh folder, run ``args_fn(folder)`` and check the invariant."""
    from click.testing import CliRunner

    with workdir() as d:
        for name, body in files.items():
            (d / name).write_bytes(body)
        out = d / "out"
        args = [str(a) for a in args_fn(d)]
        before = snapshot(d, out)
        res = CliRunner().invoke(cli, args, catch_exceptions=True)
        check(res, f"{case} {args}", before, snapshot(d, out))
        count(case)
        return res
