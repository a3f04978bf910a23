"""The generate stage's request loop: chunks, shards, accounting, budget, schema checks.

:class:`Accounting` holds what one stage run knows about money and rates: the teacher's price,
the :class:`~thresher.pricing.Meter` (tokens, cost, ``max_cost``), the rate limiter
(``rpm``/``tpm``) and the prompt-token counter they need; it attaches them to an API backend.
:class:`GenerationLoop` asks the backend chunk by chunk, checks structured answers (asking
again up to ``schema_retries`` times), writes one shard per chunk and stops cleanly when the
budget is reached (what was answered is stored; nothing is asked twice on the rerun).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from thresher.errors import ThresherError
from thresher.pricing import BudgetReached, Meter, Price, usd
from thresher.progress import progress

from .costs import price_for, prompt_counter
from .prompts import Prompt
from .ratelimit import RateLimiter


def request_conversation(p: Prompt, spec: Any) -> list[dict]:
    """What the teacher is sent for a prompt: its messages, plus the JSON instruction when the
    output is structured (appended to the last user turn; rows keep the prompt as given)."""
    conv = p.as_messages()
    if spec is None:
        return conv
    last = dict(conv[-1])
    last["content"] = f"{last['content']}\n\n{spec.instruction()}"
    return [*conv[:-1], last]


@dataclasses.dataclass
class Accounting:
    """Price, meter, rate limiter and prompt counter of one stage run (see module docstring)."""

    price: Price | None
    meter: Meter
    limiter: RateLimiter | None
    counter: Callable[[list[dict]], int] | None
    counted_with: str | None

    @classmethod
    def create(cls, config: Any, backend_name: str, teacher: str | None) -> Accounting:
        """From the stage Config; ``max_cost`` without a known price is a one-line error."""
        price = price_for(config, backend_name, teacher)
        if config.max_cost is not None and price is None:
            raise ThresherError(f"max_cost: the price of {teacher or config.teacher!r} is unknown; give "
                                "--price-in and --price-out (USD per 1M tokens)")
        limiter = RateLimiter(config.rpm, config.tpm) if (config.rpm or config.tpm) else None
        counter, how = None, None
        if config.max_cost is not None or config.tpm:
            counter, how = prompt_counter(config.teacher, config.tokenizer, config.trust_remote_code)
        return cls(price, Meter(price, config.max_cost), limiter, counter, how)

    def attach(self, backend: Any, spec: Any) -> None:
        """Give an API backend the meter, limiter, counter and output spec (others: the spec)."""
        if hasattr(backend, "meter"):
            backend.meter, backend.limiter, backend.count_tokens = self.meter, self.limiter, self.counter
        if hasattr(backend, "output_spec"):
            backend.output_spec = spec

    def add_spent_before(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Count what stored samples already cost (the budget covers the whole stage)."""
        if self.price is not None:
            self.meter.spent_before += self.price.cost(prompt_tokens, completion_tokens)

    def stats(self, c: dict[str, Any]) -> dict[str, Any]:
        """Token and cost keys of stats.json (this run's requests, and with the reused samples)."""
        p, o = int(c.get("billed_prompt_tokens", 0)), int(c.get("billed_completion_tokens", 0))
        sp, so = int(c.get("stored_prompt_tokens", 0)), int(c.get("stored_completion_tokens", 0))
        cost = self.price.cost(p, o) if self.price else None
        total = self.price.cost(p + sp, o + so) if self.price else None
        return {"prompt_tokens": p, "completion_tokens_total": o, "requests": int(c.get("requests", 0)),
                "prompt_tokens_with_reused": p + sp, "completion_tokens_with_reused": o + so,
                "cost_usd": None if cost is None else round(cost, 6),
                "cost_usd_with_reused": None if total is None else round(total, 6),
                "price": self.price.as_dict() if self.price else "unknown",
                "max_cost": self.meter.budget}


