"""The per-row score cache: shards on disk, time-based flushes, merging, torn shards."""

from __future__ import annotations

from thresher.curate.score.base import ScoreResult, conversation_key
from thresher.curate.score.cache import MERGE_ABOVE, ScoreCache


def test_results_survive_reopening_and_identities_are_separate(tmp_path):
    c = ScoreCache(tmp_path, "reward|a", flush_every=2)
    c.add(["k1"], [ScoreResult(0.5)])
    assert not list(c.dir.glob("part-*.parquet"))  # buffered
    c.add(["k2"], [ScoreResult(None, "skipped: too long")])
    assert len(list(c.dir.glob("part-*.parquet"))) == 1
    again = ScoreCache(tmp_path, "reward|a")
    assert again.lookup(["k1", "k2", "k3"]) == {
        "k1": ScoreResult(0.5, None), "k2": ScoreResult(None, "skipped: too long")}
    assert (c.dir / "identity.txt").read_text().strip() == "reward|a"
    assert ScoreCache(tmp_path, "reward|b").lookup(["k1"]) == {}


def test_time_based_flush(tmp_path):
    c = ScoreCache(tmp_path, "x", flush_every=10_000, flush_seconds=0.0)
    c.add(["a"], [ScoreResult(1.0)])
    c.add(["b"], [ScoreResult(2.0)])
    assert len(list(c.dir.glob("part-*.parquet"))) == 2


def test_many_shards_merge_and_torn_shard_is_ignored(tmp_path):
    c = ScoreCache(tmp_path, "x", flush_every=1)
    for i in range(MERGE_ABOVE + 3):
        c.add([f"k{i}"], [ScoreResult(float(i))])
    (c.dir / "part-9-torn.parquet").write_bytes(b"PAR1 not really")
    merged = ScoreCache(tmp_path, "x")
    assert len(merged) == MERGE_ABOVE + 3
    assert merged.get(f"k{MERGE_ABOVE}") == ScoreResult(float(MERGE_ABOVE), None)
    assert len(list(c.dir.glob("part-*.parquet"))) == 1


def test_conversation_key_is_content_only():
    a = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    b = [dict(m, extra=1) for m in a]
    assert conversation_key(a) == conversation_key(b)
    assert conversation_key(a) != conversation_key(a[:1] + [{"role": "assistant", "content": "yo!"}])


def test_a_lookup_reads_only_the_keys_asked(tmp_path):
    c = ScoreCache(tmp_path, "x", flush_every=1000)
    c.add([f"k{i}" for i in range(5000)], [ScoreResult(float(i)) for i in range(5000)])
    c.flush()
    c.add(["k7"], [ScoreResult(70.0)])  # a newer result of a key: the latest wins
    c.flush()
    again = ScoreCache(tmp_path, "x")
    assert again.lookup(["k7", "k4999", "nope"]) == {"k7": ScoreResult(70.0), "k4999": ScoreResult(4999.0)}
    assert len(again) == 5000 and not hasattr(again, "_known")  # no in-memory copy of the cache
