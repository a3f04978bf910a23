"""Up-front checks of a recipe, before its first stage runs (``recipe validate`` and ``run``).

What otherwise fails only after the expensive stages:

- a model a stage needs that is missing or unreachable (a local folder that is not there, a
  hub name that is not in the local cache while ``HF_HUB_OFFLINE`` is set, the embedded
  default without its package): the teacher, scorer models, the filter tokenizer, the
  student's base;
- a stage reading a column no earlier stage (nor the inputs) produces, e.g. filter
  ``best_by: score_loglik`` before the score stage that writes ``score_loglik``.

What a stage loads, reads and writes are facts of its class (``models``, ``reads``,
``writes``; see :mod:`thresher.registry`), so a plug-in stage is checked like a built-in one;
one that does not say what it writes makes the later columns unknown (not checked).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

BASE_COLUMNS = frozenset({"id", "messages", "category", "source"})
OFFLINE = ", and HF_HUB_OFFLINE is set, so it cannot be downloaded"


def preflight(recipe: Any, *, offline_hub: bool = True) -> tuple[list[str], list[str]]:
    """``(problems, warnings)`` of ``recipe`` (a :class:`thresher.recipe.spec.Recipe`).

    A hub model that is not cached while ``HF_HUB_OFFLINE`` is set is a problem when
    ``offline_hub`` (``run``: it cannot load), else a warning (``recipe validate`` of a GPU
    recipe on an offline machine)."""
    models, hub = model_problems(recipe)
    if offline_hub:
        return models + hub + column_problems(recipe), []
    return models + column_problems(recipe), hub


def _facts(stage: Any) -> Any:
    """The registered stage class's facts (``models``, ``reads``, ``writes``) for a recipe stage."""
    from thresher.registry import facts

    return facts(stage.name)


# -- models -----------------------------------------------------------------------------------

def model_refs(stage: Any) -> list[tuple[str, str | None]]:
    """(option, model name) pairs a stage loads (None = the embedded default): its ``models``."""
    return _facts(stage).models(stage.config)


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
        for option, model in model_refs(stage):
            why = model_problem(model)
            if why:
                (hub if why.endswith(OFFLINE) else problems).append(f"{stage.where}.{option.split(' ')[0]}: {why}")
    return problems, hub


# -- columns ----------------------------------------------------------------------------------

def column_reads(stage: Any) -> list[tuple[str, str]]:
    """(option, column) pairs a stage reads beyond the base columns: its ``reads``."""
    return list(_facts(stage).reads(stage.config))


def column_writes(stage: Any) -> set[str] | None:
    """Columns a stage adds to its rows: its ``writes`` (None: unknown, it may add any)."""
    return _facts(stage).writes(stage.config)


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
            from thresher.io import parts

            return set(parts.schema(p)) if parts.exists(p) else None  # one file or a folder of parts
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
        for option, col in column_reads(stage):
            if col in produced or (known is not None and col in known):
                continue
            later = next((s for s in stages[i + 1:] if col in (column_writes(s) or ())), None)
            if later is not None:
                problems.append(f"{stage.where}.{option}: reads column {col!r}, which only the later stage "
                                f"{later.where} produces (move that stage before this one)")
            elif known is not None:
                problems.append(f"{stage.where}.{option}: reads column {col!r}, which neither the inputs "
                                "nor an earlier stage produce")
        writes = column_writes(stage)
        if writes is None:
            known = None  # a stage that does not say what it adds may add anything
        else:
            produced |= writes
    return problems
