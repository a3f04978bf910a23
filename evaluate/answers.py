"""The models' answers to the held-out prompts, through the generate stage (nested stage
folders under the eval stage's own), and the stages the eval stage runs by their module."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from thresher.evaluate.models import ModelSpec, loadable


def stage_module(name: str):
    """The module of recipe stage ``name`` (generate, train ...)."""
    from thresher.registry import stage_module as module_of

    return module_of(name)


def stage_config(module, options: dict[str, Any], where: str, **overrides: Any):
    """The stage's Config from ``options`` with ``overrides`` applied where the field exists."""
    from thresher.config import from_dict

    fields = {f.name for f in dataclasses.fields(module.Config)}
    opts = {k: v for k, v in {**options, **overrides}.items() if k in fields}
    return from_dict(module.Config, opts, where)


#: generate options that are fields of eval's Config itself (one place for each)
OWN_GENERATE_KEYS = ("max_tokens", "backend", "base_url")


def answers(name: str, model: str, prompts_path: Path, config: Any, stage, force: bool):
    """The model's answers to the prompts, through the generate stage (greedy, one each)."""
    from thresher.io import parts

    gen_mod = stage_module("generate")
    over: dict[str, Any] = {"teacher": model, "n": config.samples, "temperature": config.answer_temperature(),
                            "seed": config.seed, **{k: getattr(config, k) for k in OWN_GENERATE_KEYS},
                            "system": config.system, "system_in_rows": True}
    cfg = stage_config(gen_mod, dict(config.generate), f"{stage.name}.generate", **over)
    res = gen_mod.run([prompts_path], stage.path(f"answers-{name}"), cfg, force=force)
    df = parts.read(Path(res.out) / "kept.parquet")  # one file or a folder of parts
    return df, getattr(cfg, "max_tokens", None) or getattr(cfg, "max_new_tokens", None)


def aligned_k(prompts, answers, k: int) -> tuple[list[list[str]], list[list[str | None]], list[list[int | None]]]:
    """The k answers of each prompt (text, finish reason, completion tokens), in sample order;
    a missing answer (dropped as empty) is an empty text with no finish reason."""
    from thresher.schema import response_text

    key = "parent_id" if "parent_id" in answers.columns else "id"
    by: dict[str, list[dict[str, Any]]] = {}
    for row in answers.iter_rows(named=True):
        by.setdefault(str(row[key]), []).append(row)
    texts, finish, tokens = [], [], []
    for pid in prompts["id"].to_list():
        rows = sorted(by.get(str(pid), []), key=lambda r: r.get("sample_index") or 0)[:k]
        rows += [None] * (k - len(rows))
        texts.append([response_text(r["messages"]) if r else "" for r in rows])
        finish.append([r.get("finish_reason") if r else None for r in rows])
        tokens.append([r.get("completion_tokens") if r else None for r in rows])
    return texts, finish, tokens


def model_path(spec: ModelSpec, stage, config: Any) -> str:
    """A loadable form of the spec's model (adapters merged under the stage folder)."""
    return loadable(spec.model, stage.out, base=config.base)
