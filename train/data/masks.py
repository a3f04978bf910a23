"""Render a conversation with the student's chat template and build its loss mask.

Labels are set only on assistant content plus the end-of-turn token(s) that close it
(``<|im_end|>``, ``<|eot_id|>``, ``</s>`` ...); system and user text, template scaffolding
and anything after the end-of-turn token (a trailing newline) are ``-100``.

Assistant spans are found by rendering prefixes turn by turn, so any template works, with or
without ``{% generation %}`` markers:

- ``prefix``  = render(messages[:i], add_generation_prompt=True)   (ends with the assistant header)
- ``upto``    = render(messages[:i+1])                              (ends after turn i's closing text)
- ``empty``   = render(messages[:i] + [assistant ""])               (gives the closing text alone)

For a conversation that starts with an assistant turn, ``prefix`` is the text before a
placeholder content in the rendering of that turn alone (the default system prompt and the
assistant header are never trained).

The content is ``upto[len(prefix):len(upto)-len(tail)]`` with ``tail = empty[len(prefix):]``;
in the tail, tokens up to and including the last special (added) token are trained. The whole
conversation is tokenized once (``add_special_tokens=False``, as ``apply_chat_template`` does)
and characters are mapped to tokens through the offsets, so BPE merges cannot shift a span.

Leading whitespace of an answer: SmolLM2's and Qwen2's BPE merge the header's final ``\n``
with an answer's leading newline or spaces into one token that straddles both. That token is
masked as the template's (not trained); the answer's text is kept as it is. A straddling token
that carries answer text (a header ending in a space, then ``" Paris"``), or one across the end
of the answer, is still a ``non_assistant_trained`` lint failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

IGNORE_INDEX = -100

TrainOn = Literal["all", "last"]
Overlong = Literal["drop", "truncate"]


@dataclass(frozen=True)
class Example:
    """One tokenized conversation: ``labels`` is ``-100`` wherever the token is not trained.

    ``cut`` is True when ``overlong="truncate"`` cut through an assistant response (its
    end-of-turn token is lost); ``n_full`` is the length before truncation.
    """

    input_ids: list[int]
    labels: list[int]
    row_id: str = ""
    cut: bool = False
    n_full: int = 0
    traces: tuple[tuple[int, int], ...] = ()
    """Token ranges ``[start, end)`` of the reasoning traces (``<think>`` blocks) of the
    trained turns, their closing marker included; trained unless ``train_reasoning=False``."""

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_reasoning(self) -> int:
        """Tokens in the reasoning traces of the trained turns."""
        return sum(b - a for a, b in self.traces)

    @property
    def n_trained(self) -> int:
        """How many tokens carry a label."""
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


@dataclass(frozen=True)
class LintIssue:
    """Why a row cannot be used as is. ``kind`` is one of ``lint.LINT_KINDS``.

    ``example`` holds the tokens and labels computed so far (for the token view) when there are
    some.
    """

    row_id: str
    kind: str
    message: str
    example: Example | None = field(default=None, repr=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def render_text(tokenizer: Any, messages: Sequence[Mapping[str, str]], gen: bool) -> str:
    """The chat template's text of ``messages`` (``gen``: with the generation prompt)."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=gen)


def _special_ids(tokenizer: Any) -> frozenset[int]:
    """Ids of added/special tokens (the candidates for end-of-turn tokens), cached per tokenizer."""
    cached = getattr(tokenizer, "_thresher_special_ids", None)
    if cached is not None:
        return cached
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids.update(int(i) for i in getattr(tokenizer, "added_tokens_decoder", {}) or {})
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    result = frozenset(ids)
    try:
        tokenizer._thresher_special_ids = result
    except AttributeError:  # pragma: no cover - slotted tokenizer
        pass
    return result


def _clean(messages: Any) -> list[dict[str, Any]]:
    """Messages for the template: tool calls (arguments as objects), tool_call_id, name and
    reasoning_content kept; null fields and ``weight`` dropped."""
    from thresher.io.chat import template_messages

    return template_messages(messages)


