"""The text dedup compares, and its normalisation.

:func:`text_column` builds the text of each row with polars expressions (no Python loop per
row), with the same definitions as :mod:`thresher.schema`:

- ``conversation``: every turn as ``<role> content``, one per line (``conversation_text``);
- ``prompt``: the last user turn before a final assistant turn (``prompt_text``);
- ``response``: the final assistant turn, ``""`` if none (``response_text``).

:func:`normalize` then applies, each step switchable: Unicode NFKC, case folding
(``str.casefold``), punctuation and symbol removal (runs of Unicode ``P*``/``S*`` become one
space) and whitespace collapsing (runs of whitespace become one space, ends stripped).

With ``chatter`` (off by default) each message first loses the social padding short prompts
carry (:func:`strip_chatter_expr`): greetings and lead-ins at its start ("Hi,", "Hello!",
"Hey there", "Quick question:", "Sorry to bother you,") and thanks at its end ("Thanks!",
"Thank you in advance.", "Any help is appreciated", "please"), and whole sentences of social
words only before or after it ("Can you help?", "Any ideas?", "I need some advice."), so that
"Hi! Quick question: what is X? Thanks!" compares equal to "What is X?". A message that would be left without a
letter or digit ("Thank you!") is kept as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import polars as pl

#: which text of a row dedup compares
DedupOn = Literal["conversation", "prompt", "response"]
ON_CHOICES: tuple[str, ...] = get_args(DedupOn)


@dataclass(frozen=True)
class NormalizeOptions:
    """Which normalisation steps to apply (all on by default)."""

    nfkc: bool = True
    casefold: bool = True
    punctuation: bool = True
    whitespace: bool = True
    chatter: bool = False


_SEP = r"[\s,!.:;?\-\u2013\u2014]"
_GREETING = (r"(?:hi|hey|hiya|hello|howdy|greetings|yo|good (?:morning|afternoon|evening|day))"
             r"(?: there| all| everyone| folks| guys| team| friends?)?")
_LEAD_IN = (r"(?:(?:a |one )?(?:quick|simple|small|short|silly|dumb|stupid|random|general) question"
            r"(?: for you)?|question|i have a (?:quick |simple )?question(?: for you)?"
            r"|(?:i'?m |i was )?just (?:curious|wondering)|sorry to bother(?: you)?"
            r"|sorry if this is a (?:dumb|silly|stupid|basic) question|excuse me"
            r"|dear (?:sir|madam|all|assistant|bot|ai)|ok(?:ay)?(?: so)?|so|well|um+|uh+"
            r"|please (?:answer|help|explain)(?: this)?)")
# request forms that may run straight into the question ("Can you tell me what X is?")
_REQUEST = (r"(?:(?:can|could|would) you (?:please )?tell me|please tell me"
            r"|i (?:was|am|'m) (?:just )?wondering(?: if you could tell me)?|i wonder)")
# one or more greetings/lead-ins, each followed by punctuation ("hi", "hey", "hi there" by a space)
_LEAD = (rf"(?i)^\s*(?:(?:{_GREETING}|{_LEAD_IN})\s*[,!.:;?\-\u2013\u2014]+\s*"
         rf"|(?:hi|hey|hiya|(?:hi|hey|hello) there|(?:ok(?:ay)?,? )?so|{_REQUEST})(?:\s*[,:;\-\u2013\u2014]+\s*|\s+))+")
_THANKS = (r"(?:(?:many )?thanks?(?: (?:a lot|so much|very much|a bunch|a million|again))?"
           r"|thank (?:you|u)(?: (?:so|very) much)?(?: again)?|thx|tia|cheers"
           r"|(?:any|all|your) help (?:is|would be) (?:(?:much|greatly|really|very much) )?appreciated"
           r"|(?:much|greatly|really) appreciated|please|pls|plz|(?:best|kind) regards"
           r"|please (?:help|explain|answer)(?: me)?|any (?:ideas|thoughts|help|suggestions|tips)\??)"
           r"(?: (?:in advance|for (?:your|the|any) help|for helping(?: me)?|for your time))?")
# one or more thanks at the end; a "?", "!" or "." just before them is kept ("What is X?")
_TRAIL = rf"(?i)([.?!])?(?:{_SEP}*\b{_THANKS})+{_SEP}*[):(]*{_SEP}*$"
_HAS_WORD = r"[\p{L}\p{N}]"
# a whole sentence of social words only ("Can you help?", "Any ideas?", "I need some advice.",
# "Could someone please help me out?"): no content word, no question word, no "is"
_SOCIAL = (r"\b(?:i|me|my|we|us|you|u|ya|your|someone|somebody|anyone|anybody|everyone|everybody|all|folks|"
           r"guys|there|again|can|could|would|will|do|does|please|pls|plz|kindly|help|helps|helping|assist|"
           r"advice|idea|ideas|thought|thoughts|suggestion|suggestions|tip|tips|pointer|pointers|input|hi|hey|"
           r"hello|hiya|howdy|greetings|thanks|thank|thx|cheers|appreciated|appreciate|much|so|very|a|lot|in|"
           r"advance|quick|simple|small|short|question|have|got|need|some|any|out|ok|okay|well|um|uh|hmm|just|"
           r"wondering|curious|know|answer|reply|respond|explain|here|me)\b")
_SOCIAL_CLAUSE = rf"{_SOCIAL}(?:\s+{_SOCIAL})*"
_SOCIAL_LEAD = rf"(?i)^\s*(?:{_SOCIAL_CLAUSE}\s*[,!.:;?\-\u2013\u2014]+\s*)+"
# after the question's own end mark, which is kept
_SOCIAL_TRAIL = rf"(?i)([.?!])(?:\s*{_SOCIAL_CLAUSE}\s*[,!.:;?):(]*)+\s*$"


def strip_chatter_expr(expr: pl.Expr) -> pl.Expr:
    """``expr`` (strings) without leading greetings/lead-ins and trailing thanks (see the
    module docstring); a text left without a letter or digit stays as it was."""
    stripped = expr.str.replace(_LEAD, "").str.replace(_TRAIL, "${1}")
    stripped = stripped.str.replace(_SOCIAL_LEAD, "").str.replace(_SOCIAL_TRAIL, "${1}")
    return pl.when(stripped.str.contains(_HAS_WORD)).then(stripped).otherwise(expr)


def text_expr(on: str = "conversation", chatter: bool = False) -> pl.Expr:
    """A polars expression giving the text to compare for each row, from ``messages``
    (``chatter``: each message through :func:`strip_chatter_expr` first)."""
    role = pl.element().struct.field("role")
    content = pl.element().struct.field("content")
    if chatter:
        content = strip_chatter_expr(content)
    msgs = pl.col("messages")
    if on == "conversation":
        return (
            msgs.list.eval(pl.concat_str([pl.lit("<"), role, pl.lit("> "), content]))
            .list.join("\n")
            .fill_null("")
        )
    if on == "prompt":
        # The final assistant turn is never a user turn, so the last user turn overall is the
        # last user turn of the prompt part.
        return msgs.list.eval(content.filter(role == "user")).list.last().fill_null("")
    if on == "response":
        last = msgs.list.last()
        return (
            pl.when(last.struct.field("role") == "assistant")
            .then(last.struct.field("content"))
            .otherwise(pl.lit(""))
            .fill_null("")
        )
    raise ValueError(f"on must be one of {ON_CHOICES}, got {on!r}")


def text_column(df: pl.DataFrame, on: str = "conversation", chatter: bool = False) -> pl.Series:
    """The raw (not yet normalised) text to compare for each row of ``df``."""
    return df.select(text_expr(on, chatter).alias("text")).to_series()


def normalized_texts(df: pl.DataFrame, on: str, options: NormalizeOptions) -> list[str]:
    """The normalised text to compare of each row of ``df`` (``options.chatter`` included)."""
    return normalize(text_column(df, on, options.chatter), options).to_list()


def options_of(cfg: object) -> NormalizeOptions:
    """The normalisation options of a dedup config (or any object with those attributes)."""
    get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
    return NormalizeOptions(get("nfkc"), get("casefold"), get("punctuation"), get("whitespace"),
                            bool(get("strip_chatter", False)))


_PUNCT = r"[\p{P}\p{S}]+"
_SPACE = r"\s+"


def normalize(texts: pl.Series, options: NormalizeOptions = NormalizeOptions()) -> pl.Series:
    """Normalise a string Series (vectorised in polars; case folding via ``str.casefold``)."""
    s = texts.fill_null("")
    if options.nfkc:
        s = s.str.normalize("NFKC")
    if options.casefold:
        s = pl.Series(s.name, [t.casefold() for t in s.to_list()], dtype=pl.String)
    if options.punctuation:
        s = s.str.replace_all(_PUNCT, " ")
    if options.whitespace:
        s = s.str.replace_all(_SPACE, " ").str.strip_chars()
    return s


def normalize_text(text: str, options: NormalizeOptions = NormalizeOptions()) -> str:
    """Normalise one string (same result as :func:`normalize` on a one-element Series)."""
    return normalize(pl.Series([text]), options)[0]
