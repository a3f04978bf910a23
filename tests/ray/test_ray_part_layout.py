"""Ray Data reads a stage's kept.parquet that is a folder of parts (issue 24) as it is."""

from __future__ import annotations

import polars as pl

from tests.conftest import invoke
from tests.core.test_part_layout import to_parts, write_rows
from thresher.io import parts
from thresher.stage_folder import DROPPED, KEPT


def test_ray_data_reads_a_folder_of_parts(ray_cluster, tmp_path):
    import ray

    data, out = tmp_path / "data.jsonl", tmp_path / "01-filter"
    write_rows(data)
    res = invoke("curate", "filter", data, "--out", out, "--min-chars", "12")
    assert res.exit_code == 0, res.output
    whole = {name: pl.read_parquet(out / name) for name in (KEPT, DROPPED)}
    to_parts(out)
    for name in (KEPT, DROPPED):
        p = out / name
        assert parts.is_dataset(p) and len(parts.files(p)) == 3
        ds = ray.data.read_parquet(str(p))
        assert ds.count() == whole[name].height
        assert sorted(r["id"] for r in ds.take_all()) == sorted(whole[name]["id"].to_list())