def _trained_turns(messages: Any, train_on: str) -> list[int]:
    """Assistant turns to train: every one (``all``) or the last (``last``), skipping turns
    with ``weight`` 0 (axolotl's "do not train this turn")."""
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"
             and (m.get("weight") is None or float(m["weight"]) > 0)]
    return turns[-1:] if train_on == "last" else turns


def _tool_calls_dropped(tokenizer: Any, msgs: list[dict[str, Any]], full: str) -> str | None:
    """Why the rendering loses tool calls (the template does not render them), else None."""
    for m in msgs:
        for call in m.get("tool_calls") or []:
            if call["function"]["name"] not in full:
                return (f"the chat template does not render tool calls (tool {call['function']['name']!r} "
                        "missing from the text); pass --chat-template with tool-call support")
    return None


@dataclass
class _Span:
    turn: int  # index of the assistant message
    start: int  # char where the assistant content starts (after the header)
    content_end: int  # char where the content ends (start of the closing text)
    end: int  # char where this turn's rendering ends
    tail_found: bool


def _assistant_spans(
    tokenizer: Any, msgs: list[dict[str, str]], full: str, turns: list[int]
) -> tuple[list[_Span], str | None]:
    """Char spans of the assistant turns ``turns`` inside ``full``, or (partial, why not)."""
    spans: list[_Span] = []
    for i in turns:
        prefix = render_text(tokenizer, msgs[:i], True) if i > 0 else _render_first_prefix(tokenizer, msgs[0])
        upto = full if i == len(msgs) - 1 else render_text(tokenizer, msgs[: i + 1], False)
        if not upto.startswith(prefix) or not full.startswith(upto):
            located = _span_in_place(tokenizer, msgs, full, i)
            if located is None:
                return spans, (
                    f"turn {i + 1}: the template renders earlier turns differently once later turns "
                    "are added, so the assistant text cannot be located by prefix renders"
                )
            spans.append(located)
            continue
        try:
            empty = render_text(tokenizer, msgs[:i] + [{"role": "assistant", "content": ""}], False)
        except Exception:  # noqa: BLE001 - a template may reject empty content
            empty = None
        tail = empty[len(prefix) :] if empty is not None and empty.startswith(prefix) else None
        content_end = len(upto)
        tail_found = False
        if tail is not None and upto.endswith(tail) and len(upto) - len(tail) >= len(prefix):
            content_end = len(upto) - len(tail)
            tail_found = True
        spans.append(_Span(i, len(prefix), content_end, len(upto), tail_found))
    return spans, None


_HOLE = "THRESHERANSWERHOLE"


def _span_in_place(tokenizer: Any, msgs: list[dict[str, Any]], full: str, i: int) -> _Span | None:
    """Turn ``i``'s span found inside the whole rendering, for templates whose prefix renders
    disagree with it (Qwen3 renders the final turn with a ``<think>`` block, earlier turns
    without): the conversation is rendered with turn ``i``'s content as a placeholder, and the
    text around it must equal ``full``'s. The closing text is the special token(s) right after
    the content (and the whitespace after them). None when the content cannot be located."""
    import re

    content = msgs[i]["content"]
    try:
        skel = render_text(tokenizer, [*msgs[:i], {**msgs[i], "content": _HOLE}, *msgs[i + 1:]], False)
    except Exception:  # noqa: BLE001 - the caller reports the mismatch
        return None
    k = skel.find(_HOLE)
    after = skel[k + len(_HOLE):]
    if k < 0 or skel.count(_HOLE) != 1 or not full.startswith(skel[:k]) or not full.endswith(after) \
            or len(full) - len(after) - k != len(content) or full[k:k + len(content)] != content:
        return None
    from thresher.chat_tokens import special_token_strings

    specials = special_token_strings(tokenizer)  # control tokens only, longest first
    if not specials or msgs[i].get("tool_calls"):  # calls follow the content: not handled here
        return None
    closing = re.match("(?:" + "|".join(map(re.escape, specials)) + r")+\s*", full[k + len(content):])
    if closing is None:
        return None
    return _Span(i, k, k + len(content), k + len(content) + closing.end(), False)



