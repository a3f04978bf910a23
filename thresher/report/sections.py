"""The sections of the run report, computed from a :class:`~thresher.report.run.Run`.

Each builder returns a :class:`Section` (or None when the run has nothing for it): text,
tables and PNG plots, rendered to Markdown and HTML by :mod:`thresher.report.report`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from thresher.report.run import Run, has_responses, response_lengths, responses

AGREE_RE = (
    r"(?i)^\W*(yes|yeah|yep|sure|absolutely|certainly|of course|definitely|exactly|indeed|correct|"
    r"you('| a)re (absolutely |totally |completely |quite )?right|that('s| is) (right|correct|true)|"
    r"(great|good|excellent) (question|point)|i (completely |totally |fully )?agree)\b"
)
REFUSAL_RE = (
    r"(?i)\b(i('m| am) sorry,? but|i apologi[sz]e,? but|i can('|no)?t (help|assist|provide|answer|do that)|"
    r"i cannot|i('m| am) (unable|not able) to|as an ai\b|i won't be able|i will not)"
)


@dataclass
class Section:
    """A report section: paragraphs, tables (header, rows) and plots (PNG bytes, caption)."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def text(self, s: str) -> Section:
        self.blocks.append(("text", s))
        return self

    def table(self, header: list[str], rows: list[list[Any]]) -> Section:
        self.blocks.append(("table", (header, rows)))
        return self

    def plot(self, make: Callable[[], bytes], caption: str) -> Section:
        try:
            self.blocks.append(("plot", (make(), caption)))
        except Exception as e:  # noqa: BLE001 - a plot must never break the report
            self.blocks.append(("text", f"(plot '{caption}' failed: {e})"))
        return self


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _lazy_plots():
    from thresher.report import plots

    return plots


# ---------------------------------------------------------------- funnel


def funnel(run: Run) -> Section | None:
    data = run.data_stages
    if not data:
        return None
    sec = Section("Funnel: rows kept after every stage")
    rows = []
    for s in data:
        reasons = s.stats.get("drop_codes") or s.stats.get("drop_reasons") or {}  # codes: declared slugs
        top = ", ".join(f"{k} ({v})" for k, v in list(reasons.items())[:3])
        rows.append([s.folder, s.stats.get("rows_in", ""), s.stats.get("rows_out", ""), s.stats.get("rows_dropped", ""), top])
    sec.table(["stage", "rows in", "kept", "dropped", "main drop reasons"], rows)
    cats = sorted({c for s in data for c in (s.stats.get("kept_by_category") or {})})
    by_cat = {c: [int((s.stats.get("kept_by_category") or {}).get(c, 0)) for s in data] for c in cats}
    if cats:
        sec.text("Rows kept per category after every stage:")
        sec.table(["category", *[s.folder for s in data]], [[c, *by_cat[c]] for c in cats])
    plots = _lazy_plots()
    labels = [s.folder for s in data]
    sec.plot(lambda: plots.funnel(labels, [int(s.stats.get("rows_out", 0) or 0) for s in data]), "funnel")
    if cats:
        sec.plot(lambda: plots.funnel_by_category(labels, by_cat), "funnel by category")
    return sec


# ---------------------------------------------------------------- scores


def thresholds(run: Run) -> dict[str, list[float]]:
    """Score thresholds used by the run: from the stage configs and the ``thresholds`` the
    filter stage declares in its stats (``{column: [limits]}``)."""
    out: dict[str, set[float]] = {}
    for s in run.stages:
        for key in ("min_scores", "max_scores"):
            table = s.config.get(key)
            if isinstance(table, dict):
                for col, v in table.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        out.setdefault(col, set()).add(float(v))
        th = s.stats.get("thresholds")
        if isinstance(th, dict):
            for k, vals in th.items():
                for v in vals if isinstance(vals, list) else [vals]:
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        out.setdefault(k, set()).add(float(v))
    return {k: sorted(v) for k, v in out.items()}


