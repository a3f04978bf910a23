"""Run directories (reuse, recompute, interrupted runs) and config validation."""

import dataclasses
import json
from dataclasses import dataclass
from typing import Literal

import polars as pl
import pytest

from thresher.config import from_dict, from_dict_partial, to_dict
from thresher.errors import ConfigError
from thresher.io import read_table, write_table
from thresher.schema import make_rows
from thresher.stage import StageFolder, dropped_frame


@dataclass(frozen=True)
class Cfg:
    threshold: float = 0.5
    mode: Literal["a", "b"] = "a"
    columns: tuple[str, ...] = ()
    limit: int | None = None

    def check(self) -> list[str]:
        return [] if 0 < self.threshold <= 1 else ["threshold: must be in (0, 1]"]


def _rows(n=4):
    return make_rows([{"messages": [{"role": "user", "content": f"q{i}"}], "category": "ab"[i % 2]}
                      for i in range(n)])


def _run(inp, out, cfg):
    stage = StageFolder("toy", out, inputs=[inp], config=cfg, quiet=True)
    if stage.done:
        return stage.result()
    df = read_table(inp)
    keep = df.filter(pl.int_range(pl.len()) % 2 == 0)
    drop = dropped_frame(df.filter(pl.int_range(pl.len()) % 2 == 1), "toy", "odd row")
    return stage.finish(keep, drop, stats={"note": cfg.threshold})


def test_stage_writes_outputs_and_is_reused(tmp_path):
    inp = write_table(_rows(), tmp_path / "in.parquet")
    r1 = _run(inp, tmp_path / "s", Cfg())
    assert not r1.reused
    assert {p.name for p in (tmp_path / "s").iterdir()} == {"kept.parquet", "dropped.parquet", "stats.json",
                                                            "manifest.json"}
    stats = json.loads((tmp_path / "s" / "stats.json").read_text())
    assert (stats["rows_in"], stats["rows_out"], stats["rows_dropped"]) == (4, 2, 2)
    assert stats["kept_by_category"] == {"a": 2} and stats["drop_reasons"] == {"odd row": 2}
    dropped = pl.read_parquet(tmp_path / "s" / "dropped.parquet")
    assert dropped["drop_stage"].to_list() == ["toy", "toy"]
    r2 = _run(inp, tmp_path / "s", Cfg())
    assert r2.reused and r2.stats["note"] == 0.5


def test_changed_config_or_input_recomputes(tmp_path):
    inp = write_table(_rows(), tmp_path / "in.parquet")
    _run(inp, tmp_path / "s", Cfg())
    assert not _run(inp, tmp_path / "s", Cfg(threshold=0.9)).reused
    assert _run(inp, tmp_path / "s", Cfg(threshold=0.9)).reused
    write_table(_rows(6), inp)
    r = _run(inp, tmp_path / "s", Cfg(threshold=0.9))
    assert not r.reused and r.stats["rows_in"] == 6


def test_interrupted_stage_is_not_reused(tmp_path):
    inp = write_table(_rows(), tmp_path / "in.parquet")
    _run(inp, tmp_path / "s", Cfg())
    stage = StageFolder("toy", tmp_path / "s", inputs=[inp], config=Cfg(threshold=0.7), quiet=True)
    assert not stage.done  # the recompute starts; the process "dies" here
    # the old result stays complete (it is replaced only by an atomic swap) ...
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["status"] == "done"
    assert StageFolder("toy", tmp_path / "s", inputs=[inp], config=Cfg(), quiet=True).done
    # ... and the interrupted config is not taken as finished
    assert not StageFolder("toy", tmp_path / "s", inputs=[inp], config=Cfg(threshold=0.7), quiet=True).done
    fresh = tmp_path / "fresh"
    assert not StageFolder("toy", fresh, inputs=[inp], config=Cfg(), quiet=True).done  # killed in its first run
    assert json.loads((fresh / "manifest.json").read_text())["status"] == "running"
    assert not StageFolder("toy", fresh, inputs=[inp], config=Cfg(), quiet=True).done


def test_from_dict_lists_every_problem():
    with pytest.raises(ConfigError) as e:
        from_dict(Cfg, {"treshold": 1, "mode": "c", "columns": "x", "limit": 1.5}, "stages[2].toy")
    msg = str(e.value)
    assert msg.startswith("4 problems: ")
    assert "stages[2].toy.treshold: unknown key (did you mean 'threshold'?)" in msg
    assert "stages[2].toy.mode: must be one of 'a' | 'b', got 'c'" in msg
    assert "stages[2].toy.columns: expected list of str, got 'x'" in msg
    assert "stages[2].toy.limit: expected int | null, got 1.5" in msg
    with pytest.raises(ConfigError, match=r"^threshold: must be in \(0, 1\]$"):
        from_dict(Cfg, {"threshold": 3})


def test_from_dict_builds_frozen_config():
    cfg = from_dict(Cfg, {"threshold": 1, "columns": ["a", "b"], "limit": None})
    assert cfg == Cfg(threshold=1.0, columns=("a", "b"))
    assert to_dict(cfg) == {"threshold": 1.0, "mode": "a", "columns": ["a", "b"], "limit": None}
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.threshold = 2  # type: ignore[misc]


def test_check_runs_with_unknown_keys_but_not_on_wrong_types():
    with pytest.raises(ConfigError) as e:
        from_dict(Cfg, {"threshold": 2, "nope": 1})
    assert e.value.problems == ["nope: unknown key", "threshold: must be in (0, 1]"]
    with pytest.raises(ConfigError) as e:
        from_dict(Cfg, {"threshold": "high"})
    assert e.value.problems == ["threshold: expected a number, got 'high'"]


def test_from_dict_partial_checks_the_rest_when_a_key_is_ill_typed():
    # the ill-typed key takes its default and gets no second problem from check();
    # check() still runs on the well-typed rest
    cfg, problems = from_dict_partial(Cfg, {"threshold": "high", "mode": "c", "limit": 1.5, "nope": 1}, "x")
    assert cfg == Cfg()
    assert problems == ["x.nope: unknown key", "x.threshold: expected a number, got 'high'",
                        "x.mode: must be one of 'a' | 'b', got 'c'", "x.limit: expected int | null, got 1.5"]
    cfg, problems = from_dict_partial(Cfg, {"threshold": 3, "limit": "many"})
    assert cfg == Cfg(threshold=3.0)
    assert problems == ["limit: expected int | null, got 'many'", "threshold: must be in (0, 1]"]
    assert from_dict_partial(Cfg, [1]) == (None, ["Cfg: expected a mapping, got [1]"])

