"""What API calls cost: a small shipped price table, overrides, and a thread-safe meter with a budget.

Prices are USD per 1M tokens (input, output). :data:`PRICES` is the providers' public list
price on :data:`PRICES_DATE` for common models; look-ups match the exact name, then without a
``provider/`` prefix, then the longest table name the model name starts with
(``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``). A model the table lacks has no price
("price unknown"), never a price of 0. ``--price-in/--price-out`` (recipe ``prices:``)
override the table; the OpenAI Batch API bills :data:`BATCH_DISCOUNT` of the list price.

:class:`Meter` counts tokens and cost as answers come and enforces a budget: before a request
is sent it reserves the request's worst case (prompt tokens + ``max_tokens`` per sample); a
request whose reservation could cross the budget waits for the requests in flight to settle,
and when it still cannot fit, :class:`BudgetReached` stops the run before the request is sent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

#: Date the shipped list prices were taken from the providers' pricing pages.
PRICES_DATE = "2025-06-01"

#: USD per 1M (input, output) tokens, list prices on PRICES_DATE.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
    "deepseek-chat": (0.27, 1.10),
    "deepseek-reasoner": (0.55, 2.19),
}

#: Share of the list price the OpenAI Batch API bills.
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class Price:
    """USD per 1M input and output tokens, and where the figures come from."""

    input: float
    output: float
    source: str

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for these token counts."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6

    def as_dict(self) -> dict[str, float | str]:
        """JSON-ready (stats, manifest)."""
        return {"input_per_1m": self.input, "output_per_1m": self.output, "source": self.source}


def table_name(model: str | None) -> str | None:
    """The table entry a model name matches (exact, without ``provider/``, longest prefix), or None."""
    if not model:
        return None
    name = model.strip().lower()
    candidates = [name, name.rsplit("/", 1)[-1]]
    for c in candidates:
        if c in PRICES:
            return c
    for c in candidates:
        hits = [k for k in PRICES if c.startswith(k + "-") or c.startswith(k + "@") or c.startswith(k + ":")]
        if hits:
            return max(hits, key=len)
    return None


def lookup(model: str | None, *, batch: bool = False, price_in: float | None = None,
           price_out: float | None = None) -> Price | None:
    """The price of ``model`` (None: unknown). Overrides replace the table's figures; ``batch``
    applies the Batch API discount to table prices (an override is taken as the price billed)."""
    found = table_name(model)
    if price_in is not None and price_out is not None:
        return Price(float(price_in), float(price_out), "override")
    if found is None:
        return None
    pin, pout = PRICES[found]
    pin = float(price_in) if price_in is not None else pin * (BATCH_DISCOUNT if batch else 1.0)
    pout = float(price_out) if price_out is not None else pout * (BATCH_DISCOUNT if batch else 1.0)
    source = f"table {PRICES_DATE}: {found}" + (" (batch: half price)" if batch else "")
    return Price(pin, pout, source + (" + override" if price_in is not None or price_out is not None else ""))


def usd(value: float | None) -> str:
    """``USD 1.2345`` (4 significant decimals for small sums), or ``price unknown``."""
    if value is None:
        return "price unknown"
    return f"USD {value:.4f}" if value < 100 else f"USD {value:,.2f}"


class BudgetReached(Exception):
    """A request was not sent: it could cross the budget (see :class:`Meter`). A backend sets
    ``partial`` to its answers so far (one list per conversation, None where not answered)."""

    def __init__(self, partial: list | None = None) -> None:
        super().__init__("budget reached")
        self.partial = partial


class Meter:
    """Thread-safe token and cost counter with an optional budget (see the module docstring).

    ``spent_before`` is what earlier runs of the same stage already cost (the budget covers the
    whole stage, so a rerun with the same ``--max-cost`` does not start over).
    """

    def __init__(self, price: Price | None, budget: float | None = None, spent_before: float = 0.0) -> None:
        self.price = price
        self.budget = budget
        self.spent_before = spent_before
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.requests = 0
        self._reserved = 0.0
        self._in_flight = 0
        self._stopped = False
        self._cond = threading.Condition()

    @property
    def cost(self) -> float | None:
        """USD of the tokens counted by this meter (None: price unknown)."""
        return None if self.price is None else self.price.cost(self.prompt_tokens, self.completion_tokens)

    @property
    def total(self) -> float | None:
        """USD including ``spent_before``."""
        return None if self.cost is None else self.cost + self.spent_before

    @property
    def stopped(self) -> bool:
        """True once a request was refused for the budget."""
        return self._stopped

    def reserve(self, prompt_tokens: int, max_completion: int) -> float:
        """Reserve a request's worst case before sending it; raises :class:`BudgetReached`."""
        if self.price is None or self.budget is None:
            with self._cond:
                self._in_flight += 1
            return 0.0
        worst = self.price.cost(prompt_tokens, max_completion)
        with self._cond:
            while True:
                if self._stopped:
                    raise BudgetReached
                spent = self.spent_before + self.price.cost(self.prompt_tokens, self.completion_tokens)
                if spent + self._reserved + worst <= self.budget:
                    self._reserved += worst
                    self._in_flight += 1
                    return worst
                if self._in_flight == 0:
                    self._stopped = True
                    self._cond.notify_all()
                    raise BudgetReached
                self._cond.wait()

    def settle(self, reserved: float, prompt_tokens: int, completion_tokens: int) -> None:
        """Count a finished request's real usage and free its reservation."""
        with self._cond:
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.requests += 1
            self._release(reserved)

    def cancel(self, reserved: float) -> None:
        """Free the reservation of a request that failed (nothing billed)."""
        with self._cond:
            self._release(reserved)

    def _release(self, reserved: float) -> None:
        self._reserved = max(0.0, self._reserved - reserved)
        self._in_flight = max(0, self._in_flight - 1)
        self._cond.notify_all()


def add_cost(row: dict, summary: dict, stats: dict) -> None:
    """Copy a stage's tokens and cost (``stats.json``) into its summary row and the run's total
    (an unknown price makes the total unknown, never 0)."""
    prompt = int(stats.get("prompt_tokens_with_reused", stats.get("prompt_tokens")) or 0)
    completion = int(stats.get("completion_tokens_with_reused", stats.get("completion_tokens_total")) or 0)
    cost = stats.get("cost_usd_with_reused", stats.get("cost_usd"))
    row.update(prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)
    known = "cost_usd" not in summary or summary["cost_usd"] is not None
    summary["prompt_tokens"] = summary.get("prompt_tokens", 0) + prompt
    summary["completion_tokens"] = summary.get("completion_tokens", 0) + completion
    summary["cost_usd"] = round((summary.get("cost_usd") or 0.0) + cost, 6) if known and cost is not None else None