def _render_first_prefix(tokenizer: Any, first: dict[str, Any]) -> str:
    """The template text before the content of a conversation's first message (an assistant
    turn): a default system prompt and the assistant header. Rendering ``[]`` does not work
    (transformers refuses an empty conversation), so the first message is rendered with a
    placeholder content and the text before it is the prefix."""
    try:
        skeleton = render_text(tokenizer, [{**first, "content": _HOLE}], False)
    except Exception:  # noqa: BLE001 - the full render reports template errors
        return ""
    k = skeleton.find(_HOLE)
    return skeleton[:k] if k >= 0 else ""


def encode_conversation(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    *,
    max_length: int,
    train_on: TrainOn = "all",
    overlong: Overlong = "drop",
    row_id: str = "",
    allow_special_in_content: bool = False,
    train_reasoning: bool = True,
    max_reasoning_tokens: int = 0,
) -> Example | LintIssue:
    """Tokenize ``messages`` with the tokenizer's chat template and mask the labels.

    ``train_on="all"`` trains every assistant turn, ``"last"`` only the final one. A rendering
    longer than ``max_length`` tokens is dropped (``overlong="drop"``: a ``response_cut``
    issue) or truncated (``"truncate"``: an :class:`Example` with ``cut=True`` when an
    assistant response lost its end). Returns a :class:`LintIssue` when the row cannot be
    trained on (``render_error``, ``span_mismatch``, ``no_trainable_token``,
    ``eot_not_trained``, ``non_assistant_trained``, ``response_cut``).

    Special-token strings typed inside message content (``"<|im_end|>"``) are tokenized as
    ordinary text, never as control tokens (see :mod:`thresher.chat_tokens`), unless
    ``allow_special_in_content``.

    An assistant turn's ``reasoning_content`` is rendered the way the template expects (see
    :func:`template_turns`) and trained like the answer, or masked with
    ``train_reasoning=False``. A trace longer than ``max_reasoning_tokens`` (0 = no limit)
    drops the row (``reasoning_too_long``); truncation that would cut a trace drops it too
    (``reasoning_cut``): a trace is never trained without its end and its answer.
    """
    if train_on not in ("all", "last"):
        raise ValueError(f"train_on must be 'all' or 'last', got {train_on!r}")
    if overlong not in ("drop", "truncate"):
        raise ValueError(f"overlong must be 'drop' or 'truncate', got {overlong!r}")
    msgs, answers = template_turns(tokenizer, messages)
    turns = _trained_turns(messages, train_on)
    located = _render_spans(tokenizer, msgs, turns, row_id)
    if isinstance(located, LintIssue):
        return located
    offsets: list[tuple[int, int]] = []
    example = _encode_and_label(tokenizer, msgs, *located, row_id, allow_special_in_content, offsets)
    if isinstance(example, LintIssue):
        return example
    if answers:
        example = _mark_traces(tokenizer, msgs, answers, located[0], located[1], example, offsets,
                               train_reasoning)
        too_long = [b - a for a, b in example.traces if max_reasoning_tokens and b - a > max_reasoning_tokens]
        if too_long:
            return LintIssue(row_id, "reasoning_too_long", f"a reasoning trace of {max(too_long)} tokens > "
                             f"--max-reasoning-tokens {max_reasoning_tokens} (row dropped)", example)
    return _fit_length(example, max_length, overlong)


def _render_spans(
    tokenizer: Any, msgs: list[dict[str, Any]], turns: list[int], row_id: str
) -> tuple[str, list[_Span], str | None] | LintIssue:
    """Phase 1 of :func:`encode_conversation`: render the conversation and find the trained
    assistant spans in the text; ``(text, spans, why_spans_failed)`` or the row's issue."""
    try:
        full = render_text(tokenizer, msgs, False)
        if not turns:
            why_none = "every assistant turn has weight 0" if any(
                m["role"] == "assistant" for m in msgs) else "the conversation has no assistant turn"
            return LintIssue(row_id, "no_trainable_token", why_none)
        dropped_calls = _tool_calls_dropped(tokenizer, msgs, full)
        if dropped_calls:
            return LintIssue(row_id, "render_error", dropped_calls)
        spans, why = _assistant_spans(tokenizer, msgs, full, turns)
    except Exception as exc:  # noqa: BLE001 - jinja errors and raise_exception() in templates
        return LintIssue(
            row_id, "render_error", f"the chat template fails on this row: {_first_line(exc)}"
        )
    return full, spans, why


