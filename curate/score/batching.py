"""Length-sorted batching and padding accounting shared by the model scorers.

Scoring cost on a padded batch is ``len(batch) * max(lengths in batch)`` token slots, so
grouping rows of similar length wastes little compute on padding. ``make_batches`` sorts
row indices by token length (longest first, so an out-of-memory batch shows up at once)
and cuts batches by a row limit and a padded-token budget; ``run_batched`` scores rows
through a callable and returns the results in the original input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class PaddingStats:
    """Token accounting for one batching plan."""

    real_tokens: int
    padded_tokens: int  # token slots computed, real + padding
    batches: int

    @property
    def padding_fraction(self) -> float:
        """Share of computed token slots that were padding (0 when nothing ran)."""
        if self.padded_tokens == 0:
            return 0.0
        return 1.0 - self.real_tokens / self.padded_tokens


def make_batches(
    lengths: Sequence[int],
    batch_size: int,
    *,
    max_batch_tokens: int | None = None,
    sort: bool = True,
) -> list[list[int]]:
    """Split row indices into batches.

    ``sort=True`` orders rows by descending length (ties by index, so the plan is
    deterministic) before cutting; ``sort=False`` keeps input order. A batch closes when it
    holds ``batch_size`` rows or when adding the next row would make
    ``rows * longest`` exceed ``max_batch_tokens`` (a single over-budget row still gets a
    batch of its own).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    order = list(range(len(lengths)))
    if sort:
        order.sort(key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        n = max(int(lengths[i]), 1)
        new_longest = max(longest, n)
        too_many = len(current) >= batch_size
        too_big = (
            max_batch_tokens is not None
            and current
            and new_longest * (len(current) + 1) > max_batch_tokens
        )
        if current and (too_many or too_big):
            batches.append(current)
            current, new_longest = [], n
        current.append(i)
        longest = new_longest
    if current:
        batches.append(current)
    return batches


def padding_stats(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> PaddingStats:
    """Real versus padded token counts of a batching plan (right padding to the batch max)."""
    real = padded = 0
    for batch in batches:
        if not batch:
            continue
        lens = [int(lengths[i]) for i in batch]
        real += sum(lens)
        padded += max(lens) * len(lens)
    return PaddingStats(real_tokens=real, padded_tokens=padded, batches=len(batches))


def run_batched(
    items: Sequence[T],
    lengths: Sequence[int],
    score_batch: Callable[[list[T]], Sequence],
    *,
    batch_size: int,
    max_batch_tokens: int | None = None,
    sort: bool = True,
    on_batch: Callable[[list[int], Sequence], None] | None = None,
) -> list:
    """Score ``items`` batch by batch and return results in input order.

    ``score_batch`` receives the items of one batch and returns one result per item.
    ``on_batch(indices, results)`` is called after each batch (progress, cache writes).
    """
    if len(items) != len(lengths):
        raise ValueError("items and lengths differ in length")
    results: list = [None] * len(items)
    for batch in make_batches(lengths, batch_size, max_batch_tokens=max_batch_tokens, sort=sort):
        out = score_batch([items[i] for i in batch])
        if len(out) != len(batch):
            raise RuntimeError(f"scorer returned {len(out)} results for a batch of {len(batch)}")
        for i, r in zip(batch, out):
            results[i] = r
        if on_batch is not None:
            on_batch(batch, out)
    return results


def score_prepared(
    prepared: Sequence[Any],
    score_batch: Callable[[list[Any]], list[float]],
    *,
    batch_size: int,
    max_batch_tokens: int | None,
    sort: bool,
    on_batch: Callable[[list[int], list[Any]], None] | None = None,
) -> list[Any]:
    """Score prepared rows (objects with ``ids`` and ``error``) in length-sorted batches.

    Rows without ids become ``ScoreResult(None, error)``; the others are scored by
    ``score_batch`` on lists of prepared rows. ``on_batch(row_indices, results)`` sees
    every finished batch (skipped rows first), e.g. to write the score cache.
    """
    from .base import ScoreResult

    results: list[Any] = [None] * len(prepared)
    todo = [i for i, p in enumerate(prepared) if p.ids is not None]
    skipped = [i for i, p in enumerate(prepared) if p.ids is None]
    for i in skipped:
        results[i] = ScoreResult(None, prepared[i].error)
    if skipped and on_batch is not None:
        on_batch(skipped, [results[i] for i in skipped])

    def _batch(js: list[int]) -> list[Any]:
        return [ScoreResult(float(s), None) for s in score_batch([prepared[todo[j]] for j in js])]

    def _done(js: list[int], out: list[Any]) -> None:
        if on_batch is not None:
            on_batch([todo[j] for j in js], out)

    scored = run_batched(list(range(len(todo))), [len(prepared[i].ids) for i in todo], _batch,
                         batch_size=batch_size, max_batch_tokens=max_batch_tokens, sort=sort,
                         on_batch=_done)
    for i, r in zip(todo, scored):
        results[i] = r
    return results
