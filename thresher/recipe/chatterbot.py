"""The chatterbot-corpus package as a recipe input (``chatterbot: english``): its files and
its conversations as records.

Its own module, so that the recipe schema can check a ``chatterbot:`` input's language and
categories without importing the inputs step (which imports the schema).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from thresher.errors import InputError, ThresherError


def chatterbot_dir(language: str) -> Path:
    """The folder of chatterbot-corpus YAML files for ``language`` (``english`` ...)."""
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or spec.origin is None:
        raise ThresherError("chatterbot-corpus is not installed (pip install chatterbot-corpus)")
    root = Path(spec.origin).parent / "data"
    folder = root / language
    if not folder.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise ThresherError(f"no language {language!r} in chatterbot-corpus (known: {', '.join(known)})")
    return folder


def chatterbot_files(language: str, categories: tuple[str, ...] = ()) -> list[Path]:
    """The YAML files for ``language``, restricted to ``categories`` (file stems) if given."""
    folder = chatterbot_dir(language)
    files = {p.stem: p for p in sorted(folder.glob("*.yml"))}
    missing = [c for c in categories if c not in files]
    if missing:
        raise ThresherError(
            f"unknown categories {', '.join(missing)} (known: {', '.join(files)})"
        )
    return [files[c] for c in categories] if categories else list(files.values())


def read_chatterbot(language: str, categories: tuple[str, ...] = (), *, responses: bool = False) -> list[dict[str, Any]]:
    """Read chatterbot-corpus conversations as records with ``messages`` and ``category``.

    With ``responses`` false each conversation gives its opening question as a prompt
    (repeated questions once); with ``responses`` true the utterances alternate user and
    assistant turns (the corpus's own, noisy answers). Records are interleaved across
    categories so that taking the first N stays balanced.
    """
    import yaml

    per_cat: list[list[dict[str, Any]]] = []
    for path in chatterbot_files(language, categories):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: cannot read chatterbot file ({e})") from None
        seen: set[str] = set()
        recs: list[dict[str, Any]] = []
        for conv in data.get("conversations") or []:
            if not isinstance(conv, list):
                continue
            turns = [str(t).strip() for t in conv if t is not None and str(t).strip()]
            if not turns:
                continue
            if responses:
                if len(turns) < 2:
                    continue
                turns = turns[: len(turns) // 2 * 2]
                msgs = [
                    {"role": "user" if k % 2 == 0 else "assistant", "content": t}
                    for k, t in enumerate(turns)
                ]
            else:
                if turns[0] in seen:
                    continue
                seen.add(turns[0])
                msgs = [{"role": "user", "content": turns[0]}]
            recs.append({"messages": msgs, "category": path.stem})
        per_cat.append(recs)
    out: list[dict[str, Any]] = []
    for k in range(max((len(r) for r in per_cat), default=0)):
        out.extend(r[k] for r in per_cat if k < len(r))
    return out