def _encode_and_label(
    tokenizer: Any, msgs: list[dict[str, Any]], full: str, spans: list[_Span], why: str | None,
    row_id: str, allow_special_in_content: bool, offsets_out: list[tuple[int, int]] | None = None,
) -> Example | LintIssue:
    """Phase 2 of :func:`encode_conversation`: tokenize the rendering and label the spans'
    tokens; the whole-length :class:`Example`, or the row's issue (the tokens' char offsets
    go into ``offsets_out``)."""
    from thresher.chat_tokens import ContentTokenError, encode_chat

    try:
        ids, offsets = encode_chat(tokenizer, full, msgs, allow_special_in_content=allow_special_in_content)
    except ContentTokenError as exc:
        return LintIssue(row_id, "render_error", str(exc))
    if offsets_out is not None:
        offsets_out[:] = offsets
    labels = [IGNORE_INDEX] * len(ids)
    if why is not None:
        return LintIssue(
            row_id, "span_mismatch", why, Example(ids, labels, row_id, n_full=len(ids))
        )

    special = _special_ids(tokenizer)
    problems: list[tuple[str, str]] = []
    for span in spans:
        trained = _label_span(full, ids, offsets, span, special, labels)
        if trained is not None:
            problems.append(trained)

    example = Example(ids, labels, row_id, n_full=len(ids))
    if problems:
        kind, message = problems[0]
        return LintIssue(row_id, kind, message, example)
    if example.n_trained == 0:
        return LintIssue(
            row_id, "no_trainable_token", "no token is trained (empty assistant text?)", example
        )
    return example


def _fit_length(example: Example, max_length: int, overlong: Overlong) -> Example | LintIssue:
    """Phase 3 of :func:`encode_conversation`: drop or truncate a rendering longer than
    ``max_length`` tokens."""
    ids, labels, row_id = example.input_ids, example.labels, example.row_id
    if len(ids) <= max_length:
        return example
    if overlong == "drop":
        return LintIssue(
            row_id,
            "response_cut",
            f"{len(ids)} tokens > --max-length {max_length} (row dropped; use --overlong truncate to keep it)",
            example,
        )
    inside = [(a, b) for a, b in example.traces if a < max_length <= b]
    if inside:
        return LintIssue(
            row_id,
            "reasoning_cut",
            f"{len(ids)} tokens > --max-length {max_length}: truncation would cut a reasoning trace "
            f"(tokens {inside[0][0]}-{inside[0][1]}) before its answer (row dropped; raise --max-length)",
            example,
        )
    cut_ids, cut_labels = ids[:max_length], labels[:max_length]
    # a response is cut when a trained token (its end-of-turn) lies beyond max_length
    cut = any(x != IGNORE_INDEX for x in labels[max_length:])
    traces = tuple(t for t in example.traces if t[1] <= max_length)
    truncated = Example(cut_ids, cut_labels, row_id, cut=cut, n_full=len(ids), traces=traces)
    if truncated.n_trained == 0:
        return LintIssue(
            row_id,
            "no_trainable_token",
            f"no trained token left after truncating {len(ids)} tokens to --max-length {max_length}",
            truncated,
        )
    return truncated


