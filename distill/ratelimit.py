"""Client-side rate limits: requests and tokens per minute, adapting to ``x-ratelimit-*`` headers.

Each limit is a token bucket in its virtual-scheduling form: a request of cost ``c`` (1 for the
request limit; prompt tokens + ``max_tokens`` for the token limit, as providers count) may start
once the bucket's theoretical arrival time allows it, and pushes that time ``c / rate`` ahead.
A burst allowance of ``burst_s`` seconds' worth of the rate lets a few requests start together,
so the rate over any window of ``W`` seconds stays within ``(W + burst_s) / W`` of the limit.

When a server sends ``x-ratelimit-limit-*`` below the configured limit the bucket slows down to
it; ``x-ratelimit-remaining-*`` of 0 (or less than the next request's cost) pauses every
request until ``x-ratelimit-reset-*`` (``1s``, ``6m0s``, ``250ms`` or plain seconds).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_reset(value: str | None) -> float | None:
    """Seconds of an ``x-ratelimit-reset-*`` value (``1s``, ``6m0s``, ``20ms``, ``1.5``), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


class Bucket:
    """One per-minute limit (see the module docstring)."""

    def __init__(self, per_minute: float, burst_s: float = 0.2) -> None:
        self.configured = float(per_minute)
        self.rate = self.configured / 60.0
        self.burst_s = burst_s
        self.tat = time.monotonic()  # theoretical arrival time of the next unit

    def delay(self, cost: float, now: float) -> float:
        """Seconds to wait before ``cost`` may be spent (0: now); books it when 0."""
        start = max(self.tat, now)
        allowed_at = start - self.burst_s
        if allowed_at > now:
            return allowed_at - now
        self.tat = start + cost / self.rate
        return 0.0

    def limit_to(self, per_minute: float) -> None:
        """Never go faster than a server's announced limit."""
        if 0 < per_minute < self.configured:
            self.rate = per_minute / 60.0


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits shared by every request thread."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None, burst_s: float = 0.2) -> None:
        self.requests = Bucket(rpm, burst_s) if rpm else None
        self.tokens = Bucket(tpm, burst_s) if tpm else None
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self, tokens: int, stop: threading.Event | None = None) -> None:
        """Block until a request costing ``tokens`` (prompt + max_tokens) may be sent."""
        while True:
            with self._lock:
                now = time.monotonic()
                wait = self._paused_until - now
                if wait <= 0:
                    wait = self._book(tokens, now)
                if wait <= 0:
                    return
                self.waited += wait
            if stop is not None:
                if stop.wait(wait):
                    return
            else:
                time.sleep(wait)

    def _book(self, tokens: int, now: float) -> float:
        buckets = [b for b in (self.requests, self.tokens) if b is not None]
        wait = max((max(b.tat, now) - b.burst_s - now for b in buckets), default=0.0)
        if wait > 0:
            return wait
        for bucket, cost in ((self.requests, 1), (self.tokens, tokens)):
            if bucket is not None:
                bucket.delay(cost, now)
        return 0.0

    def observe(self, headers: Mapping[str, str], next_tokens: int = 0) -> None:
        """Adapt to a response's ``x-ratelimit-*`` headers (limits, remaining, reset)."""
        get = {k.lower(): v for k, v in headers.items()}.get
        with self._lock:
            for kind, bucket, need in (("requests", self.requests, 1), ("tokens", self.tokens, max(1, next_tokens))):
                limit = _number(get(f"x-ratelimit-limit-{kind}"))
                if limit and bucket is not None:
                    bucket.limit_to(limit)
                remaining = _number(get(f"x-ratelimit-remaining-{kind}"))
                if remaining is not None and remaining < need:
                    reset = parse_reset(get(f"x-ratelimit-reset-{kind}"))
                    if reset:
                        self._paused_until = max(self._paused_until, time.monotonic() + min(reset, 120.0))


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None
