"""Redaction of secrets from every message and log line thresher prints.

``redact(text)`` removes:

- URL credentials: ``http://user:SECRET@host`` -> ``http://***@host``;
- bearer tokens and ``Authorization`` / ``x-api-key`` / ``api_key`` values
  (``Authorization: Bearer sk-...`` -> ``Authorization: ***``);
- API-key shaped words: ``sk-...`` (OpenAI, Anthropic ``sk-ant-...``), ``hf_...`` (Hugging Face),
  ``ghp_...``/``github_pat_...`` (GitHub), ``AKIA...`` (AWS), ``xoxb-...`` (Slack);
- every value registered with :func:`register_secret` (the openai backend registers the key
  it read from ``api_key_env``), and the values of environment variables whose names say they
  hold a secret (``*KEY*``, ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, 8 characters or more).

The CLI's error boundary, ``thresher.progress.info`` and the openai backends' errors go through
it, so a server that reflects the ``Authorization`` header in an error body, or a ``--base-url``
with credentials in it, never puts the secret on stderr or in a CI log.
"""

from __future__ import annotations

import os
import re

MASK = "***"

_SECRETS: set[str] = set()

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]*@")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+|%20)[A-Za-z0-9._~+/=:-]{6,}")
_HEADER = re.compile(
    r"""(?ix)
    ((?:proxy-)?authorization|x-api-key|api[-_]?key|access[-_]?token|client[-_]?secret)
    (["']?\s*[:=]\s*["']?)          # separator, optional quotes
    (?:(?:bearer|basic)\s+)?        # a scheme word
    (?!\*\*\*)
    [^\s"',;}&]+                     # the value
    """)
_KEY_WORDS = re.compile(
    r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,})")
_SECRET_ENV = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)")
_MIN_SECRET = 8


def register_secret(value: str | None) -> None:
    """Redact ``value`` from every later message (short values are ignored: they would mask words)."""
    if value and len(value) >= _MIN_SECRET:
        _SECRETS.add(value)


def _env_secrets() -> list[str]:
    """Values of environment variables named like secrets (paths excluded: they name files)."""
    return [v for k, v in os.environ.items()
            if _SECRET_ENV.search(k) and len(v) >= _MIN_SECRET and not v.startswith(("/", "."))]


def redact(text: str) -> str:
    """``text`` without keys, bearer tokens, Authorization values or URL credentials."""
    if not text:
        return text
    for secret in sorted({*_SECRETS, *_env_secrets()}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _HEADER.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    return _KEY_WORDS.sub(MASK, text).replace(f"{MASK} {MASK}", MASK)


def redact_url(url: str) -> str:
    """A URL with its ``user:password@`` part masked (for messages naming a server)."""
    return _URL_USERINFO.sub(lambda m: m.group(1) + MASK + "@", url)
