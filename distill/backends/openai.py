"""The openai backend: any OpenAI-compatible chat-completions server.

Works with ``vllm serve``, llama.cpp's server and hosted APIs. Requests run with bounded
concurrency; 429, 5xx, timeouts and refused connections are retried with exponential
backoff (honouring ``Retry-After``); 401/403 and 404 fail at once with a clear message.
The API key is read from an environment variable (``api_key_env``) and only ever sent in
the ``Authorization`` header: it is never logged, put in an error or written to disk.
Servers that ignore ``n`` are asked again for the missing samples.

The generate stage attaches a :class:`thresher.pricing.Meter` (tokens, cost, ``--max-cost``: a
request's worst case is reserved before it is sent; at the budget the requests in flight finish
and :class:`~thresher.pricing.BudgetReached` carries the answers so far), a rate limiter
(``--rpm``/``--tpm``, fed the ``x-ratelimit-*`` headers of every response) and an output spec
(``response_format``). Every error message goes through :func:`thresher.redact.redact`.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from thresher.errors import ThresherError
from thresher.pricing import BudgetReached
from thresher.redact import redact, register_secret

from .base import Completion, SamplingParams, check_generate_args, make_completion

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}



def content_text(content: Any, where: str = "openai") -> str:
    """The text of a message ``content``: a string, or a list of parts (``{"type": "text",
    "text": ...}`` or plain strings) some servers return; anything else is a one-line error."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
            elif isinstance(part, dict) and part.get("type") not in (None, "text", "output_text"):
                continue  # images, refusals without text, ...: not part of the answer text
            else:
                raise ThresherError(f"openai: {where} returned a content part without text: {str(part)[:80]}")
        return "".join(out)
    raise ThresherError(f"openai: {where} returned message content of type {type(content).__name__} "
                        "(expected a string or a list of text parts)")

