"""The short-text settings (strip_chatter, char shingles, verify: edit) under Ray give the local
result, and mode: semantic runs on the driver with the local result."""

from __future__ import annotations

import random

import numpy as np

from tests.curate.test_dedup_short import QUESTIONS, SHORT, _rows, _typo
from thresher.curate.dedup.engine import deduplicate
from thresher.curate.dedup.stage import Config


def test_short_settings_on_ray_match_local(tmp_path, on_ray):
    from thresher.executors import ray_session

    rng = random.Random(0)
    df = _rows(QUESTIONS + [f"Hi! {q} Thanks!" for q in QUESTIONS[:5]] + [_typo(q, rng) for q in QUESTIONS[5:10]])
    cfg = Config(**SHORT)
    remote = deduplicate(df, cfg, spill_dir=tmp_path / "r")
    assert remote.stats["executor"] == "ray"
    ray_session.use("local")
    local = deduplicate(df, cfg, spill_dir=tmp_path / "l")
    assert np.array_equal(local.keep, remote.keep) and local.reasons == remote.reasons
    assert (~local.keep).sum() == 10
