"""Benchmark: reward-model scoring in input order versus thresher's length-sorted batching.

Scores the same N conversations (lognormal token lengths, mean about 200 tokens, built from
CPython's English prose) with a random sequence-classification reward model on the CPU, in
batches cut in input order, in thresher's length-sorted batches (same batch size, no token
budget, so only the order differs), and sorted with thresher's default padded-token budget.
Prints tokens per second, padding fraction and the speed-up over input order, and checks
that every batching gives the same scores.

    python benchmarks/score.py                 # 2,000 conversations
    python benchmarks/score.py --size 300      # quick run

The tokenizer is SmolLM2's (real, with its chat template; converted once and cached);
the model is a random Llama-style classifier (``--hidden``/``--layers``).
"""

from __future__ import annotations

import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_json, record  # noqa: E402


def build_model(out: Path, hidden: int, layers: int) -> Path:
    """A random one-label reward model with SmolLM2's tokenizer in ``out``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, LlamaConfig

    from thresher.models import resolve_model

    src = Path(resolve_model(None))
    for f in src.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(f, out / f.name)
    tok = AutoTokenizer.from_pretrained(out)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=max(1, hidden // 32),
        num_key_value_heads=max(1, hidden // 64), max_position_embeddings=4096,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        num_labels=1, tie_word_embeddings=False,
    )
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(out)
    return out


def make_conversations(n: int, mean_tokens: float, sigma: float, seed: int = 0) -> list:
    """Conversations whose lengths are lognormal with the given mean (in rough tokens)."""
    from pydoc_data import topics

    words = " ".join(topics.topics.values()).split()
    rng = random.Random(seed)
    mu = math.log(mean_tokens) - sigma**2 / 2
    out = []
    for _ in range(n):
        total = max(8, int(rng.lognormvariate(mu, sigma) * 0.6))  # ~1.6 tokens per word
        q = max(3, total // 5)
        a = rng.randrange(0, len(words) - total - 1)
        out.append([
            {"role": "user", "content": " ".join(words[a : a + q])},
            {"role": "assistant", "content": " ".join(words[a + q : a + total])},
        ])
    return out


def timed(fn, *args) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result)."""
    t, c = time.perf_counter(), time.process_time()
    res = fn(*args)
    return time.perf_counter() - t, time.process_time() - c, res


@click.command()
@click.option("--size", "-n", type=int, default=2000, show_default=True, help="Conversations.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--mean-tokens", type=float, default=200, show_default=True)
@click.option("--sigma", type=float, default=0.8, show_default=True, help="Lognormal sigma.")
@click.option("--hidden", type=int, default=64, show_default=True)
@click.option("--layers", type=int, default=2, show_default=True)
@click.option("--budget", type=int, default=16384, show_default=True,
              help="Padded-token budget per batch for the sorted+budget run.")
@click.option("--threads", type=int, default=None, help="torch threads (default: torch's).")
@click.option("--dtype", default="float32", show_default=True,
              help="Scorer dtype: float32, bfloat16 or auto (bf16 where the CPU has native bf16).")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON (the table goes to stderr).")
def main(size, batch_size, mean_tokens, sigma, hidden, layers, budget, threads, dtype, as_json):
    import contextlib

    with contextlib.redirect_stdout(sys.stderr if as_json else sys.stdout):
        records = _bench(size, batch_size, mean_tokens, sigma, hidden, layers, budget, threads, dtype)
    if as_json:
        print_json(records)


def _bench(size, batch_size, mean_tokens, sigma, hidden, layers, budget, threads, dtype) -> list[dict]:
    """Score the same conversations three ways; print the table, return the records."""
    import torch

    from thresher.curate.score.batching import make_batches, padding_stats
    from thresher.curate.score.reward import RewardScorer

    if threads:
        torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="thresher-bench-"))
    try:
        path = build_model(tmp, hidden, layers)
        convs = make_conversations(size, mean_tokens, sigma)
        kw = {"batch_size": batch_size, "max_length": 4096, "device": "cpu", "dtype": dtype}
        runs = [  # (label, sort, token budget)
            ("input order", False, None),
            ("length-sorted", True, None),
            ("sorted+budget", True, budget),
        ]
        scorers = {label: RewardScorer(str(path), sort=sort, max_batch_tokens=b, **kw)
                   for label, sort, b in runs}
        tok_wall, _, prepared = timed(scorers["input order"].prepare, convs)
        lengths = [len(p.ids) for p in prepared]
        for scorer in scorers.values():
            scorer.score(convs[:4])  # warm up (model load, kernels)
        rows = []
        results = {}
        for label, sort, b in runs:
            wall, cpu, res = timed(scorers[label].score, convs)
            pad = padding_stats(lengths, make_batches(lengths, batch_size, max_batch_tokens=b,
                                                      sort=sort))
            rows.append((label, wall, cpu, pad.real_tokens / wall,
                         pad.real_tokens / max(wall - tok_wall, 1e-9),
                         pad.padding_fraction, pad.batches))
            results[label] = [r.score for r in res]
        base = results["input order"]
        diff = max(abs(a - b) for other in results.values() for a, b in zip(base, other))
        mean_len = sum(lengths) / len(lengths)
        print(f"\n{size} conversations, {sum(lengths):,} tokens (mean {mean_len:.0f}, "
              f"max {max(lengths)}), batch {batch_size}, random reward model hidden {hidden} x "
              f"{layers} layers, {torch.get_num_threads()} threads, dtype {dtype}; {machine()}")
        print(f"tokenising with the chat template (same for every batching): {tok_wall:.2f} s")
        print(f"{'batching':<15}{'wall s':>9}{'cpu s':>9}{'tokens/s':>11}{'model tok/s':>13}"
              f"{'padding':>9}{'batches':>9}{'speed-up':>10}{'model':>8}")
        for label, wall, cpu, tps, mtps, padf, nb in rows:
            print(f"{label:<15}{wall:>9.2f}{cpu:>9.2f}{tps:>11,.0f}{mtps:>13,.0f}{padf:>8.1%}"
                  f"{nb:>9}{tps / rows[0][3]:>9.2f}x{mtps / rows[0][4]:>7.2f}x")
        print("tokens/s: real tokens per wall second end to end (tokenising included); model "
              "tok/s: the same without the tokenising time")
        print(f"(target: length-sorted >= 2x input order; sorted+budget caps a batch at "
              f"{budget} padded tokens, thresher's default)")
        print(f"max |score difference| between batchings: {diff:.2e}")
        bench = f"score/reward-h{hidden}x{layers}/{dtype}"
        records = []
        for label, _wall, _cpu, tps, mtps, padf, _nb in rows:
            records += [record(bench, f"thresher ({label})", "tokens_per_s", tps, "tokens/s", False),
                        record(bench, f"thresher ({label})", "model_tokens_per_s", mtps, "tokens/s", False),
                        record(bench, f"thresher ({label})", "padding_fraction", padf, "", False)]
        records.append(record(bench, "thresher (length-sorted)", "tokens_per_s_vs_input order",
                              rows[1][3] / rows[0][3], "x", False))
        return records
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
