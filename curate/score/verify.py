"""Verifier scorer: a programmatic check of the response with any of ``thresher eval``'s
verifiers, 1.0 pass, 0.0 fail (rejection sampling: ``filter`` keeps rows with
``min_scores: {score_NAME: 1}`` or ``only_passing: score_NAME``).

- response-only: ``sentences:1-2``, ``words:5-40``, ``json``, ``lang:en``, ``regex:PATTERN``;
- against the row's ``reference`` column: ``math`` (math-verify), ``numeric[:TOL]``,
  ``exact``, ``regex`` (the reference is the pattern);
- ``code[:TIMEOUT_S]``: the answer's code passes the row's ``tests`` (``entry_point``), run
  through :func:`thresher.evaluate.verifiers.code_passes` in parallel workers;
- ``ends``: the row's ``finish_reason`` says the answer ended by itself.

Every verifier but ``ends`` judges the answer after its reasoning block. A row without the
reference (or tests) its verifier needs is a one-line error naming it, or, under
``--on-bad-rows skip``, a dropped row (``drop_code`` ``no-reference`` / ``no-tests``).
"""

from __future__ import annotations

from collections.abc import Sequence

from thresher.errors import ThresherError

from .base import BatchCallback, Conversation, ScoreResult, split_response

#: needed column -> (drop_code, what it is)
NEEDS = {"reference": ("no-reference", "a reference answer"), "tests": ("no-tests", "tests"),
         "finish_reason": ("no-finish-reason", "a finish_reason")}


class VerifyScorer:
    """``score_<name>`` = 1.0 when the verifier passes the final assistant turn."""

    kind = "verify"

    def __init__(self, spec: str | None, *, name: str = "verify", workers: int | None = None, **unused):
        from thresher.evaluate.judges import JudgeSpecError, parse_judge

        if not spec:
            raise ThresherError("verify scorer needs a verifier, e.g. verify:sentences:1-2")
        try:
            self.judge = parse_judge(spec)
        except JudgeSpecError as e:
            raise ThresherError(f"scorer verify:{spec}: {e}") from None
        if not self.judge.is_verifier:
            raise ThresherError(f"scorer verify:{spec}: {self.judge.kind} is not a verifier (use math, numeric, "
                                "exact, regex, code, ends, sentences, words, json or lang)")
        self.name = name
        self.spec = spec
        self.workers = workers
        self._fn = self.judge.verifier()

    @property
    def identity(self) -> str:
        return f"verify|{self.spec}"

    @property
    def label(self) -> str:
        """How errors name this scorer: ``scorer m (verify:math)``."""
        return f"scorer {self.name} (verify:{self.spec})"

    def needed(self) -> list[str]:
        """The row columns this verifier reads besides the messages."""
        j = self.judge
        return [c for c, need in (("reference", j.needs_reference), ("tests", j.needs_tests),
                                  ("finish_reason", j.needs_finish_reason)) if need]

    def check_table(self, columns: Sequence[str], where: str) -> None:
        """A one-line error when the rows lack a column the verifier needs."""
        for col in self.needed():
            if col not in columns:
                hint = {"reference": " (give the prompts a reference, answer, solution or ideal column)",
                        "tests": " (give the prompts a tests or test column, with entry_point)",
                        "finish_reason": " (rows from thresher distill generate have one)"}[col]
                raise ThresherError(f"{where}: {self.label} needs a {col!r} column and the rows have none{hint}")

    def score_table(self, table, where: str, *, skip: bool = False) -> tuple[list[ScoreResult], dict[int, tuple]]:
        """Scores of every row of ``table`` (a polars frame), and the rows rejected for a missing
        reference or tests (position -> ``(drop_code, reason)``; only with ``skip``, else the
        first such row raises a one-line error naming it)."""
        from thresher.evaluate.batch import verify_all
        from thresher.evaluate.verifiers import Item

        self.check_table(table.columns, where)
        col = {c: table[c].to_list() if c in table.columns else [None] * table.height
               for c in ("reference", "tests", "entry_point", "finish_reason")}
        ids = table["id"].to_list() if "id" in table.columns else [None] * table.height
        rows = table["__thresher_row"].to_list() if "__thresher_row" in table.columns else range(table.height)
        todo, answers, items, rejects = [], [], [], {}
        results: list[ScoreResult] = [ScoreResult(None, "no final assistant turn to score")] * table.height
        for i, conv in enumerate(table["messages"].to_list()):
            prompt, resp = split_response(conv)
            missing = next((c for c in self.needed() if c != "finish_reason"
                            and not str(col[c][i] or "").strip()), None)
            if missing is not None:
                code, what = NEEDS[missing]
                reason = f"{self.label} needs {what} and the row has none"
                if not skip:
                    rid = f" (id {ids[i]})" if ids[i] is not None else ""
                    raise ThresherError(f"{where}: row {int(rows[i]) + 1}{rid}: {reason} "
                                        "(--on-bad-rows skip drops such rows)")
                rejects[i] = (code, reason)
                results[i] = ScoreResult(None, reason)
                continue
            if resp is None:
                continue
            todo.append(i)
            answers.append(resp["content"])
            items.append(Item(reference=col["reference"][i], finish_reason=col["finish_reason"][i],
                              tests=col["tests"][i], entry_point=col["entry_point"][i],
                              prompt=prompt[-1]["content"] if prompt else None))
        values = verify_all(self._fn, answers, items, parallel=self.judge.kind == "code", workers=self.workers)
        for i, value in zip(todo, values):
            results[i] = ScoreResult(value, None)
        return results, rejects

    def score(self, conversations: Sequence[Conversation], on_batch: BatchCallback | None = None) -> list[ScoreResult]:
        """Response-only verifiers over bare conversations (no reference, tests or finish reason)."""
        from thresher.evaluate.verifiers import Item

        if self.needed():
            raise ThresherError(f"{self.label} needs the rows' {', '.join(self.needed())}: use score_table")
        out = []
        for conv in conversations:
            _, resp = split_response(conv)
            out.append(ScoreResult(float(self._fn(resp["content"], Item())), None) if resp is not None
                       else ScoreResult(None, "no final assistant turn to score"))
        if on_batch is not None:
            on_batch(list(range(len(out))), out)
        return out
