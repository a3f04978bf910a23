"""A small scripted OpenAI-compatible server on 127.0.0.1 for the error-path tests.

It is our own test double for HTTP failure modes (429, 5xx, 401, 404, a server that dies);
the happy path is also tested against a real server (``vllm serve``, tests/distill/test_vllm.py).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet request handler that answers JSON (shared by the test servers)."""

    def log_message(self, *a):
        pass

    def _send(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)

class ScriptedServer:
    """``fail``: list of statuses to answer chat requests with, in order, before answering
    normally; ``always``: a status for every chat request; ``die_after``: stop serving after
    that many successful chat answers; ``max_n``: most choices per answer (1 = ignores n);
    ``content``: a function of the answer text giving the message content to send (e.g. a list
    of parts, as some servers do); ``echo_auth``: error bodies reflect the request's
    ``Authorization`` header and URL (a careless server, for the redaction tests)."""

    def __init__(self, *, fail=(), always=None, die_after=None, max_n=None, model="m", content=None,
                 echo_auth=False):
        self.echo_auth = echo_auth
        self.content = content
        self.fail = list(fail)
        self.always = always
        self.die_after = die_after
        self.max_n = max_n
        self.model = model
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        self.answered = 0
        self.lock = threading.Lock()
        server = self

        class Handler(JSONHandler):

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "no such route"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with server.lock:
                    server.requests.append(body)
                    server.auth.append(self.headers.get("Authorization"))
                    status = server.always or (server.fail.pop(0) if server.fail else 200)
                    if status == 200 and server.die_after is not None and server.answered >= server.die_after:
                        status = None
                    if status == 200:
                        server.answered += 1
                if status is None:  # the server is gone: drop the connection, stop listening
                    self.close_connection = True
                    threading.Thread(target=server.stop, daemon=True).start()
                    return
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found"}})
                if status != 200:
                    headers = {"Retry-After": "0"} if status == 429 else {}
                    message = f"scripted {status}"
                    if server.echo_auth:
                        message = (f"invalid request with headers Authorization: {self.headers.get('Authorization')}"
                                   f" (Bearer {self.headers.get('Authorization', '').split()[-1]})")
                    return self._send(status, {"error": {"message": message}}, headers)
                if body.get("model") != server.model:
                    return self._send(404, {"error": {"message": f"model {body.get('model')} does not exist"}})
                n = body.get("n", 1)
                if server.max_n:
                    n = min(n, server.max_n)
                question = body["messages"][-1]["content"]
                choices = [{"index": i, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": (server.content or str)(
                                f"answer {body.get('seed')}-{i} to {question}"),
                                        "reasoning_content": "thought about it"}} for i in range(n)]
                self._send(200, {"id": "x", "object": "chat.completion", "choices": choices,
                                 "usage": {"prompt_tokens": 7, "completion_tokens": 5 * n}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self._stopped = False

    def stop(self):
        if not self._stopped:
            self._stopped = True
            self.httpd.shutdown()
            self.httpd.server_close()

    def chat_requests(self):
        return len(self.requests)