def _label_span(
    text: str,
    ids: list[int],
    offsets: list[tuple[int, int]],
    span: _Span,
    special: frozenset[int],
    labels: list[int],
) -> tuple[str, str] | None:
    """Set labels for one assistant turn; return (kind, message) when something is wrong."""
    turn = span.turn + 1
    content: list[int] = []
    tail: list[int] = []
    straddle: tuple[str, str] | None = None
    for t, (s, e) in enumerate(offsets):
        if e <= span.start or s >= span.end:
            continue
        if s < span.content_end and e > span.start:
            if s < span.start and not text[span.start:e].strip():
                # BPE merged the header's last characters with the answer's leading whitespace
                # ("\n" + "\n  answer"): the token belongs to the template; not trained
                continue
            content.append(t)
            if straddle is None and (s < span.start or (span.tail_found and e > span.content_end)):
                straddle = (
                    "non_assistant_trained",
                    (
                        f"turn {turn}: token {t} ({text[s:e]!r}) spans both template text and the "
                        "assistant text (a header ending in a space, or whitespace at the end of the "
                        "response?)"
                    ),
                )
        elif s >= span.content_end:
            tail.append(t)
    if not span.tail_found:
        # the closing text is unknown: trailing special tokens of the span (minus whitespace
        # after them) are its end-of-turn
        while (
            content
            and ids[content[-1]] not in special
            and not _token_text(text, offsets, content[-1]).strip()
        ):
            tail.insert(0, content.pop())
        trailing = []
        while content and ids[content[-1]] in special:
            trailing.insert(0, content.pop())
        tail = trailing + tail
    eot = [t for t in tail if ids[t] in special]
    for t in content:
        labels[t] = ids[t]
    for t in tail:
        if eot and t <= eot[-1]:
            labels[t] = ids[t]
    if straddle is not None:
        return straddle
    if not eot:
        return (
            "eot_not_trained",
            f"turn {turn}: no end-of-turn token follows the assistant text, so the model would not learn to stop",
        )
    return None


def _token_text(text: str, offsets: list[tuple[int, int]], t: int) -> str:
    s, e = offsets[t]
    return text[s:e]


def generation_mask(tokenizer: Any, messages: Sequence[Mapping[str, Any]]) -> list[int] | None:
    """The assistant mask from the template's ``{% generation %}`` markers, or None without them.

    Uses ``apply_chat_template(return_assistant_tokens_mask=True)``; a 0/1 list aligned with the
    tokens that :func:`encode_conversation` produces.
    """
    template = getattr(tokenizer, "chat_template", None) or ""
    if "generation" not in template or "endgeneration" not in template:
        return None
    out = tokenizer.apply_chat_template(
        template_turns(tokenizer, messages)[0], tokenize=True, return_dict=True,
        return_assistant_tokens_mask=True,
    )
    return [int(x) for x in out["assistant_masks"]]


# --------------------------------------------------------------------------------------------
# reasoning traces
# --------------------------------------------------------------------------------------------

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_TRACE_PROBE = "THRESHERTRACEPROBE"


def renders_reasoning(tokenizer: Any) -> bool:
    """Whether the chat template renders an assistant turn's ``reasoning_content`` itself
    (Qwen3-style), probed once per template."""
    template = getattr(tokenizer, "chat_template", None) or ""
    cached = getattr(tokenizer, "_thresher_reasoning", None)
    if cached is not None and cached[0] == template:
        return cached[1]
    probe = [{"role": "user", "content": "q"},
             {"role": "assistant", "content": "a", "reasoning_content": _TRACE_PROBE}]
    try:
        native = _TRACE_PROBE in render_text(tokenizer, probe, False)
    except Exception:  # noqa: BLE001 - a template failing here fails on the rows too, with a lint issue
        native = False
    try:
        tokenizer._thresher_reasoning = (template, native)
    except AttributeError:  # pragma: no cover - slotted tokenizer
        pass
    return native


def think_block(reasoning: str) -> str:
    """A trace as text before the answer, for templates that do not render ``reasoning_content``."""
    return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n"


def split_think(content: str) -> tuple[str, str | None]:
    """``(answer, trace)`` of a content that starts with a ``<think>...</think>`` block, else
    ``(content, None)``."""
    head = content.lstrip()
    if not head.startswith(THINK_OPEN) or THINK_CLOSE not in head:
        return content, None
    trace, _, answer = head[len(THINK_OPEN):].partition(THINK_CLOSE)
    return answer.lstrip(), trace.strip()


