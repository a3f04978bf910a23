"""Loading a recipe: the file (a path or a shipped recipe's name), ``--set`` overrides, then
:func:`thresher.recipe.spec.parse_recipe`, which validates everything before anything runs."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from thresher.errors import ConfigError, ThresherError
from thresher.recipe.spec import TOP_KEYS, Recipe, parse_recipe
from thresher.yamlutil import safe_load as unique_yaml_load


def builtin_recipe(name: str) -> Path | None:
    """The shipped recipe called ``name`` (``quickstart`` ...), or None."""
    here = Path(__file__).resolve().parent
    for folder in (here / "recipes", here.parents[1] / "recipes"):
        p = folder / f"{name}.yaml"
        if p.is_file():
            return p
    return None


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    """Read a recipe file (or a shipped recipe by name) into plain data."""
    p = Path(path)
    if not p.exists() and p.suffix == "" and builtin_recipe(str(path)):
        p = builtin_recipe(str(path))  # type: ignore[assignment]
    if not p.is_file():
        raise ThresherError(f"{path}: recipe file not found")
    try:
        data = unique_yaml_load(p.read_text(encoding="utf-8"))  # a repeated key is an error
    except UnicodeDecodeError:
        raise ThresherError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ThresherError(f"{path}{line}: invalid YAML: {problem}") from None
    if not isinstance(data, Mapping):
        raise ThresherError(f"{path}: a recipe must be a YAML mapping")
    return dict(data)


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item}: expected KEY=VALUE (for example dedup.threshold=0.9)")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise ConfigError(f"--set {item}: bad key {key!r}")
    return parts, value


def _find_stage(stages: list[Any], head: str, item: str) -> tuple[int, Mapping[str, Any]] | str:
    """The ``(index, entry)`` of the stage an override names (``dedup``, ``filter#2``,
    ``stages[4]``), or the problem."""

    m_idx = re.fullmatch(r"stages\[(\d+)\]", head)
    m_nth = re.fullmatch(r"([a-z_]+)#(\d+)", head)
    entries = [(i, e) for i, e in enumerate(stages) if isinstance(e, Mapping) and len(e) == 1]
    if m_idx:
        i = int(m_idx.group(1))
        found = [(j, e) for j, e in entries if j == i]
    else:
        name = m_nth.group(1) if m_nth else head
        found = [(j, e) for j, e in entries if next(iter(e)) == name]
        if m_nth:
            n = int(m_nth.group(2))
            found = found[n - 1 : n] if n >= 1 else []
        elif len(found) > 1:
            return (f"--set {item}: the recipe has {len(found)} '{name}' stages; "
                    f"say which with {name}#1, {name}#2 ...")
    if not found:
        return f"--set {item}: no stage {head!r} in the recipe"
    return found[0]


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set`` items to raw recipe data and return the new data.

    ``KEY=VALUE`` with VALUE parsed as YAML. Keys: a top-level key (``seed=3``), a stage
    option (``dedup.threshold=0.9``; ``filter#2.min_chars=5`` for the second filter stage,
    or ``stages[4].key=...``); nested mappings with more dots (``mix.spec.total=200``); an
    input's key (``inputs[0].limit=10``).
    """
    import re

    data = copy.deepcopy(dict(data))
    problems: list[str] = []
    for item in overrides:
        try:
            parts, value = _parse_override(item)
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        head = parts[0]
        if len(parts) == 1:
            if head not in TOP_KEYS or head in ("inputs", "stages"):
                problems.append(f"--set {item}: unknown top-level key {head!r}")
                continue
            data[head] = value
            continue
        m_in = re.fullmatch(r"inputs\[(\d+)\]", head)
        if m_in:
            inputs = data.get("inputs")
            i = int(m_in.group(1))
            if not isinstance(inputs, list) or i >= len(inputs) or not isinstance(inputs[i], Mapping):
                problems.append(f"--set {item}: the recipe has no inputs[{i}] mapping")
            elif len(parts) != 2:
                problems.append(f"--set {item}: inputs take one key (inputs[{i}].limit=10)")
            else:
                inputs[i] = {**inputs[i], parts[1]: value}
            continue
        stages = data.get("stages")
        if not isinstance(stages, list):
            problems.append(f"--set {item}: the recipe has no stages list")
            continue
        found = _find_stage(stages, head, item)
        if isinstance(found, str):
            problems.append(found)
            continue
        j, entry = found
        name = next(iter(entry))
        opts = entry[name]
        if opts is None:
            opts = {}
        if not isinstance(opts, Mapping):
            problems.append(f"--set {item}: stages[{j}].{name} is not a mapping")
            continue
        opts = dict(opts)
        target = opts
        for p in parts[1:-1]:
            sub = target.get(p)
            sub = dict(sub) if isinstance(sub, Mapping) else {}
            target[p] = sub
            target = sub
        target[parts[-1]] = value
        stages[j] = {name: opts}
    if problems:
        raise ConfigError(problems)
    return data


def load_recipe(path: str | Path, overrides: Sequence[str] = (), *, check_files: bool = True) -> Recipe:
    """Read, override and validate a recipe file; raise one ConfigError listing every problem."""
    data = read_recipe_file(path)
    data = apply_overrides(data, overrides)
    p = Path(path)
    return parse_recipe(data, path=p if p.exists() else builtin_recipe(str(path)), check_files=check_files)


# ---------------------------------------------------------------- validation
