"""The dedup stage end to end on real text with planted duplicates."""

from __future__ import annotations

import json

import polars as pl
import pytest

from thresher.config import from_dict
from thresher.curate.dedup.stage import Config, run
from thresher.errors import ConfigError, ThresherError

from ._dedup_data import conv, paragraphs, planted_rows, write_jsonl


def _run(tmp_path, rows, name="out", **options):
    src = write_jsonl(tmp_path / f"{name}.jsonl", rows)
    return run([src], tmp_path / name, from_dict(Config, options))


def _reasons(out):
    d = pl.read_parquet(out / "dropped.parquet")
    return dict(zip(d["id"], d["drop_reason"]))


def test_planted_duplicates_found_and_distinct_rows_kept(tmp_path):
    rows, truth = planted_rows()
    res = _run(tmp_path, rows)
    kept = set(pl.read_parquet(res.kept_path)["id"])
    reasons = _reasons(res.out)
    assert set(reasons) == set(truth), "exactly the planted copies are dropped"
    assert kept == {r["id"] for r in rows} - set(truth)
    for dup, orig in truth.items():
        if dup.startswith("e"):
            assert reasons[dup] == f"exact duplicate of {orig}"
        else:
            assert reasons[dup].startswith(f"near-duplicate of {orig} (J=0.")
    d = pl.read_parquet(res.dropped_path)
    assert set(d["drop_stage"]) == {"dedup"}
    assert dict(zip(d["id"], d["duplicate_of"])) == truth
    s = json.loads(res.stats_path.read_text())
    assert (s["exact_duplicates"], s["near_duplicates"], s["rows_out"]) == (5, 10, 60)
    assert s["drop_reasons"] == {"exact duplicate": 5, "near-duplicate": 10}
    assert (s["bands"], s["rows"]) == (9, 13)


def test_clusters_parquet_lists_members_kept_flag_and_jaccard(tmp_path):
    rows, truth = planted_rows()
    res = _run(tmp_path, rows)
    cl = pl.read_parquet(res.out / "clusters.parquet")
    assert cl.columns == ["cluster", "id", "kept", "jaccard", "match", "kept_id"]
    assert cl.height == 30 and cl["cluster"].n_unique() == 15
    per = cl.group_by("cluster").agg(pl.col("kept").sum(), pl.col("id").sort())
    assert (per["kept"] == 1).all()
    assert sorted(per["id"].to_list()) == sorted(sorted([d, o]) for d, o in truth.items())
    kept = cl.filter("kept")
    assert (kept["id"] == kept["kept_id"]).all() and (kept["jaccard"] == 1.0).all()
    near = cl.filter(pl.col("match") == "near")
    assert near.height == 10 and ((near["jaccard"] >= 0.8) & (near["jaccard"] < 1)).all()


def test_keep_by_picks_highest_score_and_ties_go_to_first_seen(tmp_path):
    p = paragraphs()
    rows = [
        conv("a", "q", p[0], score=0.1), conv("b", "q", p[0] + " Thanks.", score=0.9),
        conv("c", "q", p[0] + " Thanks!!", score=0.5),
        conv("d", "q", p[1], score=None), conv("e", "q", p[1] + " ok", score=0.2),
        conv("f", "q", p[2], score=0.7), conv("g", "q", p[2].upper(), score=0.7),
    ]
    res = _run(tmp_path, rows, keep_by="score")
    kept = set(pl.read_parquet(res.kept_path)["id"])
    assert kept == {"b", "e", "f"}
    reasons = _reasons(res.out)
    assert reasons["a"].startswith("near-duplicate of b (J=")
    assert reasons["c"] == "exact duplicate of b"      # same text as b once normalised
    assert reasons["d"].startswith("near-duplicate of e")  # null score loses
    assert reasons["g"] == "exact duplicate of f"      # tie: first seen survives
    # without keep_by the first seen survives
    res2 = _run(tmp_path, rows, name="plain")
    assert set(pl.read_parquet(res2.kept_path)["id"]) == {"a", "d", "f"}


def test_against_drops_matches_and_leaves_reference_untouched(tmp_path):
    p = paragraphs()
    ref_rows = [conv(f"r{i}", "q", p[i]) for i in range(5)] + [conv("r5", "q", p[5]), conv("r6", "q", p[5])]
    ref = write_jsonl(tmp_path / "ref.jsonl", ref_rows)
    before = ref.read_bytes()
    rows = [conv("x0", "q", p[0]), conv("x1", "q", p[1] + " Hope this helps!"),
            conv("x2", "q", p[20]), conv("x3", "q", p[21]), conv("x4", "q", p[21] + " yes")]
    res = _run(tmp_path, rows, against=str(ref))
    assert ref.read_bytes() == before
    kept = pl.read_parquet(res.kept_path)
    assert set(kept["id"]) == {"x2", "x3"}
    assert not set(kept["id"]) & {r["id"] for r in ref_rows}
    reasons = _reasons(res.out)
    assert reasons["x0"] == "exact duplicate of r0 in ref.jsonl"
    assert reasons["x1"].startswith("near-duplicate of r1 in ref.jsonl (J=")
    assert reasons["x4"].startswith("near-duplicate of x3 (J=")
    s = res.stats
    assert (s["against_exact"], s["against_near"], s["near_duplicates"], s["reference_rows"]) == (1, 1, 1, 7)


