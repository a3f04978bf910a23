"""The filter's row rules, one table entry each.

A row rule looks at one row (its response, prompt, messages, ``finish_reason``) and returns
the text of a drop reason, or None. :data:`RULES` lists them in the order they run; the
first one that matches names the row's ``drop_reason``, and the entry's ``code`` is its
``drop_code`` (never derived from the text). An entry says:

- ``name``: the Config field (recipe key, CLI option) that sets the rule;
- ``code``: the stable ``drop_code`` slug of the rows it drops;
- ``on(config)``: whether the rule runs with this config;
- ``check(row, config)``: the reason text for one :class:`Row`, or None;
- ``tool(config)`` (optional): something expensive built once per worker (a tokenizer, a
  language identifier), reached from ``check`` as ``row.tool(factory)``; rules that share a
  factory share the tool;
- ``problems(config)`` (optional): config problems of the rule's own fields, added to
  ``Config.check``.

Adding a rule is one entry here (plus its Config field, with the docstring that becomes the
``--help`` text). The score rules (thresholds, top-k, best-of) rank the whole table and live
in :mod:`.stage` / :mod:`.rules`; their codes are written where their reasons are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thresher.schema import prompt_messages, response_text

from . import heuristics as H
from . import text_rules as T
from .rules import Reason

_SLUG = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


class Row:
    """One row as the rules see it (texts computed once, on first use)."""

    def __init__(self, messages: list[dict], finish: str | None, tools: dict[Any, Any]):
        self.messages = messages
        self.finish = finish
        self._tools = tools
        self._memo: dict[str, Any] = {}

    @property
    def response(self) -> str:
        """The final assistant turn's text."""
        return self.cached("response", lambda: response_text(self.messages))

    @property
    def prompt(self) -> str:
        """The turns before the response, joined by newlines."""
        return self.cached("prompt", lambda: "\n".join(x["content"] or "" for x in prompt_messages(self.messages)))

    def tool(self, factory: Callable[[Any], Any]) -> Any:
        """The tool ``factory`` built for this worker (see :func:`build_tools`)."""
        return self._tools[factory]

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per row (a value two rules share, such as a token count)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


@dataclass(frozen=True)
class Rule:
    """One row rule (see the module docstring)."""

    name: str
    code: str
    on: Callable[[Any], bool]
    check: Callable[[Row, Any], str | None]
    tool: Callable[[Any], Any] | None = None
    problems: Callable[[Any], list[str]] | None = None

    def __post_init__(self) -> None:
        if not _SLUG.match(self.code):
            raise ValueError(f"filter rule {self.name}: drop code {self.code!r} is not a slug such as 'too-long-chars'")


# ---------------------------------------------------------------- tools


def token_counter(c: Any) -> Callable[[str], int]:
    """Tokens of a text: ``tokenizer``'s, or words and marks when none is given."""
    return H.make_token_counter(c.tokenizer, trust_remote_code=c.trust_remote_code)


def language_id(c: Any) -> H.LanguageId:
    """The language identifier choosing among ``language`` and ``language_candidates``."""
    cands = c.language_candidates
    return H.LanguageId(tuple(dict.fromkeys((c.language, *cands))) if cands else None)


def _tokens(row: Row) -> int:
    return row.cached("tokens", lambda: row.tool(token_counter)(row.response))


# ---------------------------------------------------------------- checks


def _repeats(row: Row, c: Any) -> str | None:
    r = H.repeated_ngram_ratio_above(row.response, c.max_repeat_ratio, c.ngram)
    return None if r is None else f"repeated_{c.ngram}grams={r:.2f} > {c.max_repeat_ratio:g}"


def _refusal(row: Row, c: Any) -> str | None:
    ph = H.refusal_phrase(row.response, c.refusal_phrases)
    if ph is not None:
        return f"refusal: contains {ph!r}"
    why = T.refusal(row.response) if c.refusal_patterns else None
    return None if why is None else f"refusal: pattern {why}"


def _language(row: Row, c: Any) -> str | None:
    if H.letter_count(row.response) < c.language_min_letters:
        return None
    lang, prob = row.tool(language_id)(row.response)
    if lang != c.language and prob >= c.language_min_prob:
        return f"language={lang} (p={prob:.2f}), expected {c.language}"
    return None


def _echo(row: Row, c: Any) -> str | None:
    e = H.echo_ratio(row.response, row.prompt)
    return f"echo={e:.2f} of the response repeats the prompt > {c.max_echo_ratio:g}" if e > c.max_echo_ratio else None


def _novelty(row: Row, c: Any) -> str | None:
    echo, novel, n = T.is_echo(row.response, row.prompt, c.min_novelty)
    if not echo:
        return None
    what = "no content word" if novel == 0 else f"{round(novel * n)} of {n} content words"
    return f"echo: novelty={novel:.2f} < {c.min_novelty:g} (the answer adds {what} to the question)"


