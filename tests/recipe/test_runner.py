"""The recipe runner against the stage contract (fake stages): folders, reuse, reruns after
a config change, continuing an interrupted run, run-directory contents."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml
from click.testing import CliRunner

from tests.recipe.conftest import fake_recipe
from thresher.cli.main import cli

FOLDERS = ["00-inputs", "01-generate", "02-score", "03-filter", "04-dedup", "05-train", "06-evaluate", "07-report"]


def _run(recipe, out, *extra):
    res = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return json.loads((out / "summary.json").read_text())


def _status(summary):
    return {r["folder"]: r["status"] for r in summary["stages"]}


@pytest.fixture
def fake_run(fake_stages, write_recipe, tmp_path):
    recipe = write_recipe(fake_recipe())
    out = tmp_path / "run"
    summary = _run(recipe, out)
    return recipe, out, summary, fake_stages


def test_run_writes_every_stage_folder_and_run_files(fake_run):
    _, out, summary, calls = fake_run
    assert [r["folder"] for r in summary["stages"]] == FOLDERS
    assert set(_status(summary).values()) == {"ran"}
    for f in FOLDERS:
        assert (out / f / "kept.parquet").exists() and (out / f / "manifest.json").exists()
    assert calls == {"generate": 4, "score": 1, "filter": 1, "dedup": 1, "train": 2}  # evaluate: 3 answers, 1 train
    resolved = yaml.safe_load((out / "recipe.yaml").read_text())
    assert resolved["stages"][0]["generate"]["temperature"] == 0.7  # defaults resolved
    versions = json.loads((out / "versions.json").read_text())
    assert {"python", "thresher", "polars", "torch", "transformers"} <= set(versions)
    assert summary["complete"] and summary["dataset"].endswith("04-dedup/kept.parquet")
    assert summary["adapter"].endswith("05-train/adapter")
    assert set(summary["eval"]["means"]) == {"base", "curated", "random"}
    assert summary["eval"]["verdict"].startswith("On 'all' over 4 held-out prompts, the curated student ")
    assert (out / "summary.md").read_text().startswith("# Run of recipe fake")
    # each stage is fed by the previous stage's kept rows
    gen = pl.read_parquet(out / "01-generate/kept.parquet")
    inputs = pl.read_parquet(out / "00-inputs/kept.parquet")
    assert gen.height == 3 * inputs.height and set(gen["parent_id"]) == set(inputs["id"])
    held = pl.read_parquet(out / "00-inputs/heldout.parquet")
    assert held.height == 4 and not set(held["id"]) & set(inputs["id"])


def test_rerun_reuses_everything(fake_run):
    recipe, out, _, calls = fake_run
    before = dict(calls)
    summary = _run(recipe, out)
    assert set(_status(summary).values()) == {"reused"}
    assert calls == before


def test_changed_stage_reruns_it_and_the_stages_after_only(fake_run):
    recipe, out, _, calls = fake_run
    summary = _run(recipe, out, "--set", "filter.min_len=16")
    st = _status(summary)
    assert [st[f] for f in FOLDERS] == ["reused", "reused", "reused", "ran", "ran", "ran", "ran", "ran"]
    # the recipe's generate is reused; the two retrained students answer again, the untrained one does not
    assert calls["generate"] == 4 + 2
    # a later stage's change leaves the earlier ones alone
    summary = _run(recipe, out, "--set", "filter.min_len=16", "--set", "train.max_steps=5")
    st = _status(summary)
    assert [st[f] for f in FOLDERS] == ["reused"] * 5 + ["ran"] * 3


def test_interrupted_run_continues_where_it_stopped(fake_stages, write_recipe, tmp_path, monkeypatch):
    from tests.recipe.fakes import train

    real = train.run
    state = {"n": 0}

    def dies_once(*a, **k):
        state["n"] += 1
        if state["n"] == 1:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(train, "run", dies_once)
    recipe = write_recipe(fake_recipe())
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(out)])
    assert res.exit_code == 1
    assert "interrupted; rerun the same command to continue" in res.output
    assert not (out / "05-train/kept.parquet").exists()
    summary = _run(recipe, out)
    st = _status(summary)
    assert [st[f] for f in FOLDERS[:5]] == ["reused"] * 5 and st["05-train"] == "ran"
    assert fake_stages["generate"] == 1 + 3


def test_default_out_dir_and_unknown_recipe(fake_stages, write_recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["run", "nope.yaml"])
    assert res.exit_code == 1 and res.output == "Error: nope.yaml: recipe file not found\n"
    recipe = write_recipe(fake_recipe(stages=[{"generate": {"n": 1}}]))
    res = CliRunner().invoke(cli, ["run", str(recipe)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "runs/fake/01-generate/kept.parquet").exists()
