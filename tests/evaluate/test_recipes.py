"""The shipped recipes' eval stages: distill-gpu (vLLM teacher, HumanEval code judge) and the
quickstart (context distillation, judged without the system prompt)."""

from __future__ import annotations

from pathlib import Path

from thresher.recipe.loading import load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_distill_gpu_recipe():
    rec = load_recipe(RECIPES / "distill-gpu.yaml", check_files=True)
    gen = rec.stage("generate").config
    assert gen.backend == "vllm" and gen.teacher == "Qwen/Qwen2.5-7B-Instruct"
    assert rec.stage("train").config.base == "Qwen/Qwen2.5-0.5B-Instruct"
    ev = rec.stage("eval").config
    assert ev.heldout == "openai/openai_humaneval:test" and ev.target == "code"
    assert [j.kind for j in ev.parsed_judges()] == ["code", "ends"]
    assert ev.backend == "vllm" and ev.max_tokens == 512 and "backend" not in ev.generate
    assert rec.stage("select").config.method == "score-then-diversity"


def test_quickstart_is_context_distillation():
    rec = load_recipe(RECIPES / "quickstart.yaml", check_files=True)
    gen = rec.stage("generate").config
    assert gen.system and gen.system_in_rows is False and gen.n >= 2
    ev = rec.stage("eval").config
    assert ev.system is None and ev.baseline
    kinds = {j.kind for j in ev.parsed_judges()}
    assert {"ends", "sentences", "refnll"} <= kinds and ev.target_metric() == "all"


def test_verified_recipe_is_rejection_sampling():
    rec = load_recipe(RECIPES / "verified.yaml", check_files=True)
    gen = rec.stage("generate").config
    assert gen.teacher == "smollm2" and gen.backend == "transformers"
    assert gen.n >= 8 and gen.temperature > 0 and "Examples" in gen.system and gen.system_in_rows is False
    assert rec.holdout >= 100
    assert "m=verify:numeric" in rec.stage("score").config.scorers
    filt = rec.stage("filter").config
    assert filt.only_passing == "score_m" and filt.best_of == 1 and filt.drop_truncated
    ev = rec.stage("eval").config
    assert [j.kind for j in ev.parsed_judges()] == ["numeric"] and ev.baseline and ev.system is None


def test_reasoning_gpu_recipe_verifies_against_the_student():
    rec = load_recipe(RECIPES / "reasoning-gpu.yaml", check_files=True)
    teacher, student = [s for s in rec.stages if s.name == "generate"]
    assert teacher.config.backend == "vllm" and teacher.config.teacher == "Qwen/Qwen3-8B"
    assert teacher.config.reasoning == "keep" and teacher.config.n >= 8
    assert student.input == "inputs" and student.config.teacher == "Qwen/Qwen2.5-0.5B-Instruct"
    score = rec.stage("score")
    assert score.input == "generate#1" and score.config.passrate_from == {"student": "generate#2"}
    assert "m=verify:math" in score.config.scorers
    filt = rec.stage("filter").config
    assert filt.only_passing == "score_m" and filt.passrate_by == "score_student" and filt.max_passrate <= 0.5
    train = rec.stage("train").config
    assert train.base == "Qwen/Qwen2.5-0.5B-Instruct" and train.max_length == 16384 and train.packing
    ev = rec.stage("eval").config
    assert ev.samples == 4 and ev.temperature > 0 and [j.kind for j in ev.parsed_judges()] == ["math"]
    assert ev.heldout.endswith("math500.jsonl")


def test_new_recipes_validate_offline_without_loading_models(monkeypatch):
    """`thresher recipe validate` accepts both recipes with the hub offline and no model loaded."""
    import sys

    import transformers
    from click.testing import CliRunner

    from thresher.cli.main import cli

    def refuse(*args, **kwargs):
        raise AssertionError("validate loaded a model")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", refuse)
    for name in ("verified.yaml", "reasoning-gpu.yaml"):
        res = CliRunner().invoke(cli, ["recipe", "validate", str(RECIPES / name)])
        assert res.exit_code == 0, res.output
        assert f"ok: recipe '{name[:-5]}'" in res.output
    assert "vllm" not in sys.modules