def scores(run: Run) -> Section | None:
    final = run.final
    seen: dict[str, pl.Series] = {}
    for s in run.data_stages:
        frames = [f for f in (s.kept(), s.dropped()) if f is not None]
        for col in sorted({c for f in frames for c in f.columns if c.startswith("score_")}):
            if col not in seen:
                vals = pl.concat([f[col].cast(pl.Float64, strict=False) for f in frames if col in f.columns])
                seen[col] = vals.drop_nulls().drop_nans()
    if not seen:
        return None
    th = thresholds(run)
    fin = final.kept() if final else None
    sec = Section("Score distributions")
    rows = []
    for col, vals in seen.items():
        kept_vals = fin[col].cast(pl.Float64, strict=False).drop_nulls() if fin is not None and col in fin.columns else None
        rows.append([col, vals.len(), vals.mean(), vals.quantile(0.1), vals.median(), vals.quantile(0.9),
                     kept_vals.mean() if kept_vals is not None and kept_vals.len() else None,
                     ", ".join(f"{t:g}" for t in th.get(col, []))])
    sec.table(["score", "rows scored", "mean", "p10", "median", "p90", "mean in final set", "thresholds"],
              [[_fmt(v) for v in r] for r in rows])
    plots = _lazy_plots()
    for col, vals in seen.items():
        kv = fin[col].cast(pl.Float64, strict=False).drop_nulls().to_list() if fin is not None and col in fin.columns else None
        values = vals.to_list()
        sec.plot(lambda c=col, v=values, k=kv: plots.score_hist(c, v, th.get(c, []), k), f"{col} distribution")
    return sec


# ---------------------------------------------------------------- per-rule drops and auto cuts

N_EXAMPLES = 3


def _cut(text: Any, n: int = 120) -> str:
    t = " ".join(str(text or "").split())
    return t if len(t) <= n else t[: n - 1] + "…"


def _turn(msgs: Any, role: str) -> str:
    seq = [m for m in (msgs or []) if m.get("role") == role]
    return _cut(seq[-1].get("content")) if seq else ""


def drop_rules(run: Run) -> Section | None:
    """Per stage and drop rule (``drop_code``): rows dropped and three examples."""
    counts: list[list[Any]] = []
    examples: list[tuple[str, list[list[Any]]]] = []
    for s in run.data_stages:
        d = s.dropped()
        if d is None or d.height == 0 or "drop_code" not in d.columns:
            continue
        by_code = d.group_by("drop_code", maintain_order=True).len().sort("len", descending=True)
        rows = []
        for code, n in by_code.iter_rows():
            counts.append([s.folder, code, n])
            sample = d.filter(pl.col("drop_code") == code).head(N_EXAMPLES)
            for r in sample.iter_rows(named=True):
                rows.append([code, _turn(r.get("messages"), "user"), _turn(r.get("messages"), "assistant"),
                             _cut(r.get("drop_reason"), 160)])
        examples.append((s.folder, rows))
    if not counts:
        return None
    sec = Section("Drops per rule")
    sec.text(f"Rows each rule dropped (by `drop_code`), stage by stage, and up to {N_EXAMPLES} examples of each.")
    sec.table(["stage", "rule", "rows dropped"], counts)
    for folder, rows in examples:
        sec.blocks.append(("details", (f"{folder}: examples", ["rule", "prompt", "response", "reason"], rows)))
    return sec


def auto_cuts(run: Run) -> Section | None:
    """``auto`` thresholds placed by filter stages: the fit, the cut and a plot."""
    found = [(s, col, a) for s in run.by_name("filter")
             for col, a in (s.stats.get("auto_thresholds") or {}).items() if isinstance(a, dict)]
    if not found:
        return None
    sec = Section("Automatic thresholds")
    sec.text("`auto` places a cut from the score distribution: a two-component Gaussian mixture fitted to the "
             "scores; when the components are apart (separation, Ashman's D, >= 2) the cut is where the low one (the high one "
             "for a max rule) stops being the more likely, else median - 2.5 x 1.4826 x MAD.")
    rows = []
    for s, col, a in found:
        means = ", ".join(f"{m:.3g}" for m in a.get("means") or [])
        weights = ", ".join(f"{w:.2f}" for w in a.get("weights") or [])
        dropped = (s.stats.get("dropped_by_rule") or {}).get(f"{a.get('op', 'min')}:{col}")
        rows.append([s.folder, col, a.get("op", "min"), _fmt(a.get("threshold")), a.get("method"),
                     _fmt(a.get("separation")), means, weights, a.get("n"), dropped])
    sec.table(["stage", "score", "rule", "threshold", "method", "separation", "means", "weights", "rows", "dropped"],
              rows)
    plots = _lazy_plots()
    for s, col, a in found:
        frames = [f for f in (s.kept(), s.dropped()) if f is not None and col in f.columns]
        if not frames:
            continue
        vals = pl.concat([f[col].cast(pl.Float64, strict=False) for f in frames]).drop_nulls().drop_nans().to_list()
        if vals:
            sec.plot(lambda c=col, v=vals, fit=a: plots.auto_cut(c, v, fit, fit.get("threshold")), f"{col} auto cut")
    return sec