class OpenAIBackend:
    """Chat completions over HTTP (see module docstring)."""

    name = "openai"

    def __init__(self, model: str | None = None, *, base_url: str | None = None,
                 api_key_env: str | None = "OPENAI_API_KEY", concurrency: int = 8, timeout: float = 120.0,
                 max_retries: int = 5, backoff: float = 0.5, batch_size: int = 0, **unused: Any) -> None:
        import httpx

        if not base_url:
            raise ThresherError("backend openai: --base-url is required (e.g. http://127.0.0.1:8000/v1)")
        if not base_url.startswith(("http://", "https://")):
            raise ThresherError(redact(f"base_url: must start with http:// or https:// (got {base_url!r})"))
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env) if api_key_env else None
        register_secret(key)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.concurrency = max(1, concurrency)
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.batch_size = batch_size or self.concurrency * 4
        self._httpx = httpx
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )
        self._stop = threading.Event()
        self.meter: Any = None  # thresher.pricing.Meter: tokens, cost and the budget (set by the stage)
        self.limiter: Any = None  # distill.ratelimit.RateLimiter: rpm/tpm (set by the stage)
        self.count_tokens: Any = None  # conversation -> prompt tokens, for the budget and tpm
        self.output_spec: Any = None  # distill.structured.OutputSpec: response_format
        self.revision: str | None = None
        self.chat_template: str | None = None
        self.model = model or self._first_model()
        self.check()

    # -- HTTP -------------------------------------------------------------------------
    def _request(self, method: str, path: str, payload: dict | None = None) -> Any:
        """One call with retries; returns the decoded JSON body (errors redacted: no key, no URL credentials)."""
        try:
            return self._request_raw(method, path, payload)
        except ThresherError as e:
            raise ThresherError(redact(str(e))) from None

    def _request_raw(self, method: str, path: str, payload: dict | None = None) -> Any:
        httpx = self._httpx
        url = self.base_url + path
        attempt = 0
        while True:
            wait_s: float | None = None
            try:
                resp = self._client.request(method, url, json=payload)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
                why = f"cannot reach the server at {self.base_url} ({_short(e) or type(e).__name__})"
            except httpx.TimeoutException:
                why = f"request to {url} timed out"
            else:
                if self.limiter is not None:
                    self.limiter.observe(resp.headers)
                if resp.status_code < 300:
                    try:
                        return resp.json()
                    except ValueError:
                        raise ThresherError(f"openai: {url} answered {resp.status_code} with a body that is not JSON") from None
                detail = _error_detail(resp)
                if resp.status_code in (401, 403):
                    env = f"${self.api_key_env}" if self.api_key_env else "the API key variable"
                    raise ThresherError(f"openai: {resp.status_code} {resp.reason_phrase} from {url}: "
                                        f"check the API key in {env}{detail}")
                if resp.status_code == 404:
                    raise ThresherError(f"openai: 404 Not Found from {url}: model {self.model!r} or the endpoint does "
                                        f"not exist (--base-url usually ends in /v1){detail}")
                if resp.status_code not in RETRY_STATUS and resp.status_code < 500:
                    raise ThresherError(f"openai: {resp.status_code} {resp.reason_phrase} from {url}{detail}")
                why = f"{url} answered {resp.status_code} {resp.reason_phrase}{detail}"
                retry_after = resp.headers.get("retry-after")
                if retry_after:
                    try:
                        wait_s = min(float(retry_after), 60.0)
                    except ValueError:
                        wait_s = None
            if attempt >= self.max_retries or self._stop.is_set():
                raise ThresherError(f"openai: {why}; gave up after {attempt + 1} attempts "
                                    "(finished samples are saved: rerun to resume)")
            if wait_s is None:
                wait_s = min(self.backoff * (2 ** attempt), 30.0)
            attempt += 1
            if self._stop.wait(wait_s):
                raise ThresherError(f"openai: {why}")

    def _first_model(self) -> str:
        body = self._request("GET", "/models")
        models = [m.get("id") for m in (body or {}).get("data", []) if isinstance(m, dict)]
        if not models:
            raise ThresherError(f"openai: {self.base_url}/models lists no model; pass --teacher MODEL")
        return str(models[0])

    def check(self) -> None:
        """Fail fast when the server is unreachable, refuses the key or lacks the model."""
        body = self._request("GET", "/models")
        models = [m.get("id") for m in (body or {}).get("data", []) if isinstance(m, dict)]
        if models and self.model not in models:
            raise ThresherError(f"openai: model {self.model!r} is not served at {self.base_url} "
                                f"(served: {', '.join(map(str, models[:5]))})")

    # -- generation -------------------------------------------------------------------
    def _payload(self, conv: list[dict], n: int, params: SamplingParams, seed_offset: int) -> dict:
        p: dict[str, Any] = {"model": self.model, "messages": conv, "n": n, "max_tokens": params.max_tokens,
                             "temperature": params.temperature, "top_p": params.top_p}
        if params.seed is not None:
            p["seed"] = params.seed + seed_offset
        if params.stop:
            p["stop"] = list(params.stop)
        if params.top_k:
            p["top_k"] = params.top_k
        if params.repetition_penalty != 1.0:
            p["repetition_penalty"] = params.repetition_penalty
        if self.output_spec is not None:
            p["response_format"] = self.output_spec.response_format()
        return p

    def _post(self, conv: list[dict], n: int, params: SamplingParams, seed_offset: int) -> dict:
        """One chat request, through the rate limiter and the meter (budget reserved before it is sent)."""
        est = self.count_tokens(conv) if self.count_tokens is not None else 0
        reserved = self.meter.reserve(est, params.max_tokens * n) if self.meter is not None else 0.0
        try:
            if self.limiter is not None:
                self.limiter.acquire(est + params.max_tokens * n, self._stop)
            body = self._request("POST", "/chat/completions", self._payload(conv, n, params, seed_offset))
        except BaseException:
            if self.meter is not None:
                self.meter.cancel(reserved)
            raise
        if self.meter is not None:
            usage = body.get("usage") or {} if isinstance(body, dict) else {}
            self.meter.settle(reserved, int(usage.get("prompt_tokens") or est),
                              int(usage.get("completion_tokens") or 0))
        return body

    def _samples(self, conv: list[dict], n: int, params: SamplingParams) -> list[Completion]:
        got: list[Completion] = []
        while len(got) < n:
            body = self._post(conv, n - len(got), params, len(got))
            choices = sorted(body.get("choices") or [], key=lambda c: c.get("index", 0))
            if not choices:
                raise ThresherError(f"openai: {self.base_url}/chat/completions returned no choices")
            usage = body.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            total = int(usage.get("completion_tokens") or 0)
            texts = []
            for c in choices:
                msg = c.get("message") or {}
                texts.append((content_text(msg.get("content"), self.base_url),
                              content_text(msg.get("reasoning_content") or msg.get("reasoning"), self.base_url)
                              or None, c.get("finish_reason")))
            lengths = [max(1, len(t[0]) + len(t[1] or "")) for t in texts]
            for (text, reasoning, finish), share in zip(texts, lengths):
                tokens = round(total * share / sum(lengths)) if total else 0
                got.append(make_completion(text, finish_reason="length" if finish == "length" else "stop",
                                           prompt_tokens=prompt_tokens, completion_tokens=tokens,
                                           params=params, reasoning=reasoning))
        return got[:n]

    def _redacted_samples(self, conv: list[dict], n: int, params: SamplingParams) -> list[Completion]:
        try:
            return self._samples(conv, n, params)
        except ThresherError as e:
            raise ThresherError(redact(str(e))) from None

    def generate(self, conversations: list[list[dict]], *, n: int,
                 params: SamplingParams) -> list[list[Completion]]:
        """``n`` completions per conversation, ``concurrency`` requests in flight."""
        check_generate_args(conversations, n, params)
        self._stop.clear()
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(self._redacted_samples, c, n, params) for c in conversations]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if isinstance(failed and failed.exception(), BudgetReached):
                wait(futures)  # requests in flight finish (their answers are kept); the rest stop at once
                if all(f.exception() is None or isinstance(f.exception(), BudgetReached) for f in futures):
                    raise BudgetReached([None if f.exception() else f.result() for f in futures])
                failed = next(f for f in futures if f.exception() and not isinstance(f.exception(), BudgetReached))
            if failed is not None:
                self._stop.set()
                for f in pending:
                    f.cancel()
                raise failed.exception()  # type: ignore[misc]
        return [f.result() for f in futures]

    def close(self) -> None:
        """Close the HTTP connections."""
        self._stop.set()
        self._client.close()


def _short(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:200]


def _error_detail(resp: Any) -> str:
    """The server's own error message, first line, shortened (never request headers)."""
    try:
        body = resp.json()
        err = body.get("error", body) if isinstance(body, dict) else body
        msg = err.get("message") if isinstance(err, dict) else str(err)
    except ValueError:
        msg = resp.text
    msg = (str(msg or "").strip().splitlines() or [""])[0][:200]
    return f": {msg}" if msg else ""
