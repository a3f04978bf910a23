"""Fuzz mutations of the shipped recipes (issue 26): a key dropped, a value replaced by a hostile
one (NaN, infinity, huge numbers, nested values, path tricks), a stage duplicated or moved,
anchors and aliases, then `thresher recipe validate` and `thresher recipe show`.

Invariant: exit 0, or one `Error:` line (at most 2,000 characters) and no traceback, in under
a few seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz._fuzz import JSON_VALUE, TEXT, budget, run_case
from thresher.cli.main import cli

SHIPPED = sorted(Path(__file__).resolve().parents[2].glob("recipes/*.yaml"))
HOSTILE = st.one_of(
    JSON_VALUE, TEXT,
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 10 ** 23, 2 ** 64, -1, 0, 1e308, "../x", "/abs",
                     "a/b", "", ".", "..", "-x", "\x00", "x" * 5000, [], {}, None, True]),
)


def _paths(node, prefix=()):
    """Every (path, value) of a nested recipe."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _set(root, path, value):
    if not path:
        return value
    node = root
    for p in path[:-1]:
        node = node[p]
    if value is _DROP:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return root


_DROP = object()


@st.composite
def mutated(draw):
    src = draw(st.sampled_from(SHIPPED))
    data = yaml.safe_load(src.read_text(encoding="utf-8"))
    for _ in range(draw(st.integers(1, 3))):
        spots = list(_paths(data))
        path, _ = draw(st.sampled_from(spots))
        how = draw(st.sampled_from(["replace", "replace", "drop", "dup-stage"]))
        if how == "dup-stage" and isinstance(data, dict) and isinstance(data.get("stages"), list) and data["stages"]:
            i = draw(st.integers(0, len(data["stages"]) - 1))
            data["stages"].insert(draw(st.integers(0, len(data["stages"]))), data["stages"][i])
            continue
        value = _DROP if how == "drop" and path else draw(HOSTILE)
        data = _set(data, path, value)
    try:
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except Exception:  # noqa: BLE001 - a value YAML cannot write (e.g. a lone surrogate)
        text = str(data)
    if draw(st.booleans()):  # anchors and aliases: a shared stage written once
        text = text.replace("stages:\n", "x-shared: &s {filter: {}}\nstages:\n- *s\n", 1)
    return src.name, text


@budget(80)
@given(mutated())
def test_mutated_shipped_recipes_validate_in_one_line(case):
    name, text = case
    for command in ("validate", "show"):
        t0 = time.monotonic()
        res = run_case(cli, lambda d, c=command: ["recipe", c, d / name],
                       {name: text.encode("utf-8", "surrogatepass")}, "recipe-mutations")
        assert time.monotonic() - t0 < 10, f"{name}: {command} took {time.monotonic() - t0:.1f} s"
        assert len(res.output) <= 2000 + len("Error: \n") or res.exit_code == 0, res.output[:200]
