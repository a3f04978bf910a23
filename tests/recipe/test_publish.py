"""`thresher export` (a folder datasets.load_dataset reads with its card and splits) and
`thresher push` against a local stand-in for the hub API and offline; never the network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from click.testing import CliRunner

from tests.recipe.conftest import fake_recipe
from thresher.cli.main import cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One fake-stage recipe run for the whole module (the fake stages patched in meanwhile)."""
    from tests.recipe import fakes
    from tests.recipe.conftest import FAKES
    from thresher import registry

    tmp = tmp_path_factory.mktemp("fake-run")
    recipe = tmp / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(fake_recipe(), sort_keys=False))
    out = tmp / "run"
    with pytest.MonkeyPatch.context() as mp:
        for name in FAKES:
            mp.setitem(registry.OVERRIDES, name, f"tests.recipe.fakes.{name}")
        fakes.CALLS.clear()
        res = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_export_loads_with_datasets_with_both_splits_and_the_card(run_dir, tmp_path):
    import datasets

    out = tmp_path / "hub"
    res = CliRunner().invoke(cli, ["export", str(run_dir), "--to", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((run_dir / "summary.json").read_text())
    curated = pl.read_parquet(summary["dataset"])
    heldout = pl.read_parquet(next(run_dir.glob("*/heldout.parquet")))
    assert res.output == f"exported train: {curated.height} rows, test: {heldout.height} rows with the dataset card to {out}\n"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        ".thresher-export.json", "README.md", "data/test-00000-of-00001.parquet",
        "data/train-00000-of-00001.parquet", "report.html"]
    assert "<html" in (out / "report.html").read_text()  # the card says the plots are beside it
    card = (out / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train-*.parquet"}, {"split": "test", "path": "data/test-*.parquet"}]}]
    assert "# Dataset card: fake" in card and "How to reproduce" in card

    ds = datasets.load_dataset(str(out))
    assert set(ds) == {"train", "test"}
    assert ds["train"].num_rows == curated.height and ds["test"].num_rows == heldout.height
    assert sorted(ds["train"]["id"]) == sorted(curated["id"].to_list())
    assert sorted(ds["test"]["id"]) == sorted(heldout["id"].to_list())
    assert ds["train"][0]["messages"][0].keys() >= {"role", "content"}
    from huggingface_hub import DatasetCard

    assert DatasetCard.load(out / "README.md").data.configs == meta["configs"]


def test_export_of_a_stage_folder_and_errors(run_dir, tmp_path):
    import datasets

    stage = next(run_dir.glob("*-dedup"))
    out = tmp_path / "stage-export"
    assert CliRunner().invoke(cli, ["export", str(stage), "--to", str(out)]).exit_code == 0
    ds = datasets.load_dataset(str(out))
    assert set(ds) == {"train"} and ds["train"].num_rows == pl.read_parquet(stage / "kept.parquet").height
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x.txt").write_text("mine")
    res = CliRunner().invoke(cli, ["export", str(run_dir), "--to", str(taken)])
    assert res.exit_code == 1
    assert res.output == (f"Error: {taken}: is not empty and was not written by thresher export (it holds "
                          "x.txt); choose another --to, or pass --force to add the export to it (nothing "
                          "else in it is changed)\n")
    res = CliRunner().invoke(cli, ["export", str(tmp_path / "nope"), "--to", str(tmp_path / "o")])
    assert res.output == f"Error: {tmp_path / 'nope'}: run folder not found\n"


def test_push_offline_is_one_line(run_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = CliRunner().invoke(cli, ["push", str(run_dir), "me/fake-sft", "--private"])
    assert res.exit_code == 1
    assert res.output == "Error: push: offline (HF_HUB_OFFLINE is set); cannot upload to the Hugging Face hub\n"
    res = CliRunner().invoke(cli, ["push", str(run_dir), "not-a-repo"])
    assert res.output == "Error: push: REPO_ID must be 'namespace/name', got 'not-a-repo'\n"


class LocalHub:
    """Stand-in for huggingface_hub.HfApi: repos are folders under ``root`` (no network)."""

    def __init__(self, root: Path):
        self.root = root
        self.created: list[tuple[str, str, bool]] = []

    def create_repo(self, repo_id, *, repo_type, private, exist_ok):
        self.created.append((repo_id, repo_type, private))

    def upload_folder(self, *, folder_path, repo_id, repo_type, commit_message):
        shutil.copytree(folder_path, self.root / repo_type / repo_id, dirs_exist_ok=True)


def test_push_uploads_the_export_layout(run_dir, tmp_path):
    import datasets

    from thresher.publish import push_run

    hub = LocalHub(tmp_path / "hub")
    res = push_run(run_dir, "me/fake-sft", private=True, api=hub)
    assert res == {"dataset": "https://huggingface.co/datasets/me/fake-sft"}
    assert hub.created == [("me/fake-sft", "dataset", True)]
    ds = datasets.load_dataset(str(hub.root / "dataset" / "me" / "fake-sft"))
    assert set(ds) == {"train", "test"}


def test_push_with_the_adapter_links_the_dataset(run_dir, tmp_path):
    from thresher.publish import push_run

    hub = LocalHub(tmp_path / "hub")
    res = push_run(run_dir, "me/fake-sft", adapter_repo="me/fake-lora", api=hub)
    assert res == {"dataset": "https://huggingface.co/datasets/me/fake-sft",
                   "adapter": "https://huggingface.co/me/fake-lora"}
    assert hub.created == [("me/fake-sft", "dataset", False), ("me/fake-lora", "model", False)]
    card = (hub.root / "model" / "me" / "fake-lora" / "README.md").read_text()
    assert "datasets:\n- me/fake-sft\n" in card
    assert "[run card](https://huggingface.co/datasets/me/fake-sft)" in card
    assert "| eval verdict | On 'all' over 4 held-out prompts" in card