def with_reasoning(messages: Sequence[Mapping[str, Any]], reasoning: Any) -> list[Any]:
    """The messages with a row's side-column ``reasoning`` (the generate stage's column) given
    to its last assistant turn, unless that turn has a ``reasoning_content`` already."""
    msgs = list(messages)
    if not isinstance(reasoning, str) or not reasoning.strip():
        return msgs
    for i in range(len(msgs) - 1, -1, -1):
        if msgs[i]["role"] == "assistant":
            if not msgs[i].get("reasoning_content"):
                msgs[i] = {**msgs[i], "reasoning_content": reasoning}
            break
    return msgs


def template_turns(tokenizer: Any, messages: Any) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """Messages for the template (:func:`_clean`) with each assistant trace placed as the
    template expects, and ``{turn: answer}`` for the assistant turns that carry a trace.

    A trace is ``reasoning_content`` (or a leading ``<think>...</think>`` block of the
    content). Templates that render ``reasoning_content`` get it there; for the others it
    becomes ``<think>\ntrace\n</think>\n\n`` before the answer, in the content."""
    msgs = _clean(messages)
    native = None
    answers: dict[int, str] = {}
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        trace = m.pop("reasoning_content", None)
        answer = m["content"]
        if not (isinstance(trace, str) and trace.strip()):
            answer, trace = split_think(answer)
        if not trace:
            continue
        native = renders_reasoning(tokenizer) if native is None else native
        msgs[i] = {**m, "content": answer, "reasoning_content": trace} if native else \
            {**m, "content": think_block(trace) + answer}
        answers[i] = answer
    return msgs, answers


def _answer_start(tokenizer: Any, msgs: list[dict[str, Any]], turn: int, answer: str, full: str,
                  span: _Span) -> int | None:
    """Char where turn ``turn``'s answer starts in ``full`` (the trace is before it), or None
    when the template left the trace out (Qwen3 drops traces of turns before the last user)."""
    m = msgs[turn]
    head = m["content"][: len(m["content"]) - len(answer)] if answer else m["content"]
    try:
        skel = render_text(tokenizer, msgs[:turn] + [{**m, "content": head + _HOLE}], False)
    except Exception:  # noqa: BLE001 - fall back to the text search below
        skel = ""
    k = skel.find(_HOLE)
    if span.start <= k <= span.content_end and full.startswith(skel[:k]):
        return k
    trace = (m.get("reasoning_content") or split_think(m["content"])[1] or "").strip()
    at = full.rfind(trace, span.start, span.content_end) if trace else -1
    if at < 0:
        return None
    end = at + len(trace)
    rest = full[end:span.content_end]
    closing = rest.lstrip()
    if closing.startswith(THINK_CLOSE):
        end += len(rest) - len(closing) + len(THINK_CLOSE)
        end += len(full[end:span.content_end]) - len(full[end:span.content_end].lstrip())
    return end


def _mark_traces(tokenizer: Any, msgs: list[dict[str, Any]], answers: dict[int, str], full: str,
                 spans: list[_Span], example: Example, offsets: list[tuple[int, int]],
                 train_reasoning: bool) -> Example:
    """``example`` with the token ranges of its trained turns' traces (masked unless
    ``train_reasoning``); ``offsets`` are its tokens' char offsets in ``full``."""
    import bisect
    import dataclasses

    ends = [e for _, e in offsets]
    labels = list(example.labels)
    traces = []
    for span in spans:
        if span.turn not in answers:
            continue
        stop = _answer_start(tokenizer, msgs, span.turn, answers[span.turn], full, span)
        if stop is None:
            continue
        first = bisect.bisect_right(ends, span.start)  # first token ending after the header
        toks = [t for t in range(first, bisect.bisect_right(ends, stop))
                if offsets[t][0] >= span.start and labels[t] != IGNORE_INDEX]
        if not toks:
            continue
        traces.append((toks[0], toks[-1] + 1))
        if not train_reasoning:
            for t in range(toks[0], toks[-1] + 1):
                labels[t] = IGNORE_INDEX
    return dataclasses.replace(example, labels=labels, traces=tuple(traces))
