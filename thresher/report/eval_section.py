"""The report's evaluation section: what the ``eval`` stage found (tables, a plot, the verdict)."""

from __future__ import annotations

import math
from typing import Any

from thresher.report.run import Run
from thresher.report.sections import Section


def _num(v: Any, pct: bool) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def _binary_metrics(ev: dict[str, Any]) -> set[str]:
    return {j["name"] for j in ev.get("judges", []) if j["kind"] not in ("refnll", "reward", "judge", "pairwise")}


def _means_rows(ev: dict[str, Any]) -> list[list[str]]:
    binary = _binary_metrics(ev)
    rows = []
    for name, d in ev["models"].items():
        for metric, m in d["metrics"].items():
            pct = metric in binary
            rows.append([name, metric, _num(m.get("mean"), pct),
                         f"[{_num(m.get('low'), pct)}, {_num(m.get('high'), pct)}]", str(m.get("n", ""))])
    return rows


def _p(v: Any) -> str:
    return "n/a" if v is None else ("< 0.001" if v < 0.001 else f"{v:.3f}")


def _pair_rows(ev: dict[str, Any]) -> list[list[str]]:
    binary = _binary_metrics(ev)
    rows = []
    for p in ev["pairs"]:
        pct = p["metric"] in binary
        sign = "+" if (p.get("diff") or 0) >= 0 else ""
        diff = "n/a" if p.get("diff") is None else (f"{sign}{100 * p['diff']:.1f} pts" if pct else f"{sign}{p['diff']:.3f}")
        lo, hi = p.get("diff_low"), p.get("diff_high")
        ci = (f"[{100 * lo:+.1f}, {100 * hi:+.1f}] pts" if pct and lo is not None and hi is not None
              else f"[{_num(lo, False)}, {_num(hi, False)}]")
        rows.append([f"{p['a']} vs {p['b']}", p["metric"], f"{p['wins']}/{p['ties']}/{p['losses']}", diff, ci,
                     _p(p.get("p_sign")), _p(p.get("p_bootstrap"))])
    return rows


def _category_rows(ev: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    target, focus = ev["target"], ev.get("focus")
    names = list(ev["models"])
    pct = target in _binary_metrics(ev)
    others = [n for n in names if n != focus]
    header = ["category", "prompts", *names, *(f"p {focus} vs {o}" for o in others)]
    rows = []
    for cat, d in ev.get("categories", {}).items():
        ps = []
        for o in others:
            p = next((q for q in d["pairs"] if q["metric"] == target and {q["a"], q["b"]} == {focus, o}), None)
            ps.append(_p(p["p"]) if p else "n/a")
        rows.append([cat, str(d["prompts"]), *(_num(d["means"][n].get(target), pct) for n in names), *ps])
    return header, rows


def plot_means(ev: dict[str, Any]) -> bytes:
    """Bars of every pass/fail metric's mean per model, with 95% bootstrap CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    metrics = [m for m in next(iter(ev["models"].values()))["metrics"] if m in _binary_metrics(ev)]
    names = list(ev["models"])
    fig, ax = plt.subplots(figsize=(max(4.5, 1.4 * len(metrics) + 2), 3.2))
    width = 0.8 / max(1, len(names))
    for k, name in enumerate(names):
        ms = [ev["models"][name]["metrics"][m] for m in metrics]
        y = [100 * (m["mean"] or 0) for m in ms]
        err = [[100 * max(0.0, (m["mean"] or 0) - (m["low"] or 0)) for m in ms],
               [100 * max(0.0, (m["high"] or 0) - (m["mean"] or 0)) for m in ms]]
        ax.bar([i + k * width for i in range(len(metrics))], y, width, yerr=err, capsize=3, label=name)
    ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(metrics))], metrics)
    ax.set_ylabel("% of held-out prompts")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside the bars
    ax.set_title("Held-out evaluation (95% bootstrap CIs)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def evaluation(run: Run) -> Section | None:
    """The evaluation section (None when the run has no eval stage)."""
    stages = run.by_name("eval") + run.by_name("evaluate")
    if not stages:
        return None
    ev = stages[-1].stats.get("eval")
    sec = Section("Evaluation on held-out prompts")
    if not ev:
        sec.text("The eval stage has not finished.")
        return sec
    budget = f", a budget of {ev['budget']} new tokens" if ev.get("budget") else ""
    sec.text(f"Every model answered the same {ev['prompts']} held-out prompts (greedy{budget}, no system prompt "
             "unless the eval stage sets one). Judges: " + ", ".join(
                 f"{j['name']} ({j['kind']}{':' + j['arg'] if j.get('arg') else ''})" for j in ev["judges"])
             + ". Means with 95% bootstrap confidence intervals; refnll is the mean token NLL of the held-out "
               "human reference answers (lower is better).")
    sec.table(["model", "metric", "mean", "95% CI", "prompts"], _means_rows(ev))
    if ev.get("sandbox"):  # the isolation the code judge's programs ran under
        sb = ev["sandbox"]
        sec.text(f"The code judge ran every program in the sandbox level {sb['level']!r}: "
                 + "; ".join(sb.get("measures", [])) + "." + (f" {sb['warning']}" if sb.get("warning") else ""))
    sec.text("Per pair of models, prompt by prompt: wins/ties/losses of the first model, the mean difference with "
             "its 95% bootstrap CI, the exact sign-test p-value and the paired-bootstrap p-value.")
    sec.table(["pair", "metric", "win/tie/loss", "difference", "95% CI", "p (sign test)", "p (paired bootstrap)"],
              _pair_rows(ev))
    header, rows = _category_rows(ev)
    if rows:
        sec.text(f"Per category, on the target metric {ev['target']!r}:")
        sec.table(header, rows)
    if _binary_metrics(ev):
        sec.plot(lambda: plot_means(ev), "held-out evaluation")
    sec.text(f"**Verdict:** {ev['verdict']}")
    return sec
