"""Build ``arith.jsonl``: seeded arithmetic word problems with their reference answers, the
prompts of ``recipes/verified.yaml``.

    python recipes/data/make_arith.py            # writes recipes/data/arith.jsonl (seed 0)

Four families (the row's ``category``): sums, differences told as a story, products and unit
conversions. Every (family, numbers) pair is distinct, so held-out problems never repeat a
training problem. The reference is the number alone; a verifier compares the answer's final
number (``verify:numeric``) or expression (``verify:math``) with it.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

NAMES = ["Tom", "Ana", "Li", "Sara", "Omar", "Maya", "Ivan", "Zoe"]
ITEMS = ["apples", "pencils", "stamps", "marbles", "books", "coins"]


def _add(rng: random.Random) -> tuple[str, int, tuple]:
    a, b = rng.randint(2, 29), rng.randint(2, 29)
    return f"What is {a} plus {b}?", a + b, (a, b)


def _sub(rng: random.Random) -> tuple[str, int, tuple]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(10, 40), rng.randint(2, 9)
    return f"{name} has {a} {item} and gives away {b}. How many {item} are left?", a - b, (a, b)


def _mul(rng: random.Random) -> tuple[str, int, tuple]:
    a, b = rng.randint(2, 12), rng.randint(2, 12)
    return f"What is {a} times {b}?", a * b, (a, b)


def _units(rng: random.Random) -> tuple[str, int, tuple]:
    unit, per, of = rng.choice(UNITS)
    n = rng.randint(2, 12)
    return f"How many {unit} are in {n} {of}?", n * per, (unit, n)


#: (smaller unit, how many make one larger unit, larger unit)
UNITS = [("seconds", 60, "minutes"), ("minutes", 60, "hours"), ("hours", 24, "days"),
         ("days", 7, "weeks"), ("months", 12, "years"), ("centimeters", 100, "meters"),
         ("grams", 1000, "kilograms"), ("millimeters", 10, "centimeters")]


FAMILIES = {"sum": _add, "difference": _sub, "product": _mul, "units": _units}


def problems(per_family: dict[str, int], seed: int = 0) -> list[dict]:
    """Distinct problems per family, in a seeded order."""
    rng = random.Random(seed)
    rows: list[dict] = []
    for family, count in per_family.items():
        seen: set = set()
        while len(seen) < count:
            question, answer, key = FAMILIES[family](rng)
            if key in seen:
                continue
            seen.add(key)
            rows.append({"id": f"{family}-{len(seen):03d}", "category": family,
                         "prompt": question, "reference": str(answer)})
    rng.shuffle(rows)
    return rows


def main(out: Path) -> None:
    rows = problems({"sum": 100, "difference": 100, "product": 100, "units": 80})
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} problems to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("arith.jsonl"))
