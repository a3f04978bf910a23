"""The mix spec: parsing into frozen dataclasses and reporting every problem at once."""

from __future__ import annotations

import dataclasses

import pytest

from thresher.config import from_dict
from thresher.curate.mix.spec import CategorySpec, MixSpec, load_spec, spec_problems
from thresher.curate.mix.stage import Config
from thresher.errors import ConfigError, ThresherError


def test_valid_spec_parses_into_frozen_dataclasses():
    spec = load_spec(
        {
            "total": 100,
            "max_repeats": 2,
            "on_shortfall": "keep",
            "categories": {
                "code": {"count": 40},
                "math": {"weight": 0.6, "min_score": 0.5, "max_repeats": 3},
            },
        }
    )
    assert isinstance(spec, MixSpec)
    assert spec.category("code") == CategorySpec("code", count=40)
    assert spec.category("math") == CategorySpec("math", weight=0.6, max_repeats=3, min_score=0.5)
    assert (spec.total, spec.max_repeats, spec.on_shortfall) == (100, 2, "keep")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.total = 5  # type: ignore[misc]


def test_bad_spec_lists_every_problem_in_one_message():
    raw = {
        "totl": 10,  # unknown top-level key
        "categories": {
            "code": {"weight": 0.5},
            "math": {"weight": 0.2},  # weights sum to 0.7 and there is no total
            "chat": {"count": -5},  # negative count
            "web": {"count": 3, "weight": 0.1},  # both
            "misc": {"cnt": 4},  # unknown key, and no target
        },
    }
    with pytest.raises(ConfigError) as err:
        load_spec(raw, present={"code", "math", "chat", "web"})  # misc is not in the data
    msg = str(err.value)
    assert "\n" not in msg
    for part in (
        "totl: unknown key (did you mean 'total'?)",
        "weights: must sum to 1 when no total is given, they sum to 0.8",
        "categories.chat.count: must be >= 0, got -5",
        "categories.web: give count or weight, not both",
        "categories.misc.cnt: unknown key (did you mean 'count'?)",
        "categories.misc: unknown category",
    ):
        assert part in msg, part
    assert len(err.value.problems) >= 6


def test_weights_summing_to_one_need_no_total_and_counts_are_never_inferred():
    assert load_spec({"categories": {"a": {"weight": 0.25}, "b": {"weight": 0.75}}}).total is None
    _, problems = spec_problems({"categories": {"a": 0.5, "b": 10}})
    assert any("categories.a: must be a mapping such as {count: 100}" in p for p in problems)
    assert any("categories.b: must be a mapping" in p for p in problems)
    _, problems = spec_problems({"categories": {"a": {"count": 2.5}, "b": {"weight": 1.5}}})
    assert "categories.a.count: expected int | null, got 2.5" in problems
    assert "categories.b.weight: must be in [0, 1], got 1.5" in problems


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"total": 10, "categories": {"a": {"count": 8}, "b": {"weight": 0.5}}}, "exceed total 10"),
        (
            {"categories": {"a": {"count": 8}, "b": {"weight": 1.0}}},
            "total: required when both counts and weights",
        ),
        (
            {"total": 10, "categories": {"a": {"weight": 0.7}, "b": {"weight": 0.6}}},
            "weights: sum to 1.3, more than 1",
        ),
        ({"categories": {"a": {}}}, "categories.a: needs count or weight"),
        (
            {"on_shortfall": "drop", "categories": {"a": {"count": 1}}},
            "on_shortfall: must be one of",
        ),
        (
            {"max_repeats": 0, "categories": {"a": {"count": 1}}},
            "max_repeats: must be a whole number >= 1",
        ),
        (
            {"temperature": -1, "categories": {"a": {"count": 1}}},
            "temperature: must be a number > 0",
        ),
        ({"categories": {}}, "the spec lists no category"),
        ("just text", "the spec must be a mapping"),
    ],
)
def test_each_structural_problem_has_a_clear_message(raw, expected):
    _, problems = spec_problems(raw)
    assert any(expected in p for p in problems), problems


def test_rules_check_their_categories_and_regexes_up_front():
    raw = {
        "rules": [
            {"category": "code", "regex": "def ("},  # invalid regex
            {"category": "math", "keywords": ["integral"], "colour": "red"},
            {"regex": "x"},  # no category
        ],
        "fallback": "other",
        "categories": {
            "code": {"count": 1},
            "math": {"count": 1},
            "other": {"count": 1},
            "poetry": {"count": 1},
        },
    }
    _, problems = spec_problems(raw)
    assert any(p.startswith("rules[0].regex: invalid") for p in problems), problems
    assert "rules[1].colour: unknown key" in problems
    assert "rules[2].category: required, a non-empty string" in problems
    assert any(
        p.startswith(
            "categories.poetry: unknown category (rules and fallback give: code, math, other)"
        )
        for p in problems
    )


def test_yaml_file_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "mix.yaml"
    bad.write_text("total: 10\ncategories:\n  a: {count: 1\n  b: 2\n")
    with pytest.raises(ThresherError, match=r"mix\.yaml:\d+: "):
        load_spec(bad)
    with pytest.raises(ThresherError, match="mix spec file not found"):
        load_spec(tmp_path / "missing.yaml")


def test_stage_config_rejects_unknown_keys_and_checks_the_spec_up_front():
    with pytest.raises(ConfigError) as err:
        from_dict(
            Config,
            {
                "spec": {"categories": {"a": {"count": -1}}},
                "rank_by": None,
                "replay_fraction": 1.5,
                "sed": 1,
            },
        )
    msg = str(err.value)
    assert "sed: unknown key (did you mean 'seed'?)" in msg
    cfg = from_dict(Config, {"spec": {"categories": {"a": {"count": 1}}}, "seed": 3})
    assert cfg.seed == 3 and cfg.check() == []
    problems = Config(
        spec={"categories": {"a": {"count": -1, "min_score": 0.5}}}, replay_fraction=1.5
    ).check()
    assert "spec.categories.a.count: must be >= 0, got -1" in problems
    assert "spec.categories.a.min_score: needs rank_by (the score column)" in problems
    assert "replay_fraction: must be in [0, 1), got 1.5" in problems
    assert "replay_fraction: needs replay (a file of rows to mix back in)" in problems


def test_top_level_and_rule_problems_are_all_collected():
    _, problems = spec_problems({
        "total": 2.5, "max_repeats": 0, "on_shortfall": "drop", "temperature": float("inf"), "column": "",
        "fallback": 5, "rules": [{"category": "a", "keywords": "x", "source": 5}, {"category": 5, "regex": ""}],
        "categories": {"a": {"count": 1}},
    })
    assert problems == [
        "total: expected int | null, got 2.5",
        "on_shortfall: must be one of 'redistribute' | 'keep' | 'fail', got 'drop'",
        "temperature: must be a finite number, got inf",  # every numeric option (issue 26, 6b)
        "fallback: expected str | null, got 5",
        "max_repeats: must be a whole number >= 1, got 0",
        "column: must be a column name, got ''",
        "rules[0].source: expected list of str, got 5",
        "rules[1].category: expected str | null, got 5",
        "rules[1].regex: must be a non-empty string",
        "column and rules: categories come from a column or from rules, not both",
    ]
