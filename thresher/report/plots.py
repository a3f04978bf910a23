"""Matplotlib plots for the run report; each function returns PNG bytes.

Only imported when a report is written (matplotlib is heavy); uses the Agg backend.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = ("#3b6ea8", "#e07b39", "#4d9a5b", "#b5473c", "#7e5aa8", "#8c6d46", "#d16fae", "#7f7f7f")


def _as_text(fig) -> None:
    """Labels from data (categories, stage names) drawn as themselves: no mathtext for ``$``,
    control characters (which no font has) shown escaped."""
    from matplotlib.text import Text

    for t in fig.findobj(Text):
        t.set_parse_math(False)
        label = t.get_text()
        if label and not label.isprintable():
            t.set_text("".join(c if c.isprintable() else repr(c)[1:-1] for c in label))


def _png(fig) -> bytes:
    buf = io.BytesIO()
    _as_text(fig)
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")  # legends outside the axes stay in
    plt.close(fig)
    return buf.getvalue()


def funnel(stages: Sequence[str], kept: Sequence[int]) -> bytes:
    """Rows kept after every stage (bar chart)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bars = ax.bar(range(len(stages)), kept, color=COLORS[0])
    ax.set_xticks(range(len(stages)), stages, rotation=30, ha="right")
    ax.set_ylabel("rows kept")
    ax.set_title("Rows kept after each stage")
    for b, v in zip(bars, kept):
        ax.annotate(str(v), (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=8)
    return _png(fig)


def funnel_by_category(stages: Sequence[str], counts: Mapping[str, Sequence[int]],
                       max_panels: int = 12) -> bytes:
    """Rows kept after every stage: one small panel per category (shared axes), so categories
    with equal counts (a balanced mix) do not hide behind each other; the largest
    ``max_panels`` categories are shown."""
    items = sorted(counts.items(), key=lambda kv: (-(kv[1][0] if kv[1] else 0), kv[0]))[:max_panels]
    n = max(len(items), 1)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.3 * rows + 0.6), sharex=True, sharey=True,
                             squeeze=False)
    x = range(len(stages))
    for k, ax in enumerate(axes.flat):
        if k >= len(items):
            ax.axis("off")
            continue
        cat, values = items[k]
        ax.plot(x, values, marker="o", color=COLORS[k % len(COLORS)])
        for i, v in enumerate(values):
            ax.annotate(str(v), (i, v), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)
        ax.set_title(cat, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_xticks(list(x), stages, rotation=45, ha="right", fontsize=7)
        ax.tick_params(labelbottom=True)
        ax.margins(y=0.25)
    fig.supylabel("rows kept", fontsize=9)
    fig.suptitle("Rows kept after each stage, by category")
    return _png(fig)


def score_hist(name: str, values: Sequence[float], thresholds: Sequence[float] = (),
               kept: Sequence[float] | None = None) -> bytes:
    """Histogram of a score column with thresholds marked as vertical lines."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(values, bins=30, color=COLORS[0], alpha=0.6, label="scored")
    if kept is not None and len(kept):
        ax.hist(kept, bins=30, color=COLORS[2], alpha=0.6, label="in final set")
    for t in thresholds:
        ax.axvline(t, color=COLORS[3], linestyle="--", label=f"threshold {t:g}")
    ax.set_xlabel(name)
    ax.set_ylabel("rows")
    ax.set_title(f"Distribution of {name}")
    ax.legend(fontsize=8)
    return _png(fig)


def length_hist(before: Sequence[int], after: Sequence[int], unit: str = "characters") -> bytes:
    """Response length distributions before and after curation."""
    fig, ax = plt.subplots(figsize=(6, 3))
    top = max([*before, *after, 1])
    bins = [top * i / 30 for i in range(31)]
    ax.hist(before, bins=bins, color=COLORS[1], alpha=0.55, label=f"before ({len(before)})")
    ax.hist(after, bins=bins, color=COLORS[0], alpha=0.55, label=f"after ({len(after)})")
    ax.set_xlabel(f"response length ({unit})")
    ax.set_ylabel("rows")
    ax.set_title("Response lengths before and after curation")
    ax.legend(fontsize=8)
    return _png(fig)


def cluster_sizes(sizes: Mapping[int, int]) -> bytes:
    """Number of duplicate clusters by cluster size."""
    fig, ax = plt.subplots(figsize=(6, 3))
    xs = sorted(sizes)
    ax.bar([str(x) for x in xs], [sizes[x] for x in xs], color=COLORS[4])
    ax.set_xlabel("cluster size (rows)")
    ax.set_ylabel("clusters")
    ax.set_title("Duplicate cluster sizes")
    return _png(fig)


def barh(title: str, counts: Mapping[str, float], xlabel: str = "rows") -> bytes:
    """Horizontal bar chart of named counts (contamination hits per benchmark ...)."""
    fig, ax = plt.subplots(figsize=(6, 0.4 * max(len(counts), 3) + 1))
    names = list(counts)
    ax.barh(names, [counts[n] for n in names], color=COLORS[3])
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return _png(fig)


def mix(categories: Sequence[str], wanted: Sequence[float], taken: Sequence[float],
        available: Sequence[float] | None = None) -> bytes:
    """Category mix: wanted vs taken (and available) rows per category."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    x = list(range(len(categories)))
    w = 0.27 if available is not None else 0.4
    ax.bar([i - w for i in x] if available is not None else [i - w / 2 for i in x], wanted, w,
           label="wanted", color=COLORS[0])
    ax.bar([i for i in x] if available is not None else [i + w / 2 for i in x], taken, w,
           label="taken", color=COLORS[2])
    if available is not None:
        ax.bar([i + w for i in x], available, w, label="available", color=COLORS[7], alpha=0.6)
    ax.set_xticks(x, categories, rotation=30, ha="right")
    ax.set_ylabel("rows")
    ax.set_title("Category mix: wanted vs taken")
    ax.margins(y=0.1)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside the bars
    return _png(fig)


def loss_curves(train: Sequence[tuple[float, float]], val: Sequence[tuple[float, float]]) -> bytes:
    """Training and validation loss against optimiser step."""
    fig, ax = plt.subplots(figsize=(6, 3))
    if train:
        ax.plot([s for s, _ in train], [v for _, v in train], label="train", color=COLORS[0])
    if val:
        ax.plot([s for s, _ in val], [v for _, v in val], label="validation", color=COLORS[1], marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Training and validation loss")
    ax.legend(fontsize=8)
    return _png(fig)


def grouped(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]], ylabel: str) -> bytes:
    """Grouped bars: one group per label, one bar per series (label bias before/after ...)."""
    fig, ax = plt.subplots(figsize=(6, 3))
    n = max(len(series), 1)
    w = 0.8 / n
    for k, (name, values) in enumerate(series.items()):
        bars = ax.bar([i - 0.4 + w * (k + 0.5) for i in range(len(labels))], values, w, label=name,
                      color=COLORS[k % len(COLORS)])
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)


def auto_cut(name: str, values: Sequence[float], fit: Mapping, threshold: float | None) -> bytes:
    """Score histogram (as a density) with the fitted two-component mixture and the ``auto`` cut."""
    import math

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(values, bins=40, density=True, color=COLORS[0], alpha=0.5, label=f"scores ({len(values)})")
    lo, hi = min(values), max(values)
    xs = [lo + (hi - lo) * i / 300 for i in range(301)]
    for k, label in enumerate(("low component", "high component")):
        try:
            w, m, s = fit["weights"][k], fit["means"][k], fit["stds"][k]
        except (KeyError, IndexError, TypeError):
            break
        ys = [w * math.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi)) for x in xs]
        ax.plot(xs, ys, color=COLORS[3 if k == 0 else 2], label=f"{label} (w={w:.2f}, mean={m:.2f})")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label=f"auto cut {threshold:.3g}")
    ax.set_xlabel(name)
    ax.set_ylabel("density")
    ax.set_title(f"auto threshold on {name}")
    ax.legend(fontsize=7)
    return _png(fig)
