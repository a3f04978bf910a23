"""``verify: exact`` under Ray gives the local result (kept set, reasons, clusters)."""

from __future__ import annotations

import numpy as np

from tests.curate.test_dedup_exact import _near_threshold_rows
from thresher.config import from_dict
from thresher.curate.dedup.engine import deduplicate
from thresher.curate.dedup.stage import Config


def test_exact_verify_on_ray_matches_local(tmp_path, on_ray):
    from thresher.executors import ray_session

    df, _ = _near_threshold_rows()
    cfg = from_dict(Config, {"on": "prompt", "num_perm": 32, "bands": 32, "rows": 1, "verify": "exact"})
    remote = deduplicate(df, cfg, spill_dir=tmp_path / "r")
    assert remote.stats["executor"] == "ray"
    ray_session.use("local")
    local = deduplicate(df, cfg, spill_dir=tmp_path / "l")
    assert np.array_equal(local.keep, remote.keep) and local.reasons == remote.reasons
    assert local.clusters.equals(remote.clusters) and (~local.keep).sum() > 0