def _labelled(label: str, find: Callable[[Row], str | None]) -> Callable[[Row, Any], str | None]:
    """A check reporting ``label: <what find matched>``."""
    def check(row: Row, c: Any) -> str | None:
        why = find(row)
        return None if why is None else f"{label}: {why}"
    return check


def _min(label: str, value: Callable[[Row], int], field: str) -> Callable[[Row, Any], str | None]:
    """A check dropping rows whose ``value`` is below the config's ``field``."""
    def check(row: Row, c: Any) -> str | None:
        v, limit = value(row), getattr(c, field)
        return f"{label}={v} < {limit}" if v < limit else None
    return check


def _max(label: str, value: Callable[[Row], int], field: str) -> Callable[[Row, Any], str | None]:
    """A check dropping rows whose ``value`` is above the config's ``field``."""
    def check(row: Row, c: Any) -> str | None:
        v, limit = value(row), getattr(c, field)
        return f"{label}={v} > {limit}" if v > limit else None
    return check


#: the row rules, in the order they run (see the module docstring)
RULES: tuple[Rule, ...] = (
    Rule("drop_empty", "empty", lambda c: c.drop_empty,
         lambda row, c: None if row.response.strip() else "empty: no response text"),
    Rule("drop_truncated", "truncated", lambda c: c.drop_truncated,
         lambda row, c: "truncated: finish_reason=length" if row.finish == "length" else None),
    Rule("min_chars", "too-short-chars", lambda c: c.min_chars > 0,
         _min("too_short_chars", lambda row: len(row.response), "min_chars")),
    Rule("max_chars", "too-long-chars", lambda c: c.max_chars is not None,
         _max("too_long_chars", lambda row: len(row.response), "max_chars")),
    Rule("min_tokens", "too-short-tokens", lambda c: c.min_tokens > 0,
         _min("too_short_tokens", _tokens, "min_tokens"), tool=token_counter),
    Rule("max_tokens", "too-long-tokens", lambda c: c.max_tokens is not None,
         _max("too_long_tokens", _tokens, "max_tokens"), tool=token_counter),
    Rule("max_repeat_ratio", "repeated-ngrams", lambda c: c.max_repeat_ratio is not None, _repeats),
    Rule("drop_junk", "junk", lambda c: c.drop_junk, _labelled("junk", lambda row: T.junk(row.response))),
    Rule("drop_markup", "markup", lambda c: c.drop_markup,
         _labelled("markup", lambda row: T.markup(row.response, row.prompt))),
    Rule("drop_refusals", "refusal", lambda c: c.drop_refusals, _refusal),
    Rule("drop_cut_off", "cut-off", lambda c: c.drop_cut_off, _labelled("cut-off", lambda row: T.cut_off(row.response))),
    Rule("language", "wrong-language", lambda c: bool(c.language), _language, tool=language_id),
    Rule("max_echo_ratio", "echoes-prompt", lambda c: c.max_echo_ratio is not None, _echo),
    Rule("min_novelty", "echo", lambda c: c.min_novelty is not None, _novelty),
)


def active(config: Any) -> list[Rule]:
    """The rules ``config`` turns on, in order."""
    return [r for r in RULES if r.on(config)]


def build_tools(config: Any) -> dict[Any, Any]:
    """Each active rule's tool, built once (rules sharing a factory share the tool)."""
    tools: dict[Any, Any] = {}
    for rule in active(config):
        if rule.tool is not None and rule.tool not in tools:
            tools[rule.tool] = rule.tool(config)
    return tools


def config_problems(config: Any) -> list[str]:
    """The problems the rules' own ``problems`` hooks find in ``config``."""
    return [p for r in RULES if r.problems is not None for p in r.problems(config)]


def row_reasons(df: Any, config: Any, tools: dict[Any, Any] | None = None) -> list[Reason | None]:
    """The first rule that drops each row of ``df`` (its reason, carrying the rule's code),
    or None when the row passes them all."""
    rules = active(config)
    tools = build_tools(config) if tools is None else tools
    finish = df["finish_reason"].to_list() if "finish_reason" in df.columns else None
    out: list[Reason | None] = []
    for i, messages in enumerate(df["messages"].to_list()):
        out.append(first_reason(Row(messages, finish[i] if finish else None, tools), rules, config))
    return out


def first_reason(row: Row, rules: list[Rule], config: Any) -> Reason | None:
    """The reason of the first of ``rules`` that drops ``row`` (with that rule's code), or None."""
    for rule in rules:
        why = rule.check(row, config)
        if why is not None:
            return Reason(why, rule.code)
    return None
