"""Keep message content from producing control tokens (chat-template injection).

A rendered conversation is plain text: tokenized as a whole, a literal ``<|im_end|>`` typed in
a message becomes the real end-of-turn token, so an answer "It is <|im_end|> and then..."
teaches the student to stop mid-answer, and a user's ``<|im_end|><|im_start|>assistant``
forges turn structure. :func:`encode_chat` tokenizes the rendering as usual but gives every
special token that lies *inside a message field* the ``split_special_tokens`` treatment (its
text is tokenized as ordinary text); the template's own markers stay control tokens. Every
field a template may render is covered: ``content``, ``reasoning_content``, ``name``,
``tool_call_id`` and tool calls (function name, id, and every key and value of the arguments,
which templates print through ``tojson``).

Fields are located through a skeleton rendering in which every field holding a special-token
string is a placeholder; the rendering is then walked piece by piece, so a field that repeats
the template's own separators cannot confuse the search. Rows with no special-token string
in any field (nearly all) take the plain path, unchanged.

Used by the training masks and lint, the loglik/reward scorers and the transformers and vLLM
generation backends. The OpenAI-compatible backends send messages, not tokens: the server's
own template and tokenizer decide there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from thresher.errors import ThresherError

_HOLE = "THRESHERHOLE{}X"
_HOLE_RE = re.compile(r"THRESHERHOLE(\d+)X")


class ContentTokenError(ThresherError):
    """Message content holds a special-token string that cannot be kept from acting as one."""


def special_token_strings(tokenizer: Any) -> tuple[str, ...]:
    """The strings of the tokenizer's special (control) tokens, longest first (cached)."""
    cached = getattr(tokenizer, "_thresher_special_strings", None)
    if cached is not None:
        return cached
    found = {str(t) for t in (getattr(tokenizer, "all_special_tokens", None) or [])}
    for tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(tok, "special", False):
            found.add(str(tok.content))
    result = tuple(sorted((s for s in found if s), key=len, reverse=True))
    try:
        tokenizer._thresher_special_strings = result
    except AttributeError:  # pragma: no cover - slotted tokenizer
        pass
    return result


def _strings(value: Any, *, top: bool = True) -> Iterator[str]:
    """Every string a chat template may render from a message: content, reasoning_content,
    name, tool_call_id, tool-call names, ids and arguments (their keys and values, at any
    depth). ``role`` and a tool call's ``type`` are left out: they pick template branches."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if (top and k == "role") or (not top and k == "type" and isinstance(v, str) and "function" in value):
                continue
            if isinstance(k, str) and not top:
                yield k
            yield from _strings(v, top=False)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v, top=False)


def _with_holes(value: Any, specials: tuple[str, ...], holes: list[str], *, top: bool = True) -> Any:
    """``value`` with every string of :func:`_strings` that holds a special-token string
    replaced by a placeholder (its text appended to ``holes``); everything else as it is."""
    if isinstance(value, str):
        if any(s in value for s in specials):
            holes.append(value)
            return _HOLE.format(len(holes) - 1)
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if (top and k == "role") or (not top and k == "type" and isinstance(v, str) and "function" in value):
                out[k] = v
                continue
            key = _with_holes(k, specials, holes, top=False) if isinstance(k, str) and not top else k
            out[key] = _with_holes(v, specials, holes, top=False)
        return out
    if isinstance(value, (list, tuple)):
        return [_with_holes(v, specials, holes, top=False) for v in value]
    return value


def has_special_text(tokenizer: Any, messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any rendered field of any message (content, reasoning, name, tool calls) contains
    the text of a special token."""
    specials = special_token_strings(tokenizer)
    return any(s in text for m in messages for text in _strings(m) for s in specials)


def _rendered_forms(value: str) -> tuple[str, ...]:
    """How a template may print ``value``: as is, stripped, or JSON-escaped inside ``tojson``
    (transformers' filter, or Jinja's HTML-safe one)."""
    as_json = json.dumps(value, ensure_ascii=False)[1:-1]
    html = (json.dumps(value)[1:-1].replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("'", "\\u0027"))
    return tuple(dict.fromkeys((value, value.strip(), value.lstrip(), value.rstrip(), as_json,
                                json.dumps(value)[1:-1], html)))


def _render(tokenizer: Any, messages: list[dict[str, Any]], gen: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)


