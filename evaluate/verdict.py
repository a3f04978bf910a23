"""The one plain sentence that ends an evaluation."""

from __future__ import annotations

import math
from typing import Any

ALPHA = 0.05
LABELS = {"base": "the base", "curated": "the curated student", "random": "the random-subset student"}


def label(name: str) -> str:
    """How the verdict names a model."""
    return LABELS.get(name, f"model {name}")


def fmt_p(p: float) -> str:
    """A p-value as the verdict writes it."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def fmt_value(metric: str, v: float | None, binary: bool) -> str:
    """A metric's mean: a percentage for pass/fail metrics."""
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{100 * v:.0f}%" if binary else f"{v:.3f}"


def _pair(summary: dict[str, Any], a: str, b: str, metric: str) -> dict[str, Any] | None:
    """The comparison of ``a`` against ``b`` on ``metric``, oriented as ``a`` vs ``b``."""
    for p in summary["pairs"]:
        if p["metric"] != metric:
            continue
        if p["a"] == a and p["b"] == b:
            return p
        if p["a"] == b and p["b"] == a:
            return {**p, "a": a, "b": b, "wins": p["losses"], "losses": p["wins"], "diff": -p["diff"]}
    return None


def _binary(summary: dict[str, Any], metric: str) -> bool:
    kinds = {j["name"]: j["kind"] for j in summary.get("judges", [])}
    return kinds.get(metric) not in ("refnll", "reward", "judge", "pairwise")


def verdict(summary: dict[str, Any], focus: str) -> str:
    """E.g. "On 'all' (held-out prompts), the curated student beats the base (81% vs 12%,
    p < 0.001) and the random-subset student (81% vs 60%, p = 0.004); reference NLL changed
    by +0.4% against the base."."""
    target = summary["target"]
    models = summary["models"]
    others = [n for n in models if n != focus]
    if focus not in models or not others:
        return f"Only {label(focus)} was evaluated: nothing to compare."
    binary = _binary(summary, target)
    mine = models[focus]["metrics"].get(target, {}).get("mean")
    parts = []
    for o in others:
        p = _pair(summary, focus, o, target)
        theirs = models[o]["metrics"].get(target, {}).get("mean")
        if p is None:
            continue
        shown = f"{fmt_value(target, mine, binary)} vs {fmt_value(target, theirs, binary)}, {fmt_p(p['p'])}"
        if p["p"] < ALPHA and p["wins"] > p["losses"]:
            parts.append(("beats", f"{label(o)} ({shown})"))
        elif p["p"] < ALPHA and p["wins"] < p["losses"]:
            parts.append(("is worse than", f"{label(o)} ({shown})"))
        else:
            parts.append(("is not significantly different from", f"{label(o)} ({shown})"))
    clauses = []
    for verb in ("beats", "is worse than", "is not significantly different from"):
        objs = [o for v, o in parts if v == verb]
        if objs:
            clauses.append(f"{verb} {' and '.join(objs)}")
    sentence = f"On {target!r} over {summary['prompts']} held-out prompts, {label(focus)} " + "; it ".join(clauses)
    nll = [j["name"] for j in summary.get("judges", []) if j["kind"] == "refnll"]
    ref = "base" if "base" in models and focus != "base" else None
    if nll and ref:
        a = models[focus]["metrics"].get(nll[0], {}).get("mean")
        b = models[ref]["metrics"].get(nll[0], {}).get("mean")
        if a is not None and b and math.isfinite(a) and math.isfinite(b):
            sentence += f"; reference NLL changed by {100 * (a - b) / b:+.1f}% against the base"
    return sentence + "."