# ---------------------------------------------------------------- lengths


def _first_with_responses(run: Run):
    for s in run.data_stages:
        df = s.kept()
        if df is not None and has_responses(df):
            d = s.dropped()
            full = pl.concat([df, d.drop("drop_stage", "drop_reason", strict=False)], how="diagonal_relaxed") \
                if d is not None and d.height else df
            return s, full
    return None, None


def lengths(run: Run) -> Section | None:
    first, before = _first_with_responses(run)
    final = run.final
    if first is None or final is None:
        return None
    after = final.kept()
    b, a = response_lengths(before), response_lengths(after)
    sec = Section("Response lengths before and after curation")
    sec.text(f"Before: every response produced by {first.folder}; after: the final set ({final.folder}).")
    rows = []
    for label, s in (("before", b), ("after", a)):
        rows.append([label, s.len(), s.mean(), s.median(), s.quantile(0.9), s.max()])
    sec.table(["", "rows", "mean chars", "median", "p90", "max"], [[_fmt(v) for v in r] for r in rows])
    plots = _lazy_plots()
    sec.plot(lambda: plots.length_hist(b.to_list(), a.to_list()), "response lengths")
    return sec


# ---------------------------------------------------------------- duplicates and contamination


def duplicates(run: Run) -> Section | None:
    dd = run.by_name("dedup")
    if not dd:
        return None
    s = dd[-1]
    sec = Section("Duplicates")
    sec.text(f"{s.stats.get('rows_dropped', 0)} of {s.stats.get('rows_in', 0)} rows removed as duplicates by {s.folder}.")
    path = s.path / "clusters.parquet"
    if path.exists():
        cl = pl.read_parquet(path)
        col = next((c for c in cl.columns if "cluster" in c.lower()), None)
        if col and cl.height:
            sizes = cl.group_by(col).len().group_by("len").len(name="clusters").sort("len")
            counts = {int(k): int(v) for k, v in sizes.iter_rows()}
            sec.table(["cluster size", "clusters"], [[k, v] for k, v in counts.items()])
            plots = _lazy_plots()
            sec.plot(lambda: plots.cluster_sizes(counts), "duplicate cluster sizes")
    return sec


def contamination(run: Run) -> Section | None:
    dc = run.by_name("decontam")
    if not dc:
        return None
    s = dc[-1]
    d = s.dropped()
    sec = Section("Contamination")
    if d is None or d.height == 0:
        sec.text(f"No row matched a benchmark ({s.folder}, {s.stats.get('rows_in', 0)} rows checked).")
        return sec
    if "drop_code" in d.columns:  # rows rejected on read are not contamination
        d = d.filter(pl.col("drop_code") == "contaminated")
    if d.height == 0:
        sec.text(f"No row matched a benchmark ({s.folder}, {s.stats.get('rows_in', 0)} rows checked).")
        return sec
    key = d["benchmark"].cast(pl.String).fill_null("other") if "benchmark" in d.columns \
        else pl.Series(["other"] * d.height)
    counts = {str(k): int(v) for k, v in key.value_counts(sort=True).iter_rows()}
    sec.text(f"{d.height} rows dropped for overlapping a benchmark ({s.folder}).")
    sec.table(["benchmark", "hits"], [[k, v] for k, v in counts.items()])
    sec.table(["row id", "reason"], [[r, t] for r, t in d.select("id", "drop_reason").head(5).iter_rows()])
    plots = _lazy_plots()
    sec.plot(lambda: plots.barh("Contamination hits per benchmark", counts), "contamination hits")
    return sec


# ---------------------------------------------------------------- mix


def _find_mix_table(obj: Any) -> dict[str, dict[str, float]] | None:
    """Find {category: {wanted, available, taken}} in stats, whatever its exact shape."""
    if isinstance(obj, dict):
        if obj and all(isinstance(v, dict) and "taken" in v for v in obj.values()):
            return obj
        for v in obj.values():
            found = _find_mix_table(v)
            if found:
                return found
    if isinstance(obj, list) and obj and all(isinstance(r, dict) and "taken" in r and "category" in r for r in obj):
        return {str(r["category"]): r for r in obj}
    return None


