"""bf16 vs fp32 training: loss curves over 20 packed steps, tokens/s, and the parity check.

Trains the same LoRA (r 16, alpha 32, dropout 0, lr 2e-4 constant, packing 2 x 512) on the
same rows twice with ``thresher.train``: ``dtype="fp32"`` and ``dtype="bf16"`` (bf16 base, fp32
LoRA masters, autocast). Prints both curves, the per-step relative loss differences and writes a
plot (``--plot``). Tolerance: every step within 2% and the mean within 1% (bf16 keeps 8 bits of
mantissa, ~0.4% per rounding; rounding the pretrained base weights alone shifts SmolLM2's loss
by ~0.3%, and spikes on hard batches amplify it).

    python benchmarks/precision.py                  # SmolLM2-135M, 20 steps
    python benchmarks/precision.py --model tiny     # the tiny random Llama, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("THRESHER_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_json, record  # noqa: E402

from train import make_rows, resolve_bench_model  # noqa: E402

RTOL_STEP, RTOL_MEAN = 0.02, 0.01


def train(model: Path, data: Path, out: Path, dtype: str, steps: int, threads: int) -> dict:
    from thresher.train.config import TrainConfig
    from thresher.train.stage import run

    cfg = TrainConfig(base=str(model), r=16, alpha=32, dropout=0.0, lr=2e-4, warmup=0.0, schedule="constant",
                      batch_size=2, max_steps=steps, max_length=512, packing=True, save_every=10**6,
                      dtype=dtype, seed=0, threads=threads)
    return run([data], out, cfg, force=True).stats


def plot(curves: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, ys in curves.items():
        ax.plot(range(1, len(ys) + 1), ys, marker="o", ms=3, label=name)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="smollm2 (default), tiny, or a model folder")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plot", type=Path, default=Path(__file__).resolve().parent / "results" / "bf16_parity.png")
    ap.add_argument("--json", action="store_true", help="print the records as JSON (the table goes to stderr)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="thresher-bench-precision-"))
    try:
        model, label = resolve_bench_model(args.model, work)
        data = work / "rows.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in make_rows(12 * args.steps)), encoding="utf-8")
        with contextlib.redirect_stdout(sys.stderr):
            stats = {}
            for dt in ("fp32", "bf16"):
                stats[dt] = train(model, data, work / dt, dt, args.steps, args.threads)
                print(f"partial {dt}: tokens/s {stats[dt]['tokens_per_s']}, losses {stats[dt]['losses']}",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    curves = {dt: [x for _, x in s["losses"]] for dt, s in stats.items()}
    rel = [abs(a - b) / a for a, b in zip(curves["fp32"], curves["bf16"])]
    worst, mean = max(rel), sum(rel) / len(rel)
    speed = stats["bf16"]["tokens_per_s"] / stats["fp32"]["tokens_per_s"]
    title = f"{label}, LoRA r16, packing 2x512: bf16 vs fp32 (rel. diff max {worst:.2%}, mean {mean:.2%})"
    plot(curves, args.plot, title)
    bench = f"precision/{label}"
    recs = [record(bench, "thresher (packing)", "max_rel_loss_diff_bf16_vs_fp32", worst, "", False),
            record(bench, "thresher (packing)", "mean_rel_loss_diff_bf16_vs_fp32", mean, "", False),
            record(bench, "thresher (packing)", "tokens_per_s_bf16_vs_fp32", speed, "x", False)]
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        print(f"{label}, {args.steps} steps, {args.threads} threads; {machine()}")
        print(f"{'step':>4} {'fp32 loss':>10} {'bf16 loss':>10} {'rel diff':>9}")
        for i, (a, b) in enumerate(zip(curves["fp32"], curves["bf16"]), 1):
            print(f"{i:>4} {a:>10.4f} {b:>10.4f} {abs(a - b) / a:>9.3%}")
        ok = "within" if worst <= RTOL_STEP and mean <= RTOL_MEAN else "OUTSIDE"
        print(f"relative difference: largest {worst:.3%}, mean {mean:.3%} ({ok} the tolerance: "
              f"{RTOL_STEP:.0%} per step, {RTOL_MEAN:.0%} mean); tokens/s "
              f"fp32 {stats['fp32']['tokens_per_s']:.0f}, bf16 {stats['bf16']['tokens_per_s']:.0f} "
              f"({speed:.2f}x); plot: {args.plot}")
    if args.json:
        print_json(recs)
    if worst > RTOL_STEP or mean > RTOL_MEAN:
        sys.exit(1)


if __name__ == "__main__":
    main()
