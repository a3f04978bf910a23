"""Dedup streamed (issue 24): signatures a batch at a time, decisions from a projection, the rows
rewritten in a second pass; the result is the whole-table run's, part boundaries or not."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from thresher.config import from_dict
from thresher.curate.dedup.stage import Config, DedupStage, run
from thresher.executors.stream import MIN_BYTES_ENV, PART_ROWS_ENV
from thresher.io import parts
from thresher.stage_folder import PARTS_WORK, damage

from ._dedup_data import conv, paragraphs, write_jsonl

PART = 37
#: stats that differ between any two runs (timings, memory) or only say how it ran
VOLATILE = {"seconds", "streamed", "phase_seconds", "peak_rss_mb"}


@pytest.fixture
def stream(monkeypatch):
    """Stream every input, in parts of 37 rows."""
    monkeypatch.setenv(MIN_BYTES_ENV, "0")
    monkeypatch.setenv(PART_ROWS_ENV, str(PART))


def _words(rng: random.Random, vocab: list[str], n: int) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


def corpus(seed: int = 0) -> tuple[list[dict], dict[str, str]]:
    """~270 rows, shuffled: doc paragraphs and random-word rows, planted exact copies (case,
    punctuation, spacing), near copies (last word changed, a sentence added), copies of copies,
    rows with no response, a ``score`` (some null). Returns (rows, planted id -> original id)."""
    rng = random.Random(seed)
    vocab = [f"w{k}" for k in range(600)]
    rows = [conv(f"p{i}", f"Explain part {i} of the Python docs.", t, score=rng.random())
            for i, t in enumerate(paragraphs()[:100])]
    rows += [conv(f"r{i}", f"Random {i}", _words(rng, vocab, rng.randint(40, 90)), score=rng.random())
             for i in range(120)]
    truth: dict[str, str] = {}
    by_id = {r["id"]: r for r in rows}

    def plant(new: str, of: str, user: str, text: str, score: float | None) -> None:
        rows.append(conv(new, user, text, score=score))
        truth[new] = of

    for i in range(12):
        src = by_id[f"p{i}"]["messages"]
        plant(f"e{i}", f"p{i}", src[0]["content"].upper(), src[1]["content"].upper().replace(" ", "  "), rng.random())
        w = src[1]["content"].split()
        w[-1] = "elephant"
        plant(f"n{i}", f"p{i}", src[0]["content"], " ".join(w), rng.random())
    for i in range(12, 20):
        src = by_id[f"p{i}"]["messages"]
        plant(f"b{i}", f"p{i}", src[0]["content"], src[1]["content"] + " Hope this helps!", rng.random())
    for i in range(10):
        src = by_id[f"r{i}"]["messages"]
        plant(f"c{i}", f"r{i}", src[0]["content"] + "!", src[1]["content"], None if i % 3 == 0 else rng.random())
    for i in range(5):  # a copy of a copy
        plant(f"cc{i}", f"c{i}", f"random {i}", by_id[f"r{i}"]["messages"][1]["content"], rng.random())
    rows += [{"id": f"q{i}", "messages": [{"role": "user", "content": "no answer yet"}], "score": None}
             for i in range(4)]  # exact copies as conversations, empty as responses
    truth.update({f"q{i}": "q0" for i in range(1, 4)})
    rng.shuffle(rows)
    return rows, truth


def _assert_one_per_group(out: Path, truth: dict[str, str]) -> None:
    """Each planted group (an original and its copies) keeps one row; no other row is dropped."""
    root = {k: v for k, v in truth.items()}
    for k in root:
        while root[k] in truth:
            root[k] = truth[root[k]]
    kept = set(parts.read(out / "kept.parquet")["id"])
    dropped = set(parts.read(out / "dropped.parquet")["id"])
    groups: dict[str, set[str]] = {}
    for copy, orig in root.items():
        groups.setdefault(orig, {orig}).add(copy)
    assert dropped <= set(truth) | set(groups)
    for members in groups.values():
        assert len(members & kept) == 1, members


def _run(src: Path, out: Path, **options) -> dict:
    return run([src], out, from_dict(Config, options)).stats


def _frame(folder: Path, name: str) -> pl.DataFrame:
    df = parts.read(folder / name)
    return df.select(sorted(df.columns)).sort("id")


def _assert_same(streamed: Path, whole: Path) -> None:
    for name in ("kept.parquet", "dropped.parquet", "clusters.parquet"):
        a, b = _frame(streamed, name), _frame(whole, name)
        assert a.columns == b.columns, name
        assert a.equals(b, null_equal=True), name
    ka, kb = parts.read(streamed / "kept.parquet")["id"], parts.read(whole / "kept.parquet")["id"]
    assert ka.to_list() == kb.to_list(), "kept rows in input order"
    sa = json.loads((streamed / "stats.json").read_text())
    sb = json.loads((whole / "stats.json").read_text())
    assert {k: v for k, v in sa.items() if k not in VOLATILE} == {k: v for k, v in sb.items() if k not in VOLATILE}
    assert set(sa) - {"streamed"} == set(sb) - {"streamed"}
    assert set(sa["phase_seconds"]) == set(sb["phase_seconds"])


def _both(tmp_path: Path, monkeypatch, src: Path, name: str, **options) -> tuple[dict, dict]:
    monkeypatch.setenv(MIN_BYTES_ENV, "0")
    monkeypatch.setenv(PART_ROWS_ENV, str(PART))
    streamed = _run(src, tmp_path / f"{name}-s", **options)
    monkeypatch.setenv(MIN_BYTES_ENV, str(1 << 40))  # now read whole
    whole = _run(src, tmp_path / f"{name}-w", **options)
    assert "streamed" not in whole
    _assert_same(tmp_path / f"{name}-s", tmp_path / f"{name}-w")
    assert not (tmp_path / f"{name}-s" / "spill").exists() and not (tmp_path / f"{name}-s" / PARTS_WORK).exists()
    assert damage(tmp_path / f"{name}-s") is None
    return streamed, whole


@pytest.mark.parametrize("options", [
    {},
    {"keep_by": "score"},
    {"keep_by": "score", "verify": "exact"},
    {"keep_by": "score", "cluster": "star"},
    {"on": "response", "shingle": "char", "ngram": 7},
    {"memory": "64KB", "chunk_rows": 16, "keep_by": "score"},
], ids=["plain", "keep_by", "verify-exact", "star", "response-char", "spilled"])
def test_streamed_dedup_keeps_and_drops_what_the_whole_table_run_does(tmp_path, monkeypatch, options):
    rows, truth = corpus()
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    streamed, whole = _both(tmp_path, monkeypatch, src, "run", **options)
    n_parts = -(-len(rows) // PART)
    assert streamed["streamed"]["parts"] == n_parts > 5
    assert streamed["rows_in"] == len(rows)
    if options.get("on") != "response":
        _assert_one_per_group(tmp_path / "run-s", truth)
        assert streamed["exact_duplicates"] > 0 and streamed["near_duplicates"] > 0
    else:
        assert streamed["empty_text_rows"] == 4
    if options.get("memory"):
        assert streamed["spilled"] and whole["spilled"]


def test_against_a_reference_streams_with_the_same_result(tmp_path, monkeypatch):
    rows, _ = corpus(1)
    p = paragraphs()
    ref_rows = [conv(f"ref{i}", f"Explain part {i} of the Python docs.", p[i]) for i in range(30, 36)]
    ref_rows.append(conv("ref-near", "Explain part 40 of the Python docs.", p[40] + " Thanks."))
    ref = write_jsonl(tmp_path / "ref.jsonl", ref_rows)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    for verify in ("estimate", "exact"):
        streamed, _ = _both(tmp_path, monkeypatch, src, verify, against=str(ref), verify=verify)
        assert streamed["against_exact"] == 6 and streamed["against_near"] == 1 and streamed["reference_rows"] == 7


def _short_rows() -> list[dict]:
    rng = random.Random(5)
    subjects = ["France", "Spain", "Peru", "Kenya", "Norway", "Chile", "Japan", "Egypt", "Canada", "Ghana",
                "Poland", "Nepal", "Cuba", "Laos", "Mali", "Oman", "Fiji", "Iran", "Iraq", "Chad"]
    qs = [f"What is the {what} of {s}?" for s in subjects
          for what in ("capital", "population", "largest city", "currency")]
    rows = [conv(f"s{i}", q, "ok", score=rng.random()) for i, q in enumerate(qs)]
    for i in range(0, len(qs), 7):
        w = qs[i].split()
        k = max(range(len(w)), key=lambda j: len(w[j]))
        w[k] = w[k][0] + w[k][2] + w[k][1] + w[k][3:]  # one transposition
        rows.append(conv(f"t{i}", " ".join(w), "ok", score=rng.random()))
        rows.append(conv(f"h{i}", "Hi! Quick question: " + qs[i], "ok", score=rng.random()))
    rng.shuffle(rows)
    return rows


def test_edit_verification_streams_with_the_same_result(tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "in.jsonl", _short_rows())
    streamed, _ = _both(tmp_path, monkeypatch, src, "edit", on="prompt", strip_chatter=True, shingle="char",
                        ngram=3, verify="edit", threshold=0.9, keep_by="score")
    kept = set(parts.read(tmp_path / "edit-s" / "kept.parquet")["id"])
    for i in range(0, 80, 7):  # a question, its typo and its greeting: one survives at most
        assert len(kept & {f"s{i}", f"t{i}", f"h{i}"}) <= 1, i
    assert streamed["near_duplicates"] > 0 and streamed["verify"] == "edit"


def test_keep_by_picks_the_best_copy_across_parts(tmp_path, stream):
    p = paragraphs()
    rng = random.Random(2)
    vocab = [f"w{k}" for k in range(600)]
    rows = [conv("first", "q", p[50], score=0.1)]
    rows += [conv(f"x{i}", "q", _words(rng, vocab, 50), score=0.5) for i in range(3 * PART)]  # three parts
    rows += [conv("best", "q", p[50] + " Thanks.", score=0.9), conv("same", "Q", p[50].upper(), score=0.95),
             conv("worse", "q", p[50] + " ok", score=0.2)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    stats = _run(src, tmp_path / "s", keep_by="score")
    assert stats["streamed"]["parts"] == 4
    kept = set(parts.read(tmp_path / "s" / "kept.parquet")["id"])
    assert "same" in kept and not kept & {"first", "best", "worse"}
    d = parts.read(tmp_path / "s" / "dropped.parquet")
    reasons = dict(zip(d["id"], d["drop_reason"]))
    assert reasons["first"] == "exact duplicate of same"
    assert reasons["best"].startswith("near-duplicate of same (J=")


def test_a_keep_by_column_missing_from_the_first_part_is_an_error_up_front(tmp_path, stream):
    from thresher.errors import ThresherError

    rows, _ = corpus()
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    with pytest.raises(ThresherError, match=r"keep_by column 'reward' not found \(columns: id, messages"):
        _run(src, tmp_path / "s", keep_by="reward")
    bad = write_jsonl(tmp_path / "bad.jsonl", [{**r, "score": "high"} for r in rows])
    with pytest.raises(ThresherError, match=r"keep_by column 'score' is String, not a number"):
        _run(bad, tmp_path / "b", keep_by="score")


def test_semantic_mode_does_not_stream_and_ray_decides_only_what_it_can():
    assert DedupStage().streams(Config())
    assert not DedupStage().streams(Config(mode="semantic"))
    assert DedupStage().decides_on_ray(Config(keep_by="score"))
    for other in (Config(cluster="star"), Config(verify="exact"), Config(verify="edit"), Config(against="ref.jsonl"),
                  Config(mode="semantic")):
        assert not DedupStage().decides_on_ray(other)


def _dedup_proc(src: Path, out: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "THRESHER_PROGRESS": "0", MIN_BYTES_ENV: "0", PART_ROWS_ENV: str(PART)}
    env.pop("THRESHER_TEST_KILL_AT", None)
    if kill_at:
        env["THRESHER_TEST_KILL_AT"] = kill_at
    code = ("import sys, json; from pathlib import Path; from thresher.curate.dedup.stage import Config, run; "
            "r = run([Path(sys.argv[1])], Path(sys.argv[2]), Config(keep_by='score')); "
            "print(json.dumps(r.stats['streamed']))")
    return subprocess.run([sys.executable, "-c", code, str(src), str(out)], env=env, capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.parametrize(("point", "done"), [("part-0", 1), ("part-4", 5), ("kept", 8)])
def test_a_kill_mid_stream_and_a_rerun_keep_the_same_rows(point, done, tmp_path):
    rows, truth = corpus()
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    clean = _dedup_proc(src, tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr
    killed = _dedup_proc(src, tmp_path / "s", kill_at=point)
    assert killed.returncode == -9, killed.stderr
    again = _dedup_proc(src, tmp_path / "s")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["parts_reused"] == done
    _assert_same(tmp_path / "s", tmp_path / "clean")
    _assert_one_per_group(tmp_path / "s", truth)
    assert not (tmp_path / "s" / "spill").exists() and damage(tmp_path / "s") is None
