"""A real OpenAI-compatible HTTP server on 127.0.0.1 that counts requests and tokens.

It counts prompt tokens with a real tokenizer (the chat template applied, as vLLM does),
answers with a deterministic text, logs every chat request with its arrival time, prompt
tokens and ``max_tokens``, can enforce its own tokens-per-minute limit (429 with
``Retry-After`` and ``x-ratelimit-*`` headers) and answers ``response_format`` requests
with JSON (``bad_json_every``: every k-th answer is invalid, to test the schema checks).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import ThreadingHTTPServer

from .loopback import JSONHandler


class CountingServer:
    """See the module docstring. ``count(messages) -> tokens`` is the server's tokenizer;
    ``answer_words``: words per answer (capped by max_tokens); ``headers``: send
    ``x-ratelimit-*`` headers for ``limit_tpm`` (None: no limit, no headers)."""

    def __init__(self, count, *, model="smollm2", answer_words=12, limit_tpm=None, bad_json_every=0,
                 delay=0.0):
        self.count, self.model, self.answer_words = count, model, answer_words
        self.limit_tpm, self.bad_json_every, self.delay = limit_tpm, bad_json_every, delay
        self.log: list[dict] = []  # one entry per answered chat request
        self.rejected = 0
        self.lock = threading.Lock()
        server = self

        class Handler(JSONHandler):

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                status, payload, headers = server.answer(body)
                if server.delay:
                    time.sleep(server.delay)
                self._send(status, payload, headers)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _window_tokens(self, now: float) -> int:
        return sum(e["prompt_tokens"] + e["max_tokens"] * e["n"] for e in self.log if now - e["t"] < 60)

    def answer(self, body: dict) -> tuple[int, dict, dict]:
        msgs = body["messages"]
        prompt_tokens = self.count(msgs)
        n, max_tokens = int(body.get("n", 1)), int(body.get("max_tokens", 16))
        now = time.monotonic()
        with self.lock:
            headers = {}
            if self.limit_tpm:
                used = self._window_tokens(now)
                cost = prompt_tokens + max_tokens * n
                remaining = max(0, int(self.limit_tpm - used - cost))
                headers = {"x-ratelimit-limit-tokens": int(self.limit_tpm),
                           "x-ratelimit-remaining-tokens": remaining, "x-ratelimit-reset-tokens": "1s"}
                if used + cost > self.limit_tpm:
                    self.rejected += 1
                    return 429, {"error": {"message": "rate limit"}}, {**headers, "Retry-After": "1"}
            index = len(self.log)
            self.log.append({"t": now, "prompt_tokens": prompt_tokens, "max_tokens": max_tokens, "n": n,
                             "question": msgs[-1]["content"]})
        words = min(self.answer_words, max_tokens)
        question = msgs[-1]["content"]
        choices = []
        for i in range(n):
            if body.get("response_format"):
                bad = self.bad_json_every and (index + i) % self.bad_json_every == 0
                text = '{"answer": ' if bad else json.dumps({"answer": question[:40], "confidence": 0.5})
            else:
                text = " ".join(["word"] * words)
            choices.append({"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": text}})
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": words * n}
        return 200, {"id": "x", "object": "chat.completion", "choices": choices, "usage": usage}, headers

    def questions(self) -> list[str]:
        return [e["question"] for e in self.log]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
