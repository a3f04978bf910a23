"""Benchmark ``thresher train lora`` (with and without packing) against TRL's SFTTrainer.

Setup, identical for every contender:

- a tiny random Llama-style model (hidden 256, 4 layers, 4 heads, MLP 1024) with the real
  SmolLM2 tokenizer and chat template (vocab 49,152; the default model is converted once);
- the same LoRA (r 16, alpha 32, dropout 0, every linear layer of attention and MLP), AdamW
  at lr 2e-4 with a cosine schedule, no warmup, no gradient clipping differences that matter;
- the same rows: single-turn conversations (system, user, assistant) whose user and
  assistant word counts are lognormal, from real English words (CPython's pydoc topics);
- the same number of optimiser steps, ``--threads`` torch threads (default 2), fp32 on CPU,
  no gradient checkpointing (TRL's default of True is turned off to match);
- each contender in its own subprocess, so peak RSS (``ru_maxrss``) is its own.

Contenders: thresher without packing (``--batch`` rows per step, padded), thresher with
packing (``--pack-batch`` packs of ``--pack-length`` tokens per step, block-diagonal
attention), TRL ``SFTTrainer`` with completion-only loss (prompt-completion rows,
``--batch`` rows per step, padded).

Printed: real (non-pad) tokens/s over steps 2..N, seconds per step, peak RSS, and the loss
difference at the first step on an *identical* batch (TRL's first collated batch, scored by
TRL's ``compute_loss`` and by thresher's token loss; must agree within 1e-4).

Usage: ``python benchmarks/train.py`` (about 5 minutes on 2 free cores);
``--steps``, ``--rows``, ``--threads`` to change the run; ``--json`` for machine output.
"""

from __future__ import annotations

import os