class GenerationLoop:
    """Ask the backend for the missing samples, chunk by chunk (see module docstring)."""

    def __init__(self, backend: Any, config: Any, store: Any, stored: dict[str, dict[str, Any]],
                 acc: Accounting, spec: Any) -> None:
        self.backend, self.config, self.store, self.stored = backend, config, store, stored
        self.acc, self.spec = acc, spec
        self.params = config.sampling()
        self.metered = hasattr(backend, "meter")
        self.budget_hit = False
        self._c: dict[str, float] = {}

    def _count(self, name: str, value: float) -> None:
        self._c[name] = self._c.get(name, 0) + value

    def counters(self) -> dict[str, float]:
        """Counters for the stage's stats (summable across workers)."""
        return dict(self._c)

    def run(self, todo: list[tuple[Prompt, list[int]]], keys: dict[str, list[str]]) -> None:
        """Generate every missing sample (or stop at the budget), one shard per chunk."""
        batch = self.config.batch_size or getattr(self.backend, "batch_size", 16) or 16
        groups: dict[int, list[tuple[Prompt, list[int]]]] = {}
        for item in todo:  # grouped by samples missing; longest prompts first (pessimistic ETA, less padding)
            groups.setdefault(len(item[1]), []).append(item)
        extra = "{task.fields[tok_s]:.1f} tok/s, {task.fields[tokens]} tokens, {task.fields[cost]}"
        with progress(len(todo), "generate", unit="prompts", extra=extra,
                      fields={"tokens": 0, "cost": usd(0.0 if self.acc.price else None)}) as bar:
            for k, items in sorted(groups.items(), reverse=True):
                items.sort(key=lambda it: sum(len(c) for _, c in it[0].messages), reverse=True)
                for start in range(0, len(items), batch):
                    chunk = items[start:start + batch]
                    done = self._chunk(chunk, k, keys)
                    tokens = self._c.get("billed_prompt_tokens", 0) + self._c.get("billed_completion_tokens", 0)
                    cost = self.acc.price.cost(self._c.get("billed_prompt_tokens", 0),
                                               self._c.get("billed_completion_tokens", 0)) if self.acc.price else None
                    secs = self._c.get("generation_seconds", 0.0)
                    bar.advance(done, tok_s=self._c.get("generated_tokens", 0) / secs if secs else 0.0,
                                tokens=int(tokens), cost=usd(cost))
                    if self.budget_hit:
                        return

    def _ask(self, convs: list[list[dict]], n: int, params: Any) -> list[list[Any] | None]:
        """The backend's answers; at the budget, the part answered (None for the others)."""
        meter = self.acc.meter
        before = (meter.prompt_tokens, meter.completion_tokens, meter.requests)
        t0 = time.perf_counter()
        try:
            outs: list[list[Any] | None] = list(self.backend.generate(convs, n=n, params=params))
        except BudgetReached as e:
            outs = list(e.partial or [None] * len(convs))
            self.budget_hit = True
        self._count("generation_seconds", time.perf_counter() - t0)
        if self.metered:
            self._count("billed_prompt_tokens", meter.prompt_tokens - before[0])
            self._count("billed_completion_tokens", meter.completion_tokens - before[1])
            self._count("requests", meter.requests - before[2])
        else:
            for comps in outs:
                if comps:
                    self._count("billed_prompt_tokens", comps[0].prompt_tokens)
                    self._count("billed_completion_tokens", sum(c.completion_tokens for c in comps))
                    self._count("requests", 1)
        return outs

    def _chunk(self, chunk: list[tuple[Prompt, list[int]]], k: int, keys: dict[str, list[str]]) -> int:
        """One chunk: ask, check, store; returns the prompts answered."""
        convs = [request_conversation(p, self.spec) for p, _ in chunk]
        outs = self._ask(convs, k, self.params)
        checks = self._check(convs, outs) if self.spec is not None else {}
        records = []
        for i, ((p, missing), comps) in enumerate(zip(chunk, outs)):
            if comps is None:
                continue
            for j, (s, c) in enumerate(zip(missing, comps)):
                key = keys[p.id][s]
                structured, error = checks.get((i, j), (None, None))
                rec = {"key": key, "parent_id": p.id, "sample_index": s, "text": c.text,
                       "reasoning": c.reasoning, "finish_reason": c.finish_reason,
                       "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                       "structured": structured, "schema_error": error}
                records.append(rec)
                self.stored[key] = rec
                self._count("generated_tokens", c.completion_tokens)
        if self.store is not None:
            self.store.write(records)
        return sum(comps is not None for comps in outs)

    def _check(self, convs: list[list[dict]], outs: list[list[Any] | None]) -> dict[tuple[int, int], tuple]:
        """Schema check of every answer; invalid ones are asked again up to ``schema_retries`` times
        (``outs`` is updated in place). Returns ``(structured, error)`` per (prompt, sample)."""
        result = {(i, j): self.spec.check(c.text) for i, comps in enumerate(outs) if comps
                  for j, c in enumerate(comps)}
        self._count("schema_checked", len(result))
        self._count("schema_invalid_first", sum(err is not None for _, err in result.values()))
        for attempt in range(1, self.config.schema_retries + 1):
            bad = [ij for ij, (_, err) in result.items() if err is not None]
            if not bad or self.budget_hit:
                break
            for j in sorted({j for _, j in bad}):  # one call per sample index: distinct seeds
                rows = [i for i, jj in bad if jj == j]
                seed = (self.params.seed or 0) + 7919 * attempt + j
                again = self._ask([convs[i] for i in rows], 1, dataclasses.replace(self.params, seed=seed))
                self._count("schema_retried", len(rows))
                for i, comps in zip(rows, again):
                    if comps:
                        outs[i][j] = comps[0]  # type: ignore[index]
                        result[(i, j)] = self.spec.check(comps[0].text)
        return result