def content_spans(tokenizer: Any, messages: Sequence[Mapping[str, Any]], text: str, *,
                  add_generation_prompt: bool = False) -> list[tuple[int, int]]:
    """Char spans of ``text`` (the rendering of ``messages``) that hold a message field (content,
    reasoning, name, tool-call name, id or arguments) with a special-token string. Raises
    :class:`ContentTokenError` when such a field cannot be located (a template that rewrites
    it)."""
    specials = special_token_strings(tokenizer)
    holes: list[str] = []
    skeleton_msgs = [_with_holes(m, specials, holes) for m in messages]
    if not holes:
        return []
    skeleton = _render(tokenizer, skeleton_msgs, add_generation_prompt)
    pieces = _HOLE_RE.split(skeleton)  # template text, hole index, template text, ...
    spans: list[tuple[int, int]] = []
    if not text.startswith(pieces[0]):
        raise ContentTokenError(_cannot_locate(specials, holes))
    pos = len(pieces[0])
    for k in range(1, len(pieces), 2):
        value, after = holes[int(pieces[k])], pieces[k + 1]
        nxt = _next_template_text(pieces, k)
        for cand in _rendered_forms(value):
            if text.startswith(cand, pos) and (text.startswith(after, pos + len(cand)) if after else
                                               nxt is None or text.find(nxt, pos + len(cand)) >= 0):
                break
        else:
            raise ContentTokenError(_cannot_locate(specials, [value]))
        if any(s in cand for s in specials):
            spans.append((pos, pos + len(cand)))
        pos += len(cand) + len(after)
    return spans


def _next_template_text(pieces: list[str], k: int) -> str | None:
    for j in range(k + 1, len(pieces), 2):
        if pieces[j]:
            return pieces[j]
    return None


def _cannot_locate(specials: tuple[str, ...], values: list[str]) -> str:
    hit = next((s for v in values for s in specials if s in v), "a special token")
    return (f"message content contains the special token {hit!r} and the chat template changes the "
            "content, so it cannot be kept from acting as a control token; remove it from the data "
            "or pass --allow-special-tokens-in-content")


def protect(tokenizer: Any, text: str, ids: list[int], offsets: list[tuple[int, int]],
            spans: Sequence[tuple[int, int]]) -> tuple[list[int], list[tuple[int, int]]]:
    """Replace each special token lying inside ``spans`` by the ordinary tokens of its text."""
    if not spans:
        return ids, offsets
    special = {i for i in (tokenizer.convert_tokens_to_ids(list(special_token_strings(tokenizer))) or [])
               if i is not None}
    out_ids: list[int] = []
    out_off: list[tuple[int, int]] = []
    for t, (s, e) in zip(ids, offsets):
        if t in special and any(a <= s and e <= b for a, b in spans):
            enc = tokenizer(text[s:e], add_special_tokens=False, split_special_tokens=True,
                            return_offsets_mapping=True)
            out_ids.extend(enc["input_ids"])
            out_off.extend((s + a, s + b) for a, b in enc["offset_mapping"])
        else:
            out_ids.append(t)
            out_off.append((s, e))
    return out_ids, out_off


def encode_chat(tokenizer: Any, text: str, messages: Sequence[Mapping[str, Any]], *,
                add_generation_prompt: bool = False, allow_special_in_content: bool = False,
                spans: Sequence[tuple[int, int]] | None = None,
                ) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and char offsets of ``text``, the rendering of ``messages``, in which message
    content can never produce a special token (unless ``allow_special_in_content``).

    ``spans`` (char spans of ``text`` to protect) skips the search when the caller knows them.
    Raises :class:`ContentTokenError` (see :func:`content_spans`).
    """
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    if allow_special_in_content:
        return ids, offsets
    if spans is None:
        if not has_special_text(tokenizer, messages):
            return ids, offsets
        spans = content_spans(tokenizer, messages, text, add_generation_prompt=add_generation_prompt)
    return protect(tokenizer, text, ids, offsets, spans)


def encode_chat_ids(tokenizer: Any, text: str, messages: Sequence[Mapping[str, Any]], *,
                    add_generation_prompt: bool = False, allow_special_in_content: bool = False) -> list[int]:
    """:func:`encode_chat` without the offsets."""
    return encode_chat(tokenizer, text, messages, add_generation_prompt=add_generation_prompt,
                       allow_special_in_content=allow_special_in_content)[0]
