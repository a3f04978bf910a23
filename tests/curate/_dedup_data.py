"""Real offline text for the dedup tests: distinct paragraphs of CPython's pydoc topics."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path


def _shingles(text: str, n: int = 5) -> set[str]:
    w = re.sub(r"[^\w\s]+", " ", text.casefold()).split()
    return {" ".join(w[i:i + n]) for i in range(max(len(w) - n + 1, 1))}


@functools.lru_cache(maxsize=1)
def paragraphs(min_words: int = 60, limit: int = 120) -> tuple[str, ...]:
    """Up to ``limit`` real English paragraphs whose pairwise 5-shingle Jaccard is below 0.3."""
    from pydoc_data.topics import topics

    out: list[str] = []
    sets: list[set[str]] = []
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[key]):
            text = " ".join(para.split())
            if len(text.split()) < min_words or text.startswith(("*", "Changed", "New in")):
                continue
            s = _shingles(text)
            if any(len(s & t) / len(s | t) >= 0.3 for t in sets):
                continue
            out.append(text)
            sets.append(s)
            if len(out) >= limit:
                return tuple(out)
    return tuple(out)


def conv(rid: str, user: str, assistant: str, **extra) -> dict:
    return {"id": rid, "messages": [{"role": "user", "content": user},
                                    {"role": "assistant", "content": assistant}], **extra}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def planted_rows(n_distinct: int = 60) -> tuple[list[dict], dict[str, str]]:
    """Distinct rows ``p0..`` plus planted duplicates of the first 15 -> (rows, dup id -> original id).

    Variants: ``e*`` differ only in case, punctuation and spacing (exact after normalisation);
    ``n*`` change the last word; ``b*`` add a boilerplate sentence at the end.
    """
    if n_distinct < 15:
        raise ValueError("planted_rows needs n_distinct >= 15")
    paras = paragraphs()[:n_distinct]
    rows = [conv(f"p{i}", "Explain this part of the Python docs.", t) for i, t in enumerate(paras)]
    truth: dict[str, str] = {}
    for i in range(5):
        t = paras[i].upper().replace(" ", "  ").replace(".", " ;")
        rows.append(conv(f"e{i}", "explain THIS part of the python docs", t))
        truth[f"e{i}"] = f"p{i}"
    for i in range(5, 10):
        w = paras[i].split()
        w[-1] = "elephant"
        rows.append(conv(f"n{i}", "Explain this part of the Python docs.", " ".join(w)))
        truth[f"n{i}"] = f"p{i}"
    for i in range(10, 15):
        rows.append(conv(f"b{i}", "Explain this part of the Python docs.", paras[i] + " Hope this helps!"))
        truth[f"b{i}"] = f"p{i}"
    return rows, truth