def test_on_prompt_and_response_compare_different_text(tmp_path):
    p = paragraphs()
    rows = [conv("a", p[30], p[40]), conv("b", p[30], p[41]), conv("c", p[31], p[40])]
    by_prompt = _run(tmp_path, rows, name="prompt", on="prompt")
    assert set(pl.read_parquet(by_prompt.kept_path)["id"]) == {"a", "c"}
    by_response = _run(tmp_path, rows, name="response", on="response")
    assert set(pl.read_parquet(by_response.kept_path)["id"]) == {"a", "b"}
    whole = _run(tmp_path, rows, name="conversation")
    assert set(pl.read_parquet(whole.kept_path)["id"]) == {"a", "b", "c"}


def test_rows_with_empty_text_are_never_duplicates(tmp_path):
    rows = [{"id": f"q{i}", "messages": [{"role": "user", "content": "same question"}]} for i in range(3)]
    res = _run(tmp_path, rows, on="response")
    assert res.stats["rows_out"] == 3 and res.stats["empty_text_rows"] == 3


def test_spilling_to_disk_gives_the_same_result(tmp_path):
    rows, _ = planted_rows(120)
    mem = _run(tmp_path, rows, name="mem")
    disk = _run(tmp_path, rows, name="disk", memory="64KB", chunk_rows=16)
    assert disk.stats["spilled"] and not mem.stats["spilled"]
    assert pl.read_parquet(disk.kept_path)["id"].to_list() == pl.read_parquet(mem.kept_path)["id"].to_list()
    assert _reasons(disk.out) == _reasons(mem.out)
    assert not (disk.out / "spill").exists()


def test_sha1_mode_and_char_shingles_find_the_planted_copies(tmp_path):
    rows, truth = planted_rows(30)
    for name, opts in {"sha1": {"hash": "sha1"}, "char": {"shingle": "char", "ngram": 7}}.items():
        res = _run(tmp_path, rows, name=name, **opts)
        assert set(_reasons(res.out)) == set(truth), name


def test_second_run_reuses_the_result(tmp_path):
    rows, _ = planted_rows(20)
    first = _run(tmp_path, rows)
    again = _run(tmp_path, rows)
    assert again.reused and not first.reused
    assert _run(tmp_path, rows, memory="1GB").reused   # resources do not change the result


@pytest.mark.parametrize("options,message", [
    ({"threshold": 0}, "threshold: must be in (0, 1]"),
    ({"threshold": 1.5}, "threshold: must be in (0, 1]"),
    ({"num_perm": 1}, "num_perm: must be >= 2"),
    ({"bands": 4}, "bands, rows: give both or neither"),
    ({"bands": 20, "rows": 10}, "exceeds num_perm 128"),
    ({"memory": "lots"}, "memory: not a size"),
    ({"thresold": 0.5}, "thresold: unknown key (did you mean 'threshold'?)"),
])
def test_bad_config_is_rejected_up_front(options, message):
    with pytest.raises(ConfigError) as e:
        from_dict(Config, options)
    assert message in str(e.value)


def test_all_config_problems_are_listed_together():
    with pytest.raises(ConfigError) as e:
        from_dict(Config, {"threshold": 2, "num_perm": 0})
    assert "threshold" in str(e.value) and "num_perm" in str(e.value)


def test_missing_keep_by_column_is_a_clear_error(tmp_path):
    rows, _ = planted_rows(15)
    with pytest.raises(ThresherError, match=r"keep_by column 'reward' not found \(columns: id, messages"):
        _run(tmp_path, rows, keep_by="reward")


def _chain(words: list[str]) -> list[str]:
    """A -> B -> C -> D, each step rewrites 10 different words (J ~ 0.87 per step, A-D ~ 0.70)."""
    out = [list(words)]
    for start in (0, 95, 190):
        w = list(out[-1])
        w[start:start + 10] = [f"new{start}x{k}" for k in range(10)]
        out.append(w)
    return [" ".join(w) for w in out]


def test_star_clusters_only_drop_direct_near_duplicates(tmp_path):
    words = " ".join(paragraphs()[40:48]).split()[:200]
    assert len(words) == 200
    rows = [conv(x, "q", t) for x, t in zip("ABCD", _chain(words))]
    comp = _run(tmp_path, rows, name="comp", num_perm=512)
    d = pl.read_parquet(comp.dropped_path)
    assert set(pl.read_parquet(comp.kept_path)["id"]) == {"A"}
    assert d.filter(pl.col("id") == "D")["duplicate_jaccard"][0] < 0.8    # chained, far from A
    star = _run(tmp_path, rows, name="star", num_perm=512, cluster="star")
    kept = set(pl.read_parquet(star.kept_path)["id"])
    d = pl.read_parquet(star.dropped_path)
    assert "A" in kept and "B" not in kept and len(kept) >= 2
    assert (d["duplicate_jaccard"] >= 0.8).all()
    assert set(d["duplicate_of"]) <= kept
