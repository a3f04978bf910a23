"""Keep message content from producing control tokens (chat-template injection).

A rendered conversation is plain text: tokenized as a whole, a literal ``<|im_end|>`` typed in
a message becomes the real end-of-turn token, so an answer "It is <|im_end|> and then..."
teaches the student to stop mid-answer, and a user's ``<|im_end|><|im_start|>assistant``
forges turn structure. :func:`encode_chat` tokenizes the rendering as usual but gives every
special token that lies *inside message content* the ``split_special_tokens`` treatment (its
text is tokenized as ordinary text); the template's own markers stay control tokens.

Content is located through a skeleton rendering in which every content is a placeholder, so a
content that repeats the template's own separators cannot confuse the search. Rows whose
content holds no special-token string (nearly all) take the plain path, unchanged.

Used by the training masks and lint, the loglik/reward scorers and the transformers and vLLM
generation backends. The OpenAI-compatible backends send messages, not tokens: the server's
own template and tokenizer decide there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from thresher.errors import ThresherError

_FIELDS = ("content", "reasoning_content")
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


def _texts(message: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(f, message[f]) for f in _FIELDS if isinstance(message.get(f), str) and message[f]]


def has_special_text(tokenizer: Any, messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any message content contains the text of a special token."""
    specials = special_token_strings(tokenizer)
    return any(s in text for m in messages for _, text in _texts(m) for s in specials)


def _render(tokenizer: Any, messages: list[dict[str, Any]], gen: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)


def content_spans(tokenizer: Any, messages: Sequence[Mapping[str, Any]], text: str, *,
                  add_generation_prompt: bool = False) -> list[tuple[int, int]]:
    """Char spans of ``text`` (the rendering of ``messages``) that hold message content with a
    special-token string. Raises :class:`ContentTokenError` when such a content cannot be
    located (a template that rewrites content)."""
    specials = special_token_strings(tokenizer)
    holes: list[str] = []
    skeleton_msgs = []
    for m in messages:
        m2 = dict(m)
        for f, value in _texts(m):
            m2[f] = _HOLE.format(len(holes))
            holes.append(value)
        skeleton_msgs.append(m2)
    if not any(s in h for h in holes for s in specials):
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
        for cand in dict.fromkeys((value, value.strip(), value.lstrip(), value.rstrip())):
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
