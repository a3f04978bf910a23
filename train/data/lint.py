"""Lint loss masks before training: every row is encoded and checked, problems are counted.

Checks (``LINT_KINDS``): the template is missing (a :class:`ThresherError` before any row), a
row renders with an error, prefix renders disagree, no token is trained, a response is cut
by ``max_length``, an end-of-turn token is not trained, non-assistant text is trained, and,
where the template has ``{% generation %}`` markers, the marker mask disagrees with ours.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from thresher.errors import ThresherError
from thresher.train.data.masks import (
    IGNORE_INDEX,
    Example,
    LintIssue,
    Overlong,
    TrainOn,
    encode_conversation,
    generation_mask,
)
from thresher.train.data.templates import require_chat_template

#: every lint kind and what it means (in report order)
LINT_KINDS: dict[str, str] = {
    "template_missing": "the tokenizer has no chat template and no --chat-template was given",
    "render_error": "the chat template fails to render the row",
    "span_mismatch": "prefix renders disagree, so assistant spans cannot be located",
    "no_trainable_token": "no token of the row is trained",
    "response_cut": "the row is longer than --max-length (dropped, or truncated through a response)",
    "reasoning_cut": "truncating to --max-length would cut a reasoning trace (row dropped)",
    "reasoning_too_long": "a reasoning trace is longer than --max-reasoning-tokens (row dropped)",
    "eot_not_trained": "no end-of-turn token after an assistant turn is trained",
    "non_assistant_trained": "text outside the assistant turns is trained",
    "mask_mismatch": "the template's {% generation %} mask disagrees with the prefix-render mask",
}
#: kinds of rows left out or cut for their length: listed (and counted), never a failure
LENGTH_KINDS: frozenset[str] = frozenset({"response_cut", "reasoning_cut", "reasoning_too_long"})
#: kinds that stop training unless --allow-lint-failures (length kinds are only listed)
FAILURE_KINDS: frozenset[str] = frozenset(LINT_KINDS) - LENGTH_KINDS


@dataclass
class LintReport:
    """Result of :func:`lint_rows`.

    ``examples``: the rows that can be trained on, in input order (truncated rows included);
    ``issues``: every problem, in input order (a truncated row appears in both).
    """

    rows: int
    examples: list[Example] = field(default_factory=list)
    issues: list[LintIssue] = field(default_factory=list)
    train_reasoning: bool = True

    @property
    def failures(self) -> list[LintIssue]:
        """Issues that block training unless failures are allowed."""
        return [i for i in self.issues if i.kind in FAILURE_KINDS]

    @property
    def counts(self) -> dict[str, int]:
        """Number of rows per issue kind (kinds with no row are left out)."""
        c = Counter(i.kind for i in self.issues)
        return {k: c[k] for k in LINT_KINDS if c[k]}

    @property
    def ok(self) -> bool:
        """True when no row fails (cut rows do not count as failures)."""
        return not self.failures

    def summary(self) -> str:
        """One line: rows, trainable rows and counts per kind."""
        parts = ", ".join(f"{k}: {n}" for k, n in self.counts.items()) or "no issues"
        traced = [e for e in self.examples if e.traces]
        if not traced:
            return f"{self.rows} rows, {len(self.examples)} trainable ({parts})"
        how = "trained" if self.train_reasoning else "masked"
        return (f"{self.rows} rows, {len(self.examples)} trainable ({parts}); {len(traced)} with reasoning "
                f"traces ({sum(e.n_reasoning for e in traced)} tokens, {how})")

    def check(self, *, allow_failures: bool = False) -> None:
        """Raise :class:`ThresherError` when rows fail and failures are not allowed."""
        if self.failures and not allow_failures:
            kinds = Counter(i.kind for i in self.failures)
            first = self.failures[0]
            raise ThresherError(
                f"{len(self.failures)} of {self.rows} rows fail the mask lint "
                f"({', '.join(f'{k}: {n}' for k, n in kinds.items())}; first: row {first.row_id}: "
                f"{first.message}); run `thresher train lint-masks` to see them, or pass "
                "--allow-lint-failures to skip them"
            )
        if not self.examples:
            raise ThresherError(f"no trainable row left out of {self.rows} ({self.summary()})")

    def to_stats(self, limit: int = 50) -> dict[str, Any]:
        """JSON-able summary for stats.json: counts and the first ``limit`` issues."""
        return {
            "rows": self.rows,
            "trainable_rows": len(self.examples),
            "trained_tokens": sum(e.n_trained for e in self.examples),
            "reasoning_rows": sum(1 for e in self.examples if e.traces),
            "reasoning_tokens": sum(e.n_reasoning for e in self.examples),
            "reasoning_trained": self.train_reasoning,
            "counts": self.counts,
            "issues": [
                {"id": i.row_id, "kind": i.kind, "message": i.message} for i in self.issues[:limit]
            ],
        }


def _iter_rows(rows: Any) -> Iterable[tuple[str, list[Mapping[str, Any]]]]:
    """``(id, messages)`` per row; a ``reasoning`` column (the generate stage's side column)
    becomes the last assistant turn's ``reasoning_content``."""
    from thresher.train.data.masks import with_reasoning

    if hasattr(rows, "iter_rows") and hasattr(rows, "columns"):  # polars DataFrame
        has_id = "id" in rows.columns
        cols = [c for c in ("id", "messages", "reasoning") if c in rows.columns]
        for n, row in enumerate(rows.select(cols).iter_rows(named=True)):
            yield ((str(row["id"]) if has_id and row["id"] is not None else str(n)),
                   with_reasoning(row["messages"], row.get("reasoning")))
        return
    for n, row in enumerate(rows):
        if isinstance(row, Mapping):
            yield str(row.get("id", n)), with_reasoning(row["messages"], row.get("reasoning"))
        else:
            yield str(n), row


def _norm(text: str) -> str:
    """Whitespace collapsed and NFC-normalised: tokenizers that normalise (Qwen2's NFC) decode
    non-NFC content to other code points, which must still count as the same text."""
    import unicodedata

    return " ".join(unicodedata.normalize("NFC", text).split())


def _untrusted_runs(tokenizer: Any, ex: Example, contents: list[str]) -> str | None:
    """Independent check: each run of trained tokens (special tokens aside) is assistant text."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    special.update(int(i) for i in getattr(tokenizer, "added_tokens_decoder", {}) or {})
    normed = [_norm(c) for c in contents]
    run: list[int] = []
    # a run ends at an untrained token only: trained special tokens inside a run (a template
    # header trained by mistake, "<|start_header_id|>assistant<|end_header_id|>") stay in it, so
    # the header's words cannot pass as a separate run that happens to occur in the content
    for tok, lab in [*zip(ex.input_ids, ex.labels), (None, IGNORE_INDEX)]:
        if lab != IGNORE_INDEX:
            if tok not in special:
                run.append(tok)
            elif run:
                run.append(tok)
            continue
        if run:
            text = _norm(
                tokenizer.decode(run, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            )
            if text and not any(text in c for c in normed):
                return f"trained text {text[:60]!r} is not part of any assistant message"
            run = []
    return None


def _assistant_texts(tokenizer: Any, messages: Any) -> list[str]:
    """Text each assistant turn may train: its content (a reasoning trace folded in), or for a
    tool-call turn or a template that renders reasoning itself the template's whole rendering
    of that turn (the calls and the ``<think>`` block are the template's, not in content)."""
    from thresher.train.data.masks import render_text, renders_reasoning, template_turns

    msgs, _ = template_turns(tokenizer, messages)
    native = renders_reasoning(tokenizer)
    out = []
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        if m.get("tool_calls") or native:
            try:
                prefix = render_text(tokenizer, msgs[:i], True)
                out.append(render_text(tokenizer, msgs[: i + 1], False)[len(prefix):])
                continue
            except Exception:  # noqa: BLE001 - the mask step reports template errors
                pass
        out.append(str(m["content"]))
    return out


def _mask_mismatch(tokenizer: Any, messages: Any, ex: Example, train_on: str,
                   train_reasoning: bool = True) -> str | None:
    if any(m.get("weight") is not None and float(m["weight"]) == 0 for m in messages):
        return None  # the {% generation %} mask knows nothing of per-turn weights
    if ex.traces and not train_reasoning:
        return None  # nor of masked reasoning traces
    gen = generation_mask(tokenizer, messages)
    if gen is None:
        return None
    ours = [int(x != IGNORE_INDEX) for x in ex.labels]
    gen = gen[: len(ours)]
    if train_on == "last" and 1 in ours:  # compare the last turn only
        first = ours.index(1)
        gen = [0] * first + gen[first:]
    if len(gen) != len(ours):
        return f"the {{% generation %}} render has {len(gen)} tokens, the prefix render {len(ours)}"
    diff = [t for t, (a, b) in enumerate(zip(ours, gen)) if a != b]
    if diff:
        return f"{len(diff)} tokens differ between the {{% generation %}} mask and the prefix-render mask (first: token {diff[0]})"
    return None


def lint_rows(
    tokenizer: Any,
    rows: Any,
    *,
    max_length: int,
    train_on: TrainOn = "all",
    overlong: Overlong = "drop",
    check_generation: bool = True,
    allow_special_in_content: bool = False,
    train_reasoning: bool = True,
    max_reasoning_tokens: int = 0,
) -> LintReport:
    """Encode and lint every row; rows are a DataFrame (``id``, ``messages``) or an iterable.

    Raises :class:`ThresherError` (``template_missing``) when the tokenizer has no chat template.
    Where the template has ``{% generation %}`` markers and ``check_generation``, each row's
    mask is compared with ``apply_chat_template(return_assistant_tokens_mask=True)`` (not for
    rows whose content holds special-token strings: those are tokenized as text here, see
    :func:`encode_conversation`, while the template's own tokenization makes them control tokens).
    Reasoning traces (``reasoning_content``, or a ``reasoning`` column) are trained, or masked
    with ``train_reasoning=False``; see :func:`encode_conversation` for ``max_reasoning_tokens``.
    """
    from thresher.chat_tokens import has_special_text

    require_chat_template(tokenizer)
    report = LintReport(rows=0, train_reasoning=train_reasoning)
    for row_id, messages in _iter_rows(rows):
        report.rows += 1
        out = encode_conversation(
            tokenizer,
            messages,
            max_length=max_length,
            train_on=train_on,
            overlong=overlong,
            row_id=row_id,
            allow_special_in_content=allow_special_in_content,
            train_reasoning=train_reasoning,
            max_reasoning_tokens=max_reasoning_tokens,
        )
        if isinstance(out, LintIssue):
            report.issues.append(out)
            continue
        contents = _assistant_texts(tokenizer, messages)
        why = _untrusted_runs(tokenizer, out, contents)
        if why:
            report.issues.append(LintIssue(row_id, "non_assistant_trained", why, out))
            continue
        protected = not allow_special_in_content and has_special_text(tokenizer, messages)
        if check_generation and not out.cut and len(out) == out.n_full and not protected:
            why = _mask_mismatch(tokenizer, messages, out, train_on, train_reasoning)
            if why:
                report.issues.append(LintIssue(row_id, "mask_mismatch", why, out))
                continue
        if out.cut:
            report.issues.append(
                LintIssue(
                    row_id,
                    "response_cut",
                    f"{out.n_full} tokens truncated to --max-length {len(out)}: a response loses its end-of-turn",
                    out,
                )
            )
        report.examples.append(out)
    return report


def render_token_view(
    tokenizer: Any, example: Example, *, max_tokens: int = 300, marks: bool = False
) -> Any:
    """A rich ``Text`` of the row's tokens: trained tokens highlighted green, others dim.

    Newlines show as ``\\n`` followed by a real line break; special tokens are bold. With
    ``marks`` (for output without colours) trained runs are also wrapped in ``«`` ``»``.
    """
    from rich.text import Text

    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    special.update(int(i) for i in getattr(tokenizer, "added_tokens_decoder", {}) or {})
    text = Text()
    prev = False
    for tok, lab in list(zip(example.input_ids, example.labels))[:max_tokens]:
        trained = lab != IGNORE_INDEX
        if marks and trained != prev:
            text.append("«" if trained else "»", style="bold")
        prev = trained
        piece = tokenizer.decode([tok], clean_up_tokenization_spaces=False)
        piece = piece.replace("\n", "\\n\n")
        style = "bold black on green" if trained else "dim"
        if tok in special:
            style += " bold"
        text.append(piece, style=style)
    if marks and prev:
        text.append("»", style="bold")
    if len(example) > max_tokens:
        text.append(f" … ({len(example) - max_tokens} more tokens)", style="italic")
    return text


def print_report(
    report: LintReport, tokenizer: Any, console: Any, *, show: int = 3, list_issues: int = 20
) -> None:
    """Print counts, the first issues and a token view of a few rows (failing ones first)."""
    from rich.table import Table

    table = Table(title="mask lint", show_lines=False)
    table.add_column("check")
    table.add_column("rows", justify="right")
    table.add_row("rows", str(report.rows))
    table.add_row("trainable", str(len(report.examples)))
    for kind in LINT_KINDS:
        if kind == "template_missing":
            continue
        n = report.counts.get(kind, 0)
        style = "red" if n and kind in FAILURE_KINDS else ("yellow" if n else "")
        table.add_row(kind, f"[{style}]{n}[/{style}]" if style else str(n))
    console.print(table)
    for issue in report.issues[:list_issues]:
        console.print(
            f"row {issue.row_id}: {issue.kind}: {issue.message}", markup=False, highlight=False
        )
    if len(report.issues) > list_issues:
        console.print(f"... and {len(report.issues) - list_issues} more issues")
    views = [(i.row_id, i.kind, i.example) for i in report.issues if i.example is not None][:show]
    views += [(e.row_id, "ok", e) for e in report.examples[: max(0, show - len(views))]]
    for row_id, kind, ex in views:
        console.rule(f"row {row_id} ({kind}): {ex.n_trained} of {len(ex)} tokens trained")
        console.print(render_token_view(tokenizer, ex, marks=not console.is_terminal))