os.environ.setdefault("THRESHER_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import math
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LORA = {"r": 16, "alpha": 32.0, "dropout": 0.0}
LR = 2e-4
SYSTEM = "You are a helpful assistant."


# ------------------------------------------------------------------------------------------
# shared setup (parent process)
# ------------------------------------------------------------------------------------------

def build_model(folder: Path) -> Path:
    """Tiny random Llama (hidden 256, 4 layers) + the SmolLM2 tokenizer, saved to ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig
    from transformers.utils import logging as hf_logging

    from thresher.models import resolve_model

    hf_logging.disable_progress_bar()
    smol = resolve_model(None)
    tok = AutoTokenizer.from_pretrained(str(smol))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def make_rows(n: int, seed: int = 0) -> list[dict]:
    """Conversations with lognormal user/assistant lengths (in words) from real English text."""
    from pydoc_data import topics

    words = re.findall(r"[A-Za-z][a-z]+", " ".join(topics.topics.values()))
    rng = random.Random(seed)

    def text(mu: float, sigma: float, cap: int) -> str:
        k = max(1, min(cap, int(rng.lognormvariate(mu, sigma))))
        start = rng.randrange(0, len(words) - k)
        return " ".join(words[start:start + k])

    return [{"id": f"b{i}", "category": "bench", "source": "bench",
             "messages": [{"role": "system", "content": SYSTEM},
                          {"role": "user", "content": text(3.0, 0.7, 150)},
                          {"role": "assistant", "content": text(4.0, 0.8, 500)}]}
            for i in range(n)]


# ------------------------------------------------------------------------------------------
# workers (one subprocess each)
# ------------------------------------------------------------------------------------------

def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_thresher(args: argparse.Namespace, packed: bool) -> dict:
    import torch

    from thresher.train.config import TrainConfig
    from thresher.train.metrics import read_metrics
    from thresher.train.stage import run

    torch.set_num_threads(args.threads)
    out = Path(args.work) / ("thresher-packed" if packed else "thresher")
    shutil.rmtree(out, ignore_errors=True)
    cfg = TrainConfig(base=str(args.model), r=LORA["r"], alpha=LORA["alpha"], dropout=LORA["dropout"],
                      lr=LR, warmup=0.0, schedule="cosine", max_steps=args.steps, seed=0,
                      batch_size=args.pack_batch if packed else args.batch, grad_accum=1,
                      packing=packed, max_length=args.pack_length, save_every=10**6, threads=args.threads)
    run([Path(args.data)], out, cfg, force=True)
    recs = [r for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    timed = recs[1:]
    secs = sum(r["seconds"] for r in timed)
    toks = sum(r["tokens"] for r in timed)
    return {"name": "thresher + packing" if packed else "thresher", "steps": len(recs),
            "tokens_per_s": toks / secs, "s_per_step": secs / len(timed), "peak_rss_mb": _peak_rss_mb(),
            "first_loss": recs[0]["loss"], "last_loss": recs[-1]["loss"]}


def worker_trl(args: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from thresher.train.loop import count_trainable, token_loss_sum
    from thresher.train.model import default_target_modules

    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(str(args.model))
    rows = [json.loads(x) for x in Path(args.data).read_text().splitlines()]
    ds = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(args.model), dtype=torch.float32, attn_implementation="sdpa")
    model = get_peft_model(base, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                            target_modules=default_target_modules(base), task_type="CAUSAL_LM"))
    conf = SFTConfig(output_dir=str(Path(args.work) / "trl"), per_device_train_batch_size=args.batch,
                     gradient_accumulation_steps=1, max_steps=args.steps, learning_rate=LR,
                     lr_scheduler_type="cosine", warmup_steps=0, logging_steps=1, save_strategy="no",
                     report_to=[], use_cpu=True, bf16=False, fp16=False, max_length=args.pack_length,
                     completion_only_loss=True, seed=0, dataloader_num_workers=0, max_grad_norm=1.0,
                     disable_tqdm=True, include_num_input_tokens_seen="non_padding",
                     gradient_checkpointing=False)  # TRL defaults to True; thresher to False

    times: list[float] = []
    tokens: list[int] = []

    class Timer(TrainerCallback):
        seen = 0

        def on_step_begin(self, _args, state, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, _args, state, *a, **k):
            times.append(time.perf_counter() - self.t0)
            tokens.append(int(state.num_input_tokens_seen) - self.seen)
            self.seen = int(state.num_input_tokens_seen)

    trainer = SFTTrainer(model=model, args=conf, train_dataset=ds, processing_class=tok, callbacks=[Timer()])

    # first-step loss on an identical batch: TRL's first collated batch, scored both ways
    batch = next(iter(trainer.get_train_dataloader()))
    batch = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
    model.eval()
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(model, dict(batch)))
        ours = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
        thr_loss = float(token_loss_sum(model, ours)) / count_trainable(ours)
    model.train()

    trainer.train()
    logs = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    timed = times[1:]
    secs = sum(timed)
    return {"name": "TRL SFTTrainer", "steps": len(times), "tokens_per_s": sum(tokens[1:]) / secs,
            "s_per_step": secs / len(timed), "peak_rss_mb": _peak_rss_mb(),
            "first_loss": logs[0] if logs else None, "last_loss": logs[-1] if logs else None,
            "identical_batch": {"trl": trl_loss, "thresher": thr_loss, "abs_diff": abs(trl_loss - thr_loss)}}


# ------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------

def _spawn(args: argparse.Namespace, which: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", which, "--model", str(args.model), "--data", str(args.data),
           "--work", str(args.work), "--steps", str(args.steps), "--batch", str(args.batch),
           "--pack-batch", str(args.pack_batch), "--pack-length", str(args.pack_length),
           "--threads", str(args.threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{which} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8, help="rows per step without packing (thresher and TRL)")
    ap.add_argument("--pack-batch", type=int, default=2, help="packs per step with packing")
    ap.add_argument("--pack-length", type=int, default=1024, help="pack length (and max length everywhere)")
    ap.add_argument("--rows", type=int, default=0, help="rows (default: enough for every contender)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", choices=["thresher", "thresher-packed", "trl"])
    ap.add_argument("--model")
    ap.add_argument("--data")
    ap.add_argument("--work")
    args = ap.parse_args()
    if args.worker:
        res = {"thresher": lambda: worker_thresher(args, False), "thresher-packed": lambda: worker_thresher(args, True),
               "trl": lambda: worker_trl(args)}[args.worker]()
        print(json.dumps(res))
        return

    work = Path(tempfile.mkdtemp(prefix="thresher-bench-train-"))
    try:
        args.work = work
        args.model = build_model(work / "model")
        n = args.rows or max(args.steps * args.batch, 16 * args.steps * args.pack_batch)
        args.data = work / "rows.jsonl"
        args.data.write_text("".join(json.dumps(r) + "\n" for r in make_rows(n)), encoding="utf-8")
        results = [_spawn(args, w) for w in ("thresher", "thresher-packed", "trl")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    trl = results[-1]
    print(f"tiny Llama (hidden 256, 4 layers, vocab 49152), LoRA r16 all linear, {args.steps} steps, "
          f"{args.threads} threads, {n} rows (lognormal lengths)")
    print(f"{'contender':<22}{'tokens/s':>10}{'s/step':>9}{'peak RSS MB':>13}{'vs TRL':>8}{'loss 1st->last':>18}")
    for r in results:
        print(f"{r['name']:<22}{r['tokens_per_s']:>10.0f}{r['s_per_step']:>9.3f}{r['peak_rss_mb']:>13.0f}"
              f"{r['tokens_per_s'] / trl['tokens_per_s']:>7.2f}x"
              f"{r['first_loss']:>9.4f}->{r['last_loss']:.4f}")
    ib = trl["identical_batch"]
    ok = "OK" if ib["abs_diff"] <= 1e-4 else "MISMATCH"
    print(f"first-step loss on an identical batch: TRL {ib['trl']:.6f}, thresher {ib['thresher']:.6f}, "
          f"|diff| {ib['abs_diff']:.2e} ({ok}, limit 1e-4)")
    packed = results[1]
    target = packed["tokens_per_s"] >= 1.3 * trl["tokens_per_s"] and packed["peak_rss_mb"] <= trl["peak_rss_mb"]
    print(f"target (packing >= 1.3x TRL tokens/s at no more peak RSS): {'met' if target else 'NOT met'}")
    if not math.isfinite(ib["abs_diff"]) or ib["abs_diff"] > 1e-4:
        sys.exit(1)


if __name__ == "__main__":
    main()
