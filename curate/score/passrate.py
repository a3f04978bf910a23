"""Pass rate per prompt: the share of a prompt's samples that pass a verifier, written on
every sample of the prompt (``score_passrate``, or ``score_NAME``).

Spec: ``[NAME=]passrate:WHAT`` where WHAT is

- the name of a verify scorer of the same stage (``--scorer m=verify:math --scorer passrate:m``),
- a score column already on the rows (``passrate:score_m`` or ``passrate:m``), or
- a verifier of its own (``passrate:verify:math``).

A sample passes when its score is 1 (a verifier's pass; above 0.5 for other 0/1 columns);
samples without a score (no answer, no reference) do not count. Samples of one prompt
share its ``parent_id`` (rows without one are prompts of their own, by ``id``).

Difficulty against the student: with ``passrate_from: {NAME: ROWS}`` the rate is computed
on other rows, e.g. the student's answers to the same prompts (a second generate stage), and
joined back to these rows through the prompt id (their ``parent_id``): a prompt the student
already solves has a student pass rate of 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thresher.errors import ThresherError

from .base import ScoreResult

KEY_COLUMNS = ("parent_id", "id")


def prompt_keys(table) -> list[str]:
    """Each row's prompt: its ``parent_id``, else its own ``id``."""
    ids = [str(x) for x in table["id"].to_list()] if "id" in table.columns else [str(i) for i in range(table.height)]
    if "parent_id" not in table.columns:
        return ids
    return [str(p) if p is not None else i for p, i in zip(table["parent_id"].to_list(), ids)]


def passed(value: float | None) -> bool | None:
    """Whether a score counts as a pass (None: no score, not counted)."""
    if value is None or value != value:  # NaN
        return None
    return value > 0.5


def rates_by_prompt(keys: Sequence[str], values: Sequence[float | None]) -> dict[str, tuple[int, int]]:
    """``prompt -> (samples passing, samples with a score)``."""
    out: dict[str, list[int]] = {}
    for k, v in zip(keys, values):
        ok = passed(v)
        cell = out.setdefault(k, [0, 0])
        if ok is not None:
            cell[0] += ok
            cell[1] += 1
    return {k: (p, n) for k, (p, n) in out.items()}


def rate_results(keys: Sequence[str], rates: dict[str, tuple[int, int]], source: str) -> list[ScoreResult]:
    """One result per row: its prompt's pass rate, or why there is none."""
    out = []
    for k in keys:
        p, n = rates.get(k, (0, 0))
        if k not in rates:
            out.append(ScoreResult(None, f"prompt {k} has no samples in {source}"))
        elif n == 0:
            out.append(ScoreResult(None, f"prompt {k} has no scored sample"))
        else:
            out.append(ScoreResult(p / n, None))
    return out


def prompt_summary(keys: Sequence[str], rates: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Per-prompt figures for stats.json: prompts, the share at 0 and at 1, and a histogram."""
    from thresher.histogram import histogram

    seen = [rates[k] for k in dict.fromkeys(keys) if k in rates and rates[k][1] > 0]
    values = [p / n for p, n in seen]
    if not values:
        return {"prompts": 0}
    return {"prompts": len(values), "mean": sum(values) / len(values),
            "none_pass": sum(v == 0 for v in values), "all_pass": sum(v == 1 for v in values),
            "histogram": histogram(values)}


def sample_values(what: str, rows, where: str, stage_scorers: dict[str, Any], *, own_rows: bool,
                  skip: bool) -> list[float | None]:
    """Per-row pass values of ``rows`` for the passrate argument ``what`` (module docstring).

    ``stage_scorers`` are the stage's verify scorers by name; ``own_rows`` says ``rows`` are
    the stage's own (their ``score_NAME`` columns are already filled)."""
    from .verify import VerifyScorer

    scorer = None
    if what.startswith("verify:"):
        scorer = VerifyScorer(what.removeprefix("verify:"), name=what)
    elif what in stage_scorers and not own_rows:
        scorer = stage_scorers[what]
    if scorer is not None:
        results, _ = scorer.score_table(rows, where, skip=skip)
        return [r.score for r in results]
    for col in (what if what.startswith("score_") else f"score_{what}", what):
        if col in rows.columns:
            if not rows[col].dtype.is_numeric():
                raise ThresherError(f"{where}: passrate:{what}: column {col!r} is {rows[col].dtype}, not numeric")
            import polars as pl

            return rows[col].cast(pl.Float64).to_list()
    have = sorted(c for c in rows.columns if c.startswith("score_")) or ["none"]
    raise ThresherError(f"{where}: passrate:{what}: no verify scorer or column {what!r} "
                        f"(score columns: {', '.join(have)})")


def read_rows_from(path: str | Path):
    """The rows a ``passrate_from`` entry names (a file or a stage folder)."""
    from thresher.io.inputs import read_inputs

    table, _ = read_inputs([Path(path)], {"on_bad_rows": "skip"})
    return table
