"""Cheap per-row measures of a response (a repeated n-gram share, an echo share, a refusal
phrase, a language, a token count); the row rules of :mod:`.row_rules` turn them into drop
reasons against the config's limits.

They look at the final assistant turn (the response) and, for the echo measure, at the
prompt. Token counts use a Hugging Face tokenizer when one is given, else a simple word and
punctuation count (``\\w+|[^\\w\\s]``). Language identification uses ``py3langid`` (its model
ships inside the wheel, so it works offline).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from itertools import islice

DEFAULT_REFUSALS: tuple[str, ...] = (
    "as an ai language model",
    "as an ai assistant, i",
    "i'm sorry, but i can't",
    "i am sorry, but i cannot",
    "i'm sorry, but i cannot",
    "i cannot help with that",
    "i can't help with that",
    "i can't assist with that",
    "i cannot assist with that",
    "i'm unable to help with",
    "i am unable to provide",
    "i'm not able to provide",
    "i cannot fulfill",
    "i can't fulfill",
    "i must decline",
)

#: languages the identifier chooses among by default: widely written ones. Restricting the
#: choice keeps short English snippets (names, titles) from being labelled as minor languages
#: that share their spelling. Measured on chatterbot-corpus answers (644 English, 60 Spanish
#: or German, at least 12 letters each) with a 0.5 probability floor: all 142 languages
#: wrongly dropped 4 English rows and caught 49 others; this list dropped 3 (one of them
#: French) and caught 54.
COMMON_LANGUAGES: tuple[str, ...] = (
    "en", "es", "fr", "de", "it", "pt", "nl", "ru", "zh", "ja", "ko", "ar", "hi", "tr", "pl",
    "sv", "da", "no", "fi", "cs", "el", "he", "id", "vi", "th", "uk", "hu", "ro", "fa",
)

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")
_LETTER = re.compile(r"[^\W\d_]")
#: every ASCII character that is no ``\w`` character, as a space
_NON_WORD_TO_SPACE = str.maketrans({chr(i): " " for i in range(128) if not _WORD.match(chr(i))})


def simple_tokens(text: str) -> list[str]:
    """Words and punctuation marks: the token count used when no tokenizer is given."""
    return _TOKEN.findall(text)


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (``\\w+``)."""
    low = text.lower()
    if low.isascii():  # the same words, faster: punctuation becomes a space, then a split
        return low.translate(_NON_WORD_TO_SPACE).split()
    return _WORD.findall(low)


def repeated_ngram_ratio(text: str, n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier n-gram (0 = none, near 1 = a loop)."""
    w = words(text)
    if n < 1 or len(w) < n:
        return 0.0
    return 1.0 - len(set(zip(*(w[i:] for i in range(n))))) / (len(w) - n + 1)


def repeated_ngram_ratio_above(text: str, limit: float, n: int = 3) -> float | None:
    """:func:`repeated_ngram_ratio` of ``text`` when it is above ``limit``, else None. Faster
    on texts that repeat little: the share only falls as more distinct n-grams are counted,
    so counting stops once enough of them rule the limit out."""
    w = words(text)
    total = len(w) - n + 1
    if n < 1 or total < 1:
        return 0.0 if 0.0 > limit else None
    grams = zip(*(w[i:] for i in range(n)))
    # the fewest n-grams that can rule the limit out, with a margin for a few repeats
    counted = math.ceil((1.0 - limit) * total) + total // 16 if 0.0 <= limit <= 1.0 else total
    seen = set(islice(grams, counted))
    while counted < total:
        if 1.0 - len(seen) / total <= limit:
            return None
        seen.update(islice(grams, total // 8 + 1))
        counted += total // 8 + 1
    r = 1.0 - len(seen) / total
    return r if r > limit else None


def echo_ratio(response: str, prompt: str, n: int = 3) -> float:
    """Share of the response's word n-grams (words, if it is shorter than n) found in the prompt."""
    r, p = words(response), words(prompt)
    if not r or not p:
        return 0.0
    if len(r) < n:
        return sum(1 for x in r if x in set(p)) / len(r)
    rg = [tuple(r[i : i + n]) for i in range(len(r) - n + 1)]
    pg = {tuple(p[i : i + n]) for i in range(len(p) - n + 1)}
    return sum(1 for g in rg if g in pg) / len(rg)


def refusal_phrase(text: str, phrases: Sequence[str]) -> str | None:
    """The first configured phrase found in ``text`` (case-insensitive), or None."""
    low = " ".join(text.lower().replace("\u2019", "'").split())
    for ph in phrases:
        if ph.lower() in low:
            return ph
    return None


class LanguageId:
    """Language identification with py3langid's bundled model (loaded once, lazily), choosing
    among ``languages`` (ISO 639 codes; None means all 142 the model knows)."""

    def __init__(self, languages: Sequence[str] | None = None):
        self._ident = None
        self.languages = tuple(languages) if languages else None

    def __call__(self, text: str) -> tuple[str, float]:
        """(ISO 639-1 code, probability) of ``text``."""
        if self._ident is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            self._ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            if self.languages:
                try:
                    self._ident.set_languages(list(self.languages))
                except ValueError as e:
                    from thresher.errors import ThresherError

                    raise ThresherError(f"language identification: {e}") from None
        lang, prob = self._ident.classify(text)
        return str(lang), float(prob)


def letter_count(text: str) -> int:
    """Number of letters (any script) in ``text``."""
    return len(_LETTER.findall(text))


def make_token_counter(tokenizer: str | None, *, trust_remote_code: bool = False) -> Callable[[str], int]:
    """Token counter: a Hugging Face tokenizer (``smollm2``, a folder or a hub name) or, when
    none is given, the simple word-and-punctuation count."""
    if not tokenizer:
        return lambda text: len(simple_tokens(text))
    from pathlib import Path

    from thresher.errors import ThresherError
    from thresher.models import load_tokenizer, resolve_model

    # a tokenizer folder as is; else "smollm2", a model folder or a cached hub name
    path = Path(tokenizer) if Path(tokenizer).is_dir() else resolve_model(tokenizer)
    try:
        tok = load_tokenizer(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ThresherError(f"tokenizer {tokenizer}: cannot load ({e})") from None
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])
