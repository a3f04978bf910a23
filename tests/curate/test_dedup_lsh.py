"""LSH parameters, candidate pairs, verification, components and spill storage."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from datasketch.lsh import _optimal_param

from thresher.curate.dedup.lsh import (
    KEY_SCHEMA,
    band_key_frame,
    candidate_pairs,
    components,
    optimal_params,
    verify,
)
from thresher.curate.dedup.store import BandKeyStore, SignatureStore, parse_size


@pytest.mark.parametrize("threshold,num_perm", [(0.8, 128), (0.5, 128), (0.9, 64), (0.7, 256)])
def test_optimal_params_are_datasketch_params(threshold, num_perm):
    assert optimal_params(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)


def test_optimal_params_weights():
    assert optimal_params(0.8, 128, (0.2, 0.8)) == _optimal_param(0.8, 128, 0.2, 0.8)


def _keys(rows):
    return pl.DataFrame(rows, schema=KEY_SCHEMA, orient="row").lazy()


def test_candidate_pairs_all_pairs_in_small_buckets():
    keys = _keys([(0, 7, 1), (0, 7, 4), (0, 7, 2), (1, 9, 4), (1, 9, 5), (1, 3, 6), (0, 8, 5)])
    got = candidate_pairs(keys).rows()
    assert got == [(1, 2), (1, 4), (2, 4), (4, 5)]


def test_candidate_pairs_large_bucket_is_connected_without_all_pairs():
    members = list(range(10, 110))
    keys = _keys([(0, 1, i) for i in members])
    pairs = candidate_pairs(keys, max_bucket=8)
    assert pairs.height < 300  # not the 4950 of all pairs
    root = components(200, pairs["a"].to_numpy(), pairs["b"].to_numpy())
    assert set(root[members]) == {10}
    assert {(10, 50), (50, 109), (50, 51)} <= set(pairs.rows())


def test_band_keys_equal_iff_band_values_equal():
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 2**32, size=(3, 12), dtype=np.uint64).astype(np.uint32)
    sig[1, 4:8] = sig[0, 4:8]      # same band 1 (rows 4)
    sig[2, :4] = sig[0, :4]
    sig[2, 0] ^= 1                 # band 0 differs by one bit
    f = band_key_frame(sig, bands=3, rows=4, start=10)
    assert f.schema == pl.Schema(KEY_SCHEMA)
    k = {(b, i): key for b, key, i in f.iter_rows()}
    assert k[(1, 10)] == k[(1, 11)]
    assert k[(0, 10)] != k[(0, 12)]
    assert k[(0, 10)] != k[(1, 10)] or sig[0, :4].tolist() != sig[0, 4:8].tolist()


def test_verify_keeps_pairs_at_or_above_threshold():
    sig = np.zeros((3, 10), dtype=np.uint32)
    sig[1, :2] = 5    # J(0,1) = 0.8
    sig[2, :3] = 5    # J(0,2) = 0.7
    pairs = pl.DataFrame({"a": [0, 0], "b": [1, 2]}, schema={"a": pl.UInt32, "b": pl.UInt32})
    got = verify(sig, pairs, 0.8)
    assert got.select("a", "b").rows() == [(0, 1)]
    assert got["j"][0] == pytest.approx(0.8)


def test_components_union_find():
    root = components(7, np.array([5, 1, 3]), np.array([6, 3, 6]))
    assert root.tolist() == [0, 1, 2, 1, 4, 1, 1]


def test_parse_size():
    assert parse_size("512MB") == 512 << 20
    assert parse_size("4g") == 4 << 30
    assert parse_size("1.5GiB") == int(1.5 * (1 << 30))
    assert parse_size("1000") == 1000
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_stores_spill_over_budget(tmp_path):
    s = SignatureStore(1000, 128, budget=100_000, spill_dir=tmp_path)
    assert s.spilled and isinstance(s.array, np.memmap) and (tmp_path / "signatures.npy").exists()
    s.array[:] = 3
    s.close()
    assert not SignatureStore(10, 128, budget=100_000, spill_dir=tmp_path / "x").spilled

    keys = BandKeyStore(budget=8_000, spill_dir=tmp_path / "k")
    sig = np.arange(200 * 8, dtype=np.uint32).reshape(200, 8)
    frames = [band_key_frame(sig[i:i + 50], 2, 4, start=i) for i in range(0, 200, 50)]
    for f in frames:
        keys.add(f)
    assert keys.spilled and len(keys.files) == 4
    assert keys.lazy().collect().sort("idx", "band").equals(pl.concat(frames).sort("idx", "band"))
    keys.cleanup()
    assert not list((tmp_path / "k").iterdir())
