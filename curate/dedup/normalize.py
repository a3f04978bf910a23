"""The text dedup compares, and its normalisation.

:func:`text_column` builds the text of each row with polars expressions (no Python loop per
row), with the same definitions as :mod:`thresher.schema`:

- ``conversation``: every turn as ``<role> content``, one per line (``conversation_text``);
- ``prompt``: the last user turn before a final assistant turn (``prompt_text``);
- ``response``: the final assistant turn, ``""`` if none (``response_text``).

:func:`normalize` then applies, each step switchable: Unicode NFKC, case folding
(``str.casefold``), punctuation and symbol removal (runs of Unicode ``P*``/``S*`` become one
space) and whitespace collapsing (runs of whitespace become one space, ends stripped).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

ON_CHOICES = ("conversation", "prompt", "response")


@dataclass(frozen=True)
class NormalizeOptions:
    """Which normalisation steps to apply (all on by default)."""

    nfkc: bool = True
    casefold: bool = True
    punctuation: bool = True
    whitespace: bool = True


def text_expr(on: str = "conversation") -> pl.Expr:
    """A polars expression giving the text to compare for each row, from ``messages``."""
    role = pl.element().struct.field("role")
    content = pl.element().struct.field("content")
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


def text_column(df: pl.DataFrame, on: str = "conversation") -> pl.Series:
    """The raw (not yet normalised) text to compare for each row of ``df``."""
    return df.select(text_expr(on).alias("text")).to_series()


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
