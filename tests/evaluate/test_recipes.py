"""The shipped recipes' eval stages: distill-gpu (vLLM teacher, HumanEval code judge) and the
quickstart (context distillation, judged without the system prompt)."""

from __future__ import annotations

from pathlib import Path

from thresher.recipe.schema import load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_distill_gpu_recipe():
    rec = load_recipe(RECIPES / "distill-gpu.yaml", check_files=True)
    gen = rec.stage("generate").config
    assert gen.backend == "vllm" and gen.teacher == "Qwen/Qwen2.5-7B-Instruct"
    assert rec.stage("train").config.base == "Qwen/Qwen2.5-0.5B-Instruct"
    ev = rec.stage("eval").config
    assert ev.heldout == "openai/openai_humaneval:test" and ev.target == "code"
    assert [j.kind for j in ev.parsed_judges()] == ["code", "ends"]
    assert ev.generate["backend"] == "vllm"
    assert rec.stage("select").config.method == "score-then-diversity"


def test_quickstart_is_context_distillation():
    rec = load_recipe(RECIPES / "quickstart.yaml", check_files=True)
    gen = rec.stage("generate").config
    assert gen.system and gen.system_in_rows is False and gen.n >= 2
    ev = rec.stage("eval").config
    assert ev.system is None and ev.baseline
    kinds = {j.kind for j in ev.parsed_judges()}
    assert {"ends", "sentences", "refnll"} <= kinds and ev.target_metric() == "all"
