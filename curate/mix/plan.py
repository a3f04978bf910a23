"""How many rows each category contributes: targets, capacity and shortfall handling.

This is pure arithmetic on a few dozen numbers (one per category); :mod:`.select` then picks
the rows. Rounding uses the largest-remainder method, so weights that sum to 1 give targets
that sum exactly to ``total``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from thresher.curate.mix.spec import MixSpec
from thresher.errors import ThresherError


@dataclass(frozen=True)
class CategoryPlan:
    """One category's numbers: ``wanted`` (from the spec), ``available`` rows (after
    ``min_score``), ``capacity`` (= available x max_repeats), ``taken`` (what the mix
    holds), and how the target was given (``count``, ``weight`` or ``temperature``)."""

    name: str
    kind: str
    wanted: int
    available: int
    max_repeats: int
    taken: int

    @property
    def capacity(self) -> int:
        return self.available * self.max_repeats

    @property
    def short(self) -> int:
        return max(0, self.wanted - min(self.wanted, self.capacity))

    @property
    def received(self) -> int:
        """Rows added by redistribution beyond the wanted number."""
        return max(0, self.taken - self.wanted)


def largest_remainder(quotas: dict[str, float], total: int) -> dict[str, int]:
    """Integers summing to ``total`` closest to ``quotas`` (ties by name order)."""
    floors = {k: math.floor(q + 1e-9) for k, q in quotas.items()}
    left = total - sum(floors.values())
    order = sorted(quotas, key=lambda k: (-(quotas[k] - floors[k]), k))
    for k in order[: max(0, left)]:
        floors[k] += 1
    return floors


def _weight_total(weights: dict[str, float], capacity: dict[str, int]) -> int:
    """The largest total whose weighted targets all fit in capacity (no ``total`` given)."""
    positive = {k: w for k, w in weights.items() if w > 0}
    if not positive:
        return 0
    total = min(math.floor(capacity[k] / w + 1e-9) for k, w in positive.items())
    while total > 0:
        targets = largest_remainder({k: w * total for k, w in weights.items()}, total)
        if all(targets[k] <= capacity[k] for k in weights):
            return total
        total -= 1
    return 0


def make_plan(spec: MixSpec, available: dict[str, int]) -> list[CategoryPlan]:
    """Targets and taken counts for every category that takes part in the mix.

    ``available`` maps each category present in the data to its number of eligible rows
    (after ``min_score``). With a temperature, data categories that the spec does not give a
    count or weight share the rest of the total by T-sampling over their natural sizes
    (``p ~ n ** (1/T)``). Shortfalls follow ``spec.on_shortfall``: ``fail`` raises listing
    every short category, ``keep`` leaves them short, ``redistribute`` hands the missing rows
    to the weight/temperature categories that have spare capacity, in proportion to their
    targets (categories given an exact ``count`` never receive extra rows).
    """
    repeats = {}
    kinds: dict[str, str] = {}
    counts: dict[str, int] = {}
    weights: dict[str, float] = {}
    for c in spec.categories:
        repeats[c.name] = c.max_repeats or spec.max_repeats
        if c.count is not None:
            kinds[c.name], counts[c.name] = "count", c.count
        elif c.weight is not None:
            kinds[c.name], weights[c.name] = "weight", c.weight
        else:
            kinds[c.name] = "temperature"
    if spec.temperature is not None:
        for name in sorted(available):
            if name not in kinds:
                kinds[name] = "temperature"
                repeats[name] = spec.max_repeats
    avail = {k: available.get(k, 0) for k in kinds}
    capacity = {k: avail[k] * repeats[k] for k in kinds}

    wanted: dict[str, int] = dict(counts)
    total = spec.total
    if weights:
        if total is None:
            total = _weight_total(weights, capacity)
        wsum = math.fsum(weights.values())
        wanted.update(
            largest_remainder({k: w * total for k, w in weights.items()}, round(wsum * total))
        )
    temp = [k for k, kind in kinds.items() if kind == "temperature"]
    if temp:
        assert spec.temperature is not None
        if total is None:
            rest = sum(avail[k] for k in temp)
        else:
            rest = total - sum(wanted.values())
        mass = {k: avail[k] ** (1.0 / spec.temperature) if avail[k] else 0.0 for k in temp}
        norm = math.fsum(mass.values())
        quotas = {k: (rest * m / norm if norm else 0.0) for k, m in mass.items()}
        wanted.update(largest_remainder(quotas, rest if norm else 0))

    taken = {k: min(wanted[k], capacity[k]) for k in kinds}
    short = {k: wanted[k] - taken[k] for k in kinds if wanted[k] > taken[k]}
    if short and spec.on_shortfall == "fail":
        parts = [
            f"{k} (wanted {wanted[k]}, available {avail[k]}, max_repeats {repeats[k]}, can take {taken[k]})"
            for k in sorted(short)
        ]
        raise ThresherError(
            "mix: categories cannot fill their targets (on_shortfall: fail): " + "; ".join(parts)
        )
    if short and spec.on_shortfall == "redistribute":
        _redistribute(sum(short.values()), kinds, wanted, capacity, taken)
    return [
        CategoryPlan(k, kinds[k], wanted[k], avail[k], repeats[k], taken[k]) for k in sorted(kinds)
    ]


def _redistribute(
    deficit: int,
    kinds: dict[str, str],
    wanted: dict[str, int],
    capacity: dict[str, int],
    taken: dict[str, int],
) -> None:
    """Give ``deficit`` rows to non-count categories with spare capacity (in place)."""
    while deficit > 0:
        open_ = {
            k: wanted[k]
            for k in kinds
            if kinds[k] != "count" and taken[k] < capacity[k] and wanted[k] > 0
        }
        if not open_:
            return
        norm = sum(open_.values())
        share = largest_remainder({k: deficit * w / norm for k, w in open_.items()}, deficit)
        given = 0
        for k, extra in share.items():
            add = min(extra, capacity[k] - taken[k])
            taken[k] += add
            given += add
        deficit -= given
        if given == 0:
            return