def category_mix(run: Run) -> Section | None:
    mx = run.by_name("mix")
    if not mx:
        return None
    s = mx[-1]
    table = _find_mix_table(s.stats)
    if not table:
        taken = s.stats.get("kept_by_category") or {}
        dropped = s.stats.get("dropped_by_category") or {}
        table = {c: {"wanted": None, "available": taken.get(c, 0) + dropped.get(c, 0), "taken": taken.get(c, 0)}
                 for c in sorted(set(taken) | set(dropped))}
    cats = list(table)
    sec = Section("Category mix: wanted vs taken")
    rows = [[c, table[c].get("wanted"), table[c].get("available"), table[c].get("taken")] for c in cats]
    sec.table(["category", "wanted", "available", "taken"], [[_fmt(v) for v in r] for r in rows])

    def num(v):
        return float(v) if isinstance(v, (int, float)) else 0.0

    plots = _lazy_plots()
    sec.plot(lambda: plots.mix(cats, [num(table[c].get("wanted")) for c in cats], [num(table[c].get("taken")) for c in cats],
                               [num(table[c].get("available")) for c in cats]), "category mix")
    return sec


# ---------------------------------------------------------------- training


def loss_points(folder) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(step, loss) points for training and validation from a train stage's metrics JSONL."""
    train: list[tuple[float, float]] = []
    val: list[tuple[float, float]] = []
    for path in sorted(folder.rglob("*.jsonl")):
        if "metrics" not in path.name and "log" not in path.name:
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if not isinstance(r, dict) or "step" not in r:
                continue
            step = float(r["step"])
            kind = str(r.get("split") or r.get("kind") or r.get("phase") or "")
            for key in ("val_loss", "eval_loss", "validation_loss"):
                if isinstance(r.get(key), (int, float)):
                    val.append((step, float(r[key])))
            for key in ("train_loss", "loss"):
                if isinstance(r.get(key), (int, float)):
                    (val if kind in ("val", "eval", "validation") else train).append((step, float(r[key])))
                    break
    return train, val


def training(run: Run) -> Section | None:
    tr = run.by_name("train")
    if not tr:
        return None
    s = tr[-1]
    train, val = loss_points(s.path)
    sec = Section("Training")
    base = s.stats.get("base") or s.config.get("base")  # the train stage declares it in stats
    facts = [["base model", base], ["training rows", s.stats.get("rows_in")]]
    for key in ("steps", "optimizer_steps", "epochs", "best_val_loss", "final_train_loss", "tokens_per_s", "seconds"):
        if key in s.stats:
            facts.append([key.replace("_", " "), s.stats[key]])
    if train:
        facts.append(["first / last train loss", f"{train[0][1]:.4f} / {train[-1][1]:.4f}"])
    if val:
        facts.append(["first / best validation loss", f"{val[0][1]:.4f} / {min(v for _, v in val):.4f}"])
    adapter = s.path / "adapter"
    if adapter.exists():
        facts.append(["adapter", str(adapter)])
    sec.table(["", "value"], [[k, _fmt(v)] for k, v in facts])
    if train or val:
        plots = _lazy_plots()
        sec.plot(lambda: plots.loss_curves(train, val), "loss curves")
    return sec


# ---------------------------------------------------------------- label bias


def bias_indicators(df: pl.DataFrame) -> dict[str, float | None]:
    """Shares of responses that open by agreeing, refuse, and were cut at the length limit."""
    if df is None or df.height == 0:
        return {"agree": None, "refusal": None, "truncated": None}
    r = responses(df)
    agree = r.str.contains(AGREE_RE).mean()
    refusal = r.str.slice(0, 300).str.contains(REFUSAL_RE).mean()
    truncated = None
    if "finish_reason" in df.columns:
        truncated = float((df["finish_reason"].cast(pl.String) == "length").fill_null(False).mean())
    return {"agree": float(agree), "refusal": float(refusal), "truncated": truncated}


def label_bias(run: Run) -> Section | None:
    first, before = _first_with_responses(run)
    final = run.final
    if first is None or final is None:
        return None
    b, a = bias_indicators(before), bias_indicators(final.kept())
    sec = Section("Label-bias indicators")
    sec.text("Share of responses that open by agreeing with the user, that refuse, and that were cut at the "
             "generation length limit (finish_reason = length), before and after curation.")
    names = {"agree": "opens by agreeing", "refusal": "refusal", "truncated": "truncated"}
    sec.table(["indicator", f"before ({first.folder})", f"after ({final.folder})"],
              [[names[k], "n/a" if b[k] is None else _pct(b[k]), "n/a" if a[k] is None else _pct(a[k])] for k in names])
    plots = _lazy_plots()
    sec.plot(lambda: plots.grouped("Label-bias indicators", list(names.values()),
                                   {"before": [100 * (b[k] or 0) for k in names], "after": [100 * (a[k] or 0) for k in names]},
                                   "% of responses"), "label bias")
    return sec
