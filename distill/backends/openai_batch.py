"""The openai-batch backend: distil through the OpenAI Batch API (half the price, 24 h window).

Two runs of the same command::

    thresher distill generate prompts.jsonl --out runs/gen --backend openai-batch --teacher gpt-4o-mini
      -> writes runs/gen/openai-batch-requests.jsonl and stops: submit that file to the Batch API
         (``client.batches.create(input_file_id=..., endpoint="/v1/chat/completions", ...)``)
    thresher distill generate prompts.jsonl --out runs/gen --backend openai-batch --teacher gpt-4o-mini \\
        --batch-results batch_output.jsonl
      -> reads the results back (joined by ``custom_id``) into the usual generate rows

thresher never calls the API itself here, so no key is needed. A request's ``custom_id`` is a
hash of its messages, model and sampling parameters, so the results match their prompts
whatever order the output file has; ``n`` samples are one request with ``n`` choices.

``--batch-results`` takes several files separated by commas: the Batch output file, its error
file (failed and expired requests), and the outputs of later re-submissions; a success wins over
a failure of the same ``custom_id``. Requests that failed or expired are written alone to
``<requests>-retry.jsonl`` to submit again; rerun with that batch's output added to the list.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from thresher.errors import ThresherError

from .base import Completion, SamplingParams, check_generate_args, make_completion


def _failure(rec: dict[str, Any]) -> str | None:
    """Why a Batch result record failed (error or expired, or a non-200 response), or None."""
    err = rec.get("error")
    if err:
        return str(err.get("code") or err.get("message") or err) if isinstance(err, dict) else str(err)
    resp = rec.get("response")
    if isinstance(resp, dict) and resp.get("status_code", 200) != 200:
        return f"status {resp.get('status_code')}"
    return None


def _body_params(params: SamplingParams, n: int) -> dict[str, Any]:
    body: dict[str, Any] = {"temperature": params.temperature, "top_p": params.top_p,
                            "max_tokens": params.max_tokens, "n": n}
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    return body


class OpenAIBatchBackend:
    """Writes a Batch input file, or reads a Batch output file back (see the module docstring)."""

    name = "openai-batch"

    def __init__(self, model: str | None = None, *, batch_requests: str | None = None,
                 batch_results: str | None = None, **unused: Any) -> None:
        if not model:
            raise ThresherError("backend openai-batch: --teacher is required (the model name, e.g. gpt-4o-mini)")
        if not batch_requests and not batch_results:
            raise ThresherError("backend openai-batch: give --batch-requests FILE (where to write the "
                                "requests) or --batch-results FILE (the Batch output to read)")
        self.model = model
        self.revision: str | None = None
        self.chat_template: str | None = None
        self.batch_size = 1 << 30  # every prompt in one file
        self.requests_path = Path(batch_requests) if batch_requests else None
        self.results_path = Path(batch_results) if batch_results else None
        self._results: dict[str, dict[str, Any]] | None = None
        self.output_spec: Any = None  # distill.structured.OutputSpec: response_format (set by the stage)

    def custom_id(self, conversation: list[dict], n: int, params: SamplingParams) -> str:
        """The request id of one conversation (stable across runs)."""
        blob = json.dumps([self.model, conversation, self._params(params, n)], sort_keys=True, ensure_ascii=False)
        return "thr-" + hashlib.blake2b(blob.encode("utf-8"), digest_size=10).hexdigest()

    def generate(self, conversations: list[list[dict]], *, n: int, params: SamplingParams) -> list[list[Completion]]:
        """Completions from the results file; without one, write the requests and stop."""
        check_generate_args(conversations, n, params)
        ids = [self.custom_id(c, n, params) for c in conversations]
        if self.results_path is None:
            self._write_requests(conversations, ids, n, params)
        results = self._load_results()
        failed = [i for i in dict.fromkeys(ids) if i in results and _failure(results[i])]
        if failed:
            self._resubmit(conversations, ids, failed, n, params, results)
        missing = [i for i in ids if i not in results]
        if missing:
            raise ThresherError(f"openai-batch: {self.results_path} has no result for {len(missing)} of "
                                f"{len(ids)} requests (first custom_id {missing[0]}); were they made with the "
                                "same prompts, teacher and sampling options?")
        return [self._completions(results[i], n, params) for i in ids]

    def _write_requests(self, conversations: list[list[dict]], ids: list[str], n: int,
                        params: SamplingParams) -> None:
        from thresher.io.openai_batch import request_line, write_requests

        assert self.requests_path is not None
        seen: set[str] = set()
        lines = []
        for cid, conv in zip(ids, conversations):
            if cid not in seen:
                seen.add(cid)
                lines.append(request_line(cid, conv, self.model, self._params(params, n)))
        write_requests(self.requests_path, lines)
        from thresher.errors import BatchPending  # not a failure: exit status 75, no "Error:"

        raise BatchPending(
            f"openai-batch: wrote {len(lines)} requests to {self.requests_path}; submit it to the OpenAI "
            "Batch API (endpoint /v1/chat/completions), download the output file and rerun this command "
            "with --batch-results FILE")

    def _params(self, params: SamplingParams, n: int) -> dict[str, Any]:
        body = _body_params(params, n)
        if self.output_spec is not None:
            body["response_format"] = self.output_spec.response_format()
        return body

    def _resubmit(self, conversations: list[list[dict]], ids: list[str], failed: list[str], n: int,
                  params: SamplingParams, results: dict[str, dict[str, Any]]) -> None:
        """Write the failed and expired requests alone to a retry file and stop with what to do."""
        from thresher.io.openai_batch import request_line, write_requests

        base = self.requests_path or Path(str(self.results_path).split(",")[0])
        path = base.with_name(base.stem + "-retry.jsonl")
        conv_of = dict(zip(ids, conversations))
        write_requests(path, [request_line(cid, conv_of[cid], self.model, self._params(params, n)) for cid in failed])
        first = failed[0]
        raise ThresherError(
            f"openai-batch: {len(failed)} of {len(set(ids))} requests failed or expired (first {first}: "
            f"{_failure(results[first])}); wrote them alone to {path}: submit it to the Batch API and rerun with "
            f"--batch-results {self.results_path},RETRY_OUTPUT_FILE")

    def _load_results(self) -> dict[str, dict[str, Any]]:
        if self._results is not None:
            return self._results
        assert self.results_path is not None
        out: dict[str, dict[str, Any]] = {}
        for path in [Path(p.strip()) for p in str(self.results_path).split(",") if p.strip()]:
            for cid, rec in self._read_results(path).items():
                if cid not in out or _failure(out[cid]) or not _failure(rec):  # a success wins over a failure
                    out[cid] = rec
        self._results = out
        return out

    def _read_results(self, path: Path) -> dict[str, dict[str, Any]]:
        """The records of one output or error file, by custom_id."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise ThresherError(f"{path}: cannot read the Batch results ({e.strerror})") from None
        out: dict[str, dict[str, Any]] = {}
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ThresherError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
            if not isinstance(rec, dict) or "custom_id" not in rec:
                raise ThresherError(f"{path}:{lineno}: not a Batch output record (no custom_id)")
            out[str(rec["custom_id"])] = {**rec, "_line": lineno, "_file": str(path)}
        return out

    def _completions(self, rec: dict[str, Any], n: int, params: SamplingParams) -> list[Completion]:
        from thresher.io.chat import join_parts
        from thresher.io.openai_batch import result_body
        from thresher.io.shape_error import ShapeError

        where = f"{rec.get('_file', self.results_path)}:{rec['_line']}"
        try:
            body = result_body(rec)
        except ShapeError as e:
            raise ThresherError(f"{where}: {e}") from None
        choices = sorted(body["choices"], key=lambda c: c.get("index", 0))
        if len(choices) < n:
            raise ThresherError(f"{where}: {len(choices)} choices, {n} wanted (-n)")
        usage = body.get("usage") or {}
        per = int(usage.get("completion_tokens", 0)) // max(1, len(choices))
        out = []
        for ch in choices[:n]:
            msg = ch.get("message") or {}
            content = msg.get("content")
            text = join_parts(content, where) if isinstance(content, list) else (content or "")
            reason = ch.get("finish_reason") or "stop"
            out.append(make_completion(text, finish_reason="length" if reason == "length" else "stop",
                                       prompt_tokens=int(usage.get("prompt_tokens", 0)), completion_tokens=per,
                                       params=params, reasoning=msg.get("reasoning_content")))
        return out

    def close(self) -> None:
        """Nothing to free."""
        return None
