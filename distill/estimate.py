"""``--estimate``: what a generate run will cost, before any request is sent.

See :mod:`thresher.distill.costs` for how prompt tokens are counted. Samples already stored in
OUT are not counted (a rerun asks only for the missing ones); the expected completion tokens
use the observed mean of the samples OUT already holds for the same teacher and options, or of
OUT's last finished run with the same teacher (its ``stats.json``), and ``max_tokens`` bounds them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from thresher.io.inputs import ReadOptions, read_inputs
from thresher.pricing import PRICES_DATE, usd

from .costs import price_for, prompt_counter
from .loop import request_conversation
from .prompts import extract_prompts
from .shards import ShardStore, row_key


def _identity(config: Any, backend_name: str) -> tuple[str | None, str | None, str | None]:
    """``(teacher, revision, chat_template)`` as the row keys use them, without contacting a server."""
    if backend_name in ("openai", "openai-batch"):
        return config.teacher, None, None
    from .stage import teacher_identity

    name, revision, template, _ = teacher_identity(backend_name, config)
    return name, revision, template


def _observed_mean(out: Path, teacher: str | None, stored: list[dict[str, Any]]) -> tuple[float | None, int, str]:
    """Mean completion tokens of earlier samples of this teacher, how many, and where from."""
    values = [int(r["completion_tokens"]) for r in stored if r.get("completion_tokens")]
    if values:
        return sum(values) / len(values), len(values), "stored samples of this run"
    try:
        stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, 0, ""
    mean = (stats.get("completion_tokens") or {}).get("mean") if isinstance(stats, dict) else None
    if mean and stats.get("teacher") == teacher:
        return float(mean), int(stats.get("generated") or stats.get("samples") or 0), f"{out}/stats.json"
    return None, 0, ""


def estimate(inputs: list[Path], out: Path, config: Any, read: ReadOptions | dict | None = None) -> dict[str, Any]:
    """Prompt tokens, expected completion tokens, requests and cost of generating into ``out``."""
    from .backends import default_backend

    backend_name = config.backend if config.backend != "auto" else default_backend()
    table, _ = read_inputs(inputs, read)
    prompts = extract_prompts(table, where=str(inputs[0]) if inputs else "", system=config.system)
    teacher, revision, template = _identity(config, backend_name)
    spec = config.output_spec()
    shards = Path(out) / "shards"
    stored = ShardStore(shards).load() if shards.is_dir() else {}
    pdict = config.key_params()
    missing_prompts, missing_samples, reused = [], 0, []
    for p in prompts:
        keys = [row_key(p.messages, teacher=revision or teacher or "", revision=None, params=pdict,
                        chat_template=template, sample_index=s) for s in range(config.n)]
        todo = [k for k in keys if k not in stored] if teacher else keys
        reused += [stored[k] for k in keys if k in stored]
        if todo:
            missing_prompts.append(p)
            missing_samples += len(todo)
    count, how = prompt_counter(config.teacher, config.tokenizer, config.trust_remote_code)
    prompt_tokens = sum(count(request_conversation(p, spec)) for p in missing_prompts)
    mean, seen, source = _observed_mean(Path(out), teacher, reused)
    worst = missing_samples * config.max_tokens
    expected = round(min(mean, config.max_tokens) * missing_samples) if mean is not None else None
    price = price_for(config, backend_name, teacher)
    return {
        "backend": backend_name, "teacher": teacher, "prompts": len(prompts), "n": config.n,
        "samples": missing_samples, "stored": len(prompts) * config.n - missing_samples,
        "requests": len(missing_prompts), "prompt_tokens": prompt_tokens, "counted_with": how,
        "completion_tokens_max": worst, "completion_tokens_expected": expected,
        "observed_mean": None if mean is None else round(mean, 2), "observed_samples": seen,
        "observed_from": source, "price": price.as_dict() if price else None,
        "cost_max": price.cost(prompt_tokens, worst) if price else None,
        "cost_expected": price.cost(prompt_tokens, expected) if price and expected is not None else None,
    }


def estimate_lines(e: dict[str, Any]) -> list[str]:
    """The estimate as printed by ``--estimate``."""
    lines = [f"estimate for {e['teacher'] or 'the teacher'} ({e['backend']}), no request sent: {e['prompts']:,} prompts "
             f"x n={e['n']}: {e['samples']:,} samples to generate ({e['stored']:,} already stored), "
             f"{e['requests']:,} requests",
             f"prompt tokens: {e['prompt_tokens']:,} ({e['counted_with']})"]
    comp = f"completion tokens: at most {e['completion_tokens_max']:,} (max_tokens x samples)"
    if e["completion_tokens_expected"] is not None:
        comp += (f"; expected {e['completion_tokens_expected']:,} (observed mean {e['observed_mean']} over "
                 f"{e['observed_samples']:,} samples, {e['observed_from']})")
    lines.append(comp)
    price = e["price"]
    if price is None:
        lines.append("cost: price unknown (give --price-in and --price-out, USD per 1M tokens)")
    else:
        cost = f"cost: at most {usd(e['cost_max'])}"
        if e["cost_expected"] is not None:
            cost += f", expected {usd(e['cost_expected'])}"
        lines.append(f"{cost} at USD {price['input_per_1m']:g} in / {price['output_per_1m']:g} out per 1M tokens "
                     f"({price['source']}; shipped prices of {PRICES_DATE})")
    return lines


def estimate_recipe(recipe: Any, run_dir: Path) -> list[str]:
    """``thresher run --estimate``: the inputs step runs (local, no request), then each generate
    stage is estimated on the rows it will get (the inputs when no data stage comes before it,
    else the earlier stage's result when it exists, else the inputs as an upper bound)."""
    from thresher.io import parts, write_text_atomic
    from thresher.recipe import inputs_step
    from thresher.registry import data_stages
    from thresher.stage_folder import check_run_dir, folder_lock

    check_run_dir(run_dir, recipe.name)
    cfg = inputs_step.Config(inputs=recipe.inputs, holdout=recipe.holdout, seed=recipe.seed)
    in_dir = run_dir / inputs_step.FOLDER
    with folder_lock(run_dir, what="run folder"):  # the run's own folder: `thresher run` reuses it
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "recipe.yaml", recipe.to_yaml())
        inputs_step.run(inputs_step.stage_inputs(cfg), in_dir, cfg)
    lines: list[str] = []
    fed, note = in_dir / "kept.parquet", ""
    for spec in recipe.stages:
        if spec.name == "generate":
            lines.append(f"{spec.folder}:{note}")
            lines += ["  " + line for line in estimate_lines(estimate([fed], run_dir / spec.folder, spec.config))]
        if spec.name in data_stages():
            done = run_dir / spec.folder / "kept.parquet"
            if parts.exists(done):  # one file or a folder of parts
                fed, note = done, ""
            elif spec.name != "generate":
                note = f" (upper bound: {spec.folder} has not run yet, so every input row is counted)"
    return lines or ["no generate stage in this recipe: nothing to estimate"]
