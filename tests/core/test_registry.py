"""The stage registry (thresher.registry): entry points in, facts out, and a broken plug-in
named instead of breaking the rest."""

from __future__ import annotations

from click.testing import CliRunner

from tests.plugin_stage import install, uninstall
from thresher import registry
from thresher.cli.main import cli


def test_built_in_stages_in_pipeline_order_with_their_facts():
    assert registry.names(recipe=True) == ["generate", "score", "filter", "dedup", "decontam", "mix", "select",
                                           "train", "eval", "evaluate", "report"]
    assert "inputs" in registry.names() and registry.data_stages()[0] == "inputs"
    assert [n for n in registry.names() if registry.stage_class(n).loads_model] == ["generate", "score", "eval",
                                                                                     "evaluate"]
    assert registry.stage_class("evaluate") is registry.stage_class("eval")
    assert "evaluate" not in registry.commands("") and "eval" in registry.commands("")
    assert sorted(registry.commands("curate")) == ["decontam", "dedup", "filter", "mix", "score", "select"]


def test_a_broken_plugin_is_named_and_the_rest_still_works(tmp_path):
    files = {"ghost_stage/stage.py": "from dataclasses import dataclass\n\n@dataclass(frozen=True)\nclass Config:\n"
                                     "    x: int = 1\n"}
    root = install(tmp_path, files, {"ghost": "ghost_stage.stage:GhostStage"}, dist="ghost_stage")
    try:
        assert "ghost" in registry.names(recipe=True) and "ghost" not in registry.data_stages()
        (tmp_path / "r.yaml").write_text("name: g\ninputs:\n  - chatterbot: english\nstages:\n  - ghost: {}\n")
        res = CliRunner().invoke(cli, ["recipe", "validate", str(tmp_path / "r.yaml")])
        assert res.exit_code == 1
        assert "stages[0].ghost: stage module ghost_stage.stage is not available (ghost_stage.stage has no " \
               "GhostStage)" in res.output
        assert CliRunner().invoke(cli, ["--help"]).exit_code == 0
    finally:
        uninstall(root, {"ghost_stage"})
    assert "ghost" not in registry.names()


def test_every_registered_stage_declares_its_facts():
    import dataclasses
    import importlib

    import click

    for name in registry.names():
        cls = registry.stage_class(name)
        assert cls.name in (name, "eval"), name  # evaluate: the former name of eval
        assert dataclasses.is_dataclass(cls.config_cls) and cls.config_cls is registry.stage_module(name).Config
        assert callable(registry.stage_module(name).run), name
        if cls.cli:
            module, attr = cls.cli.split(":")
            assert isinstance(getattr(importlib.import_module(module), attr), click.Command), name
        facts, config = registry.facts(name), cls.config_cls()  # the facts of the default options
        assert isinstance(facts.models(config), list) and isinstance(facts.reads(config), list)
        assert facts.writes(config) is None or isinstance(facts.writes(config), set)
