"""Training metrics: JSONL (always), TensorBoard (when installed), a loss-curve PNG at the end.

``metrics.jsonl`` has one JSON object per line: optimiser steps (``step``, ``loss``, ``lr``,
``grad_norm``, ``tokens``, ``tokens_per_s`` ...) and evaluations (``step``, ``val_loss``).
On resume the lines after the checkpoint's step are dropped, so the file always describes
one uninterrupted run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

METRICS = "metrics.jsonl"
CURVES = "loss_curves.png"


class MetricsWriter:
    """Append metrics records to ``run_dir/metrics.jsonl`` (and TensorBoard when available).

    Only the main process writes (``enabled=False`` elsewhere).
    """

    def __init__(self, run_dir: Path, *, enabled: bool = True, tensorboard: bool = True):
        self.path = Path(run_dir) / METRICS
        self.enabled = enabled
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
            except ImportError:
                self._tb = None

    def truncate_after(self, step: int) -> None:
        """Drop records after ``step`` (a resumed run recomputes them)."""
        if not self.enabled or not self.path.exists():
            return
        from thresher.io.atomic import write_text_atomic

        keep = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def reset(self) -> None:
        """Start a fresh file (a run from step 0)."""
        if self.enabled and self.path.exists():
            self.path.unlink()

    def log(self, record: dict[str, Any]) -> None:
        """Append one record (a dict with ``step``)."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
        if self._tb is not None:
            step = int(record.get("step", 0))
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(_tb_name(k), v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None


def _tb_name(key: str) -> str:
    return {"loss": "loss/train", "val_loss": "loss/val"}.get(key, f"train/{key}")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Records of a ``metrics.jsonl`` (a torn last line from a killed process is skipped)."""
    out = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def plot_losses(records: list[dict[str, Any]], out: Path) -> Path | None:
    """Write a PNG of the train (per step) and validation loss curves; None when there is no data."""
    train = [(r["step"], r["loss"]) for r in records if "loss" in r and _finite(r["loss"])]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r and _finite(r["val_loss"])]
    if not train and not val:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train", linewidth=1.2)
    if val:
        ax.plot(*zip(*val), label="validation", marker="o", linewidth=1.5)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss (mean per trainable token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
