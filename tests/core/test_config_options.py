"""Options declared once: every stage command's options come from its Config dataclass."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Literal

import click
import pytest
from click.testing import CliRunner

from thresher.cli.config_options import (
    CONFIG_ATTR,
    Opt,
    config_fields,
    config_options,
    config_values,
    field_docs,
)

# (module, command attribute) of every command whose options come from a stage Config
STAGE_COMMANDS = [
    ("thresher.distill.cli", "generate"),
    ("thresher.curate.score.cli", "score"),
    ("thresher.curate.filter.cli", "filter_cmd"),
    ("thresher.curate.dedup.cli", "dedup"),
    ("thresher.curate.decontam.cli", "decontam"),
    ("thresher.curate.mix.cli", "mix"),
    ("thresher.curate.select.cli", "select_cmd"),
    ("thresher.train.cli", "lora"),
    ("thresher.train.data.cli", "lint_masks"),
    ("thresher.evaluate.cli", "eval_cmd"),
]


def _command(module: str, name: str) -> click.Command:
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("module", "name"), STAGE_COMMANDS, ids=[n for _, n in STAGE_COMMANDS])
def test_every_config_field_has_an_option_and_a_docstring(module, name):
    cmd = _command(module, name)
    cls, not_on_cli = getattr(cmd.callback, CONFIG_ATTR)
    docs = field_docs(cls)
    params = {p.name: p for p in cmd.params}
    for f in config_fields(cls):
        assert docs.get(f.name), f"{cls.__module__}.{cls.__qualname__}.{f.name} has no docstring"
        if f.name in not_on_cli:
            continue
        assert f.name in params, f"{name}: no option for {cls.__qualname__}.{f.name}"
        assert params[f.name].default is None, f"{name}: {f.name}'s default is written twice"


@pytest.mark.parametrize(("module", "name"), STAGE_COMMANDS, ids=[n for _, n in STAGE_COMMANDS])
def test_help_shows_the_config_defaults(module, name):
    cmd = _command(module, name)
    cls, _ = getattr(cmd.callback, CONFIG_ATTR)
    defaults = {f.name: f.default for f in config_fields(cls)}
    for p in cmd.params:
        d = defaults.get(p.name)
        if isinstance(p, click.Option) and isinstance(d, (int, float, str)) and not isinstance(d, bool) \
                and not p.is_flag and p.name in defaults:
            assert p.help and f"[default: {d}]" in p.help, (name, p.name, p.help)


@dataclasses.dataclass(frozen=True)
class _Demo:
    """A config for the generator's own tests."""

    threshold: float = 0.8
    """Similarity at or above which two rows match."""
    mode: Literal["a", "b"] = "a"
    """Which way to go."""
    nfkc: bool = True
    """Normalise first."""
    verbose: bool = False
    """Say more."""
    tags: tuple[str, ...] = ()
    """Tags to add."""
    r: int = 16
    """Rank."""
    secret: str = "x"
    """Only in recipes."""


def _demo_cli():
    seen = {}

    @click.command()
    @config_options(_Demo, recipe_only=("secret",), opts={"r": Opt(decls=("-r", "--rank"))})
    def demo(**options):
        seen.update(config_values(_Demo, options))
        seen["_left"] = options

    return demo, seen


def test_generated_options_fill_only_what_was_given():
    demo, seen = _demo_cli()
    r = CliRunner().invoke(demo, [])
    assert r.exit_code == 0, r.output
    assert seen == {"_left": {}}  # nothing given: the dataclass defaults apply
    r = CliRunner().invoke(demo, ["--threshold", "0.5", "--mode", "b", "--no-nfkc", "--verbose",
                                  "--tags", "x", "--tags", "y", "-r", "4"])
    assert r.exit_code == 0, r.output
    assert seen == {"threshold": 0.5, "mode": "b", "nfkc": False, "verbose": True, "tags": ["x", "y"],
                    "r": 4, "_left": {}}


def test_generated_help_comes_from_the_docstrings():
    demo, _ = _demo_cli()
    out = " ".join(CliRunner().invoke(demo, ["--help"]).output.split())  # unwrapped
    assert "Similarity at or above which two rows match. [default: 0.8]" in out
    assert "--mode [a|b]" in out
    assert "--no-nfkc" in out and "Turn off (on by default): normalise first." in out
    assert "-r, --rank INTEGER" in out
    assert "--secret" not in out


def test_a_field_without_a_docstring_is_seen():
    @dataclasses.dataclass(frozen=True)
    class Bare:
        a: int = 1
        b: int = 2
        """Documented."""

    assert field_docs(Bare) == {"b": "Documented."}


def test_an_unknown_field_in_the_spelling_is_an_error():
    with pytest.raises(TypeError, match="has no field"):
        config_options(_Demo, opts={"thresold": Opt()})


# every command that reads rows: the stage commands plus convert and stats
READING_COMMANDS = [*STAGE_COMMANDS, ("thresher.cli.data_cmds", "convert"), ("thresher.cli.data_cmds", "stats")]


@pytest.mark.parametrize(("module", "name"), READING_COMMANDS, ids=[n for _, n in READING_COMMANDS])
def test_read_options_are_generated_from_read_options(module, name):
    """--format, --on-bad-rows and --split come from ReadOptions (its docstrings, its Literals,
    its defaults), the same on every command; none writes a default of its own."""
    from thresher.io.inputs import ReadOptions
    from thresher.io.shapes import SHAPES

    cmd = _command(module, name)
    params = {p.name: p for p in cmd.params}
    docs = field_docs(ReadOptions)
    for field, flag in (("fmt", "--format"), ("on_bad_rows", "--on-bad-rows"), ("split", "--split")):
        p = params[field]
        assert p.opts == [flag] and p.default is None, (name, field)
        assert p.help.startswith(docs[field]), (name, field, p.help)
    assert list(params["fmt"].type.choices) == list(SHAPES)
    assert list(params["on_bad_rows"].type.choices) == ["error", "skip"]
    assert "[default: error]" in params["on_bad_rows"].help
    if (module, name) in STAGE_COMMANDS:  # the stage's own Config stays the command's mark
        assert getattr(cmd.callback, CONFIG_ATTR)[0] is not ReadOptions


def test_read_options_reach_the_command_as_one_read_keyword(tmp_path):
    from thresher.cli.options import read_options
    from thresher.io.inputs import ReadOptions

    seen = []

    @click.command()
    @read_options
    def cmd(read):
        seen.append(read)

    assert CliRunner().invoke(cmd, []).exit_code == 0
    assert CliRunner().invoke(cmd, ["--on-bad-rows", "skip", "--format", "alpaca", "--split", "test"]).exit_code == 0
    assert seen == [ReadOptions(), ReadOptions(fmt="alpaca", on_bad_rows="skip", split="test")]
