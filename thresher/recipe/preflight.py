"""Up-front checks of a recipe, before its first stage runs (``recipe validate`` and ``run``).

What otherwise fails only after the expensive stages:

- a model a stage needs that is missing or unreachable (a local folder that is not there, a
  hub name that is not in the local cache while ``HF_HUB_OFFLINE`` is set, the embedded
  default without its package): the teacher, scorer models, the filter tokenizer, the
  student's base;
- a stage reading a column no earlier stage (nor the inputs) produces, e.g. filter
  ``best_by: score_loglik`` before the score stage that writes ``score_loglik``.

Only the built-in stages are checked (test doubles and plug-ins are left alone).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

BASE_COLUMNS = frozenset({"id", "messages", "category", "source"})
OFFLINE = ", and HF_HUB_OFFLINE is set, so it cannot be downloaded"
GENERATE_COLUMNS = frozenset({"parent_id", "sample_index", "teacher", "gen_params", "finish_reason",
                              "prompt_tokens", "completion_tokens", "reasoning"})


def preflight(recipe: Any, *, offline_hub: bool = True) -> tuple[list[str], list[str]]:
    """``(problems, warnings)`` of ``recipe`` (a :class:`thresher.recipe.schema.Recipe`).

    A hub model that is not cached while ``HF_HUB_OFFLINE`` is set is a problem when
    ``offline_hub`` (``run``: it cannot load), else a warning (``recipe validate`` of a GPU
    recipe on an offline machine)."""
    models, hub = model_problems(recipe)
    if offline_hub:
        return models + hub + column_problems(recipe), []
    return models + column_problems(recipe), hub


def _builtin(stage: Any) -> bool:
    return type(stage.config).__module__.startswith("thresher.")


# -- models -----------------------------------------------------------------------------------

def model_refs(stage: Any) -> list[tuple[str, str | None]]:
    """(option, model name) pairs a built-in stage loads (None = the embedded default)."""
    c = stage.config
    name = stage.name
    if name == "generate":
        return [] if getattr(c, "backend", "") in ("openai", "openai-batch") else [("teacher", getattr(c, "teacher", None))]
    if name == "score":
        refs = []
        for s in c.specs():
            if s.kind in ("loglik", "reward", "ifd"):
                refs.append((f"scorers ({s.kind})", s.model))
            elif s.kind == "judge" and s.backend not in ("openai",):
                refs.append(("scorers (judge)", s.model))
        return refs
    if name == "filter":
        uses = getattr(c, "min_tokens", 0) > 0 or getattr(c, "max_tokens", None) is not None
        return [("tokenizer", c.tokenizer)] if uses and getattr(c, "tokenizer", None) else []
    if name == "train":
        return [("base", getattr(c, "base", None))]
    return []


def model_problem(model: str | None) -> str | None:
    """Why ``model`` cannot be loaded here without running a stage, or None."""
    from thresher.models import ALIASES, DEFAULT_MODEL, EMBEDDED, models_dir

    key = DEFAULT_MODEL if model is None else str(model)
    key = ALIASES.get(key.lower(), key)
    if key in EMBEDDED:
        pkg, _, folder = EMBEDDED[key]
        if (models_dir() / folder / "config.json").exists() or importlib.util.find_spec(pkg) is not None:
            return None
        return f"the default model needs the '{pkg.replace('_', '-')}' package (not installed)"
    p = Path(key).expanduser()
    if p.exists():
        if p.is_file():
            return None if p.suffix == ".gguf" else f"{key}: not a model folder or .gguf file"
        if any((p / f).exists() for f in ("config.json", "tokenizer.json", "tokenizer_config.json")) \
                or any(p.glob("*.gguf")):
            return None
        return f"{key}: not a model folder (no config.json)"
    if key.startswith((".", "/", "~")) or key.count("/") != 1 or p.suffix == ".gguf":
        return f"model {key!r} not found (not a model folder, a .gguf file or a hub name 'org/name')"
    return _hub_problem(key)


def _hub_problem(repo: str) -> str | None:
    try:
        from huggingface_hub import constants, try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    if isinstance(try_to_load_from_cache(repo, "config.json"), str):
        return None
    if constants.HF_HUB_OFFLINE:
        return f"model {repo!r} is not in the local cache{OFFLINE}"
    return None


def model_problems(recipe: Any) -> tuple[list[str], list[str]]:
    """(missing models, hub models not cached while offline) of every built-in stage."""
    problems, hub = [], []
    for stage in recipe.stages:
        if not _builtin(stage):
            continue
        for option, model in model_refs(stage):
            why = model_problem(model)
            if why:
                (hub if why.endswith(OFFLINE) else problems).append(f"{stage.where}.{option.split(' ')[0]}: {why}")
    return problems, hub


# -- columns ----------------------------------------------------------------------------------

def column_reads(stage: Any) -> list[tuple[str, str]]:
    """(option, column) pairs a built-in stage reads beyond the base columns."""
    c = stage.config
    if stage.name == "filter":
        out = [(f"min_scores.{k}", k) for k in c.min_scores] + [(f"max_scores.{k}", k) for k in c.max_scores]
        out += [(opt, v) for opt in ("top_by", "best_by") if (v := getattr(c, opt, None))]
        suffix = {"zscore": "_z", "rank": "_rank", "robust": "_rz"}.get(getattr(c, "normalize", "none"))
        if suffix:  # score_x_z / score_x_rank are made by the filter itself from score_x
            out = [(opt, col.removesuffix(suffix)) for opt, col in out]
        if getattr(c, "best_of", None):
            out.append(("best_of", "parent_id"))
        return out
    if stage.name == "mix" and getattr(c, "rank_by", None):
        return [("rank_by", c.rank_by)]
    if stage.name == "dedup" and getattr(c, "keep_by", None):
        return [("keep_by", c.keep_by)]
    return []


def column_writes(stage: Any) -> set[str]:
    """Columns a built-in stage adds to its rows."""
    if stage.name == "score":
        return {s.column for s in stage.config.specs()}
    if stage.name == "generate":
        return set(GENERATE_COLUMNS)
    return set()


def input_columns(recipe: Any) -> set[str] | None:
    """Columns the recipe's inputs may hold (None when some input's columns are unknown)."""
    cols = set(BASE_COLUMNS)
    for spec in recipe.inputs:
        if spec.kind == "chatterbot":
            continue
        if spec.kind != "path":
            return None
        found = _file_columns(Path(spec.value))
        if found is None:
            return None
        cols |= found
    return cols


def _file_columns(p: Path) -> set[str] | None:
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            import polars as pl

            return set(pl.read_parquet_schema(p))
        if p.suffix.lower() in (".jsonl", ".ndjson"):
            keys: set[str] = set()
            with open(p, encoding="utf-8-sig") as fh:
                for n, line in enumerate(fh):
                    if n >= 200:
                        return None  # a large file: its later rows may hold other columns
                    if line.strip():
                        rec = json.loads(line)
                        if isinstance(rec, dict):
                            keys |= set(rec)
            return keys
    except (OSError, ValueError, RecursionError):
        return None
    except Exception:  # noqa: BLE001 - polars errors on a broken file: the stage reports them
        return None
    return None


def column_problems(recipe: Any) -> list[str]:
    stages = list(recipe.stages)
    known = input_columns(recipe)
    produced: set[str] = set()
    problems = []
    for i, stage in enumerate(stages):
        if _builtin(stage):
            for option, col in column_reads(stage):
                if col in produced or (known is not None and col in known):
                    continue
                later = next((s for s in stages[i + 1:] if _builtin(s) and col in column_writes(s)), None)
                if later is not None:
                    problems.append(f"{stage.where}.{option}: reads column {col!r}, which only the later stage "
                                    f"{later.where} produces (move that stage before this one)")
                elif known is not None:
                    problems.append(f"{stage.where}.{option}: reads column {col!r}, which neither the inputs "
                                    "nor an earlier stage produce")
            produced |= column_writes(stage)
        else:
            known = None  # a plug-in stage may add anything
    return problems
