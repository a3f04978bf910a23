"""Fixtures for recipe/report tests: fake stages (our own small contract-following modules)
and a helper that writes a recipe file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

FAKES = ("generate", "score", "filter", "dedup", "train")


@pytest.fixture
def fake_stages(monkeypatch):
    """Point the recipe runner's generate/score/filter/dedup/train at tests.recipe.fakes."""
    from tests.recipe import fakes
    from thresher import registry

    for name in FAKES:
        monkeypatch.setitem(registry.OVERRIDES, name, f"tests.recipe.fakes.{name}")
    fakes.CALLS.clear()
    return fakes.CALLS


@pytest.fixture
def write_recipe(tmp_path):
    """write_recipe(data, name="r.yaml") -> path of a YAML recipe file in tmp_path."""

    def _write(data, name: str = "recipe.yaml") -> Path:
        p = tmp_path / name
        p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return p

    return _write


def fake_recipe(**over) -> dict:
    """A small recipe over chatterbot prompts using every fake stage, evaluate and report."""
    data = {
        "name": "fake",
        "seed": 3,
        "holdout": 4,
        "inputs": [{"chatterbot": "english", "categories": ["food", "science", "history"], "limit": 24}],
        "stages": [
            {"generate": {"n": 3}},
            {"score": {}},
            {"filter": {"min_len": 6, "best_of": 1}},
            {"dedup": {"threshold": 0.8}},
            {"train": {"base": "fake-base", "max_steps": 3}},
            {"evaluate": {}},
            {"report": {}},
        ],
    }
    data.update(over)
    return data


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One run of :func:`fake_recipe` with the fake stages, shared by a test module (the fake
    stages patched in meanwhile). A module that needs its own run overrides it."""
    from tests.conftest import invoke
    from tests.recipe import fakes
    from thresher import registry

    tmp = tmp_path_factory.mktemp("fake-run")
    recipe = tmp / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(fake_recipe(), sort_keys=False))
    out = tmp / "run"
    with pytest.MonkeyPatch.context() as mp:
        for name in FAKES:
            mp.setitem(registry.OVERRIDES, name, f"tests.recipe.fakes.{name}")
        fakes.CALLS.clear()
        res = invoke("run", recipe, "--out", out)
    assert res.exit_code == 0, res.output
    return out
