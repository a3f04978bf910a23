"""Reference answers and tests that travel with the rows (verified distillation).

Prompt files often carry what a verifier needs: a reference answer (``reference``,
``answer``, ``solution`` or ``ideal``) and, for code, tests (``tests``, ``test`` or MBPP's
``test_list``) with an ``entry_point`` (HumanEval). :func:`normalize_references` gives them
one name each, the provenance columns of :data:`REFERENCE_COLUMNS`:

- ``reference``: the reference answer (text). A reference that is a worked solution keeps
  only its final answer here: the GSM8K ``#### 42`` line, else the last ``\\boxed{...}``;
- ``reference_solution``: the full solution text the answer was taken from (only then);
- ``tests``: the test code (a list of asserts is joined, one per line);
- ``entry_point``: the function the tests call (``check(entry_point)``).

Every stage keeps these columns; ``generate`` copies them from each prompt to its samples.
"""

from __future__ import annotations

import json
import re
from typing import Any

import polars as pl

#: the normalised provenance columns, in order
REFERENCE_COLUMNS: tuple[str, ...] = ("reference", "reference_solution", "tests", "entry_point")
#: input column names read as the reference answer, in order of preference
REFERENCE_ALIASES: tuple[str, ...] = ("reference", "answer", "solution", "ideal")
#: input column names read as the tests, in order of preference
TESTS_ALIASES: tuple[str, ...] = ("tests", "test", "test_list")

#: every input column this module reads (allowed beside a forced record format's own keys)
INPUT_KEYS: tuple[str, ...] = (*REFERENCE_ALIASES, *TESTS_ALIASES, "entry_point", "reference_solution")

_GSM8K = re.compile(r"####\s*(.+?)\s*$", re.S)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces
    balanced; None when there is none or it is never closed."""
    starts = [m.end() for m in _BOXED.finditer(text or "")]
    if not starts:
        return None
    i = start = starts[-1]
    depth = 1
    while i < len(text):
        c = text[i]
        if c == "\\":  # an escaped brace \{ does not count
            i += 2
            continue
        depth += c == "{"
        depth -= c == "}"
        if depth == 0:
            return text[start:i].strip()
        i += 1
    return None


def solution_answer(text: str) -> str | None:
    """The final answer a worked solution states: GSM8K's ``#### ANSWER`` line, else the
    last ``\\boxed{}``; None when it states none (the text is then the answer itself)."""
    if not isinstance(text, str):
        return None
    m = _GSM8K.search(text)
    if m:
        return m.group(1).strip()
    return last_boxed(text)


def _as_text(value: Any, joiner: str | None = None) -> str | None:
    """A cell as text: strings as they are, numbers in their shortest form, a list joined
    by ``joiner`` (else its first item), anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (list, tuple)):
        items = [_as_text(v) for v in value if v is not None]
        if joiner is not None:
            return joiner.join(i for i in items if i)
        return items[0] if items else None
    return json.dumps(value, ensure_ascii=False, default=str)


def _text_column(df: pl.DataFrame, col: str, joiner: str | None = None) -> pl.Series:
    if df.schema[col] == pl.String:
        return df[col]
    return pl.Series(col, [_as_text(v, joiner) for v in df[col].to_list()], dtype=pl.String)


def _reference_cells(candidates: list[str | None]) -> tuple[str | None, str | None]:
    """``(reference, reference_solution)`` of one row from its reference columns' texts, in
    the order of :data:`REFERENCE_ALIASES`: the first given text (its final answer when it is
    a worked solution), and the first text that is a worked solution."""
    given = [t for t in candidates if t is not None and t.strip()]
    if not given:
        return None, None
    solution = next((t for t in given if solution_answer(t) is not None), None)
    first = given[0]
    return (solution_answer(first) or first), solution


def normalize_references(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with its reference, solution and test columns under the names of
    :data:`REFERENCE_COLUMNS` (the module docstring): per row, the first of ``reference``,
    ``answer``, ``solution``, ``ideal`` that it gives is the reference. Tables already
    normalised (or with none of these columns) come back unchanged."""
    cols = set(df.columns)
    out: dict[str, pl.Series] = {}
    drop: list[str] = []
    ref_cols = [c for c in REFERENCE_ALIASES if c in cols]
    if ref_cols and "reference_solution" not in cols:
        texts = [_text_column(df, c).to_list() for c in ref_cols]
        cells = [_reference_cells(list(row)) for row in zip(*texts)]
        out["reference"] = pl.Series("reference", [r for r, _ in cells], dtype=pl.String)
        if any(sol is not None for _, sol in cells):
            out["reference_solution"] = pl.Series("reference_solution", [s for _, s in cells], dtype=pl.String)
        drop += ref_cols
    tests_col = next((c for c in TESTS_ALIASES if c in cols), None)
    if tests_col is not None and (tests_col != "tests" or df.schema[tests_col] != pl.String):
        out["tests"] = _text_column(df, tests_col, joiner="\n").alias("tests")
        drop.append(tests_col)
    if "entry_point" in cols and df.schema["entry_point"] != pl.String:
        out["entry_point"] = _text_column(df, "entry_point")
    if not out:
        return df
    df = df.drop([c for c in drop if c not in out])
    return df.with_columns(list(out.values()))
