"""Benchmark ``thresher train lora`` against TRL's SFTTrainer, each at its best, in fp32 and bf16.

Setup, identical for every contender:

- the real SmolLM2-135M-Instruct (``--model tiny``: a random Llama, hidden 256, 4 layers, with
  the SmolLM2 tokenizer; ``--model PATH``: any local folder);
- the same LoRA (r 16, alpha 32, dropout 0, every linear layer of attention and MLP), AdamW at
  lr 2e-4, cosine schedule, no warmup, gradient clipping 1.0, no gradient checkpointing
  (TRL's default of True is turned off to match);
- the same rows: single-turn conversations (system, user, assistant) with lognormal user and
  assistant word counts, from real English words (CPython's pydoc topics); loss on the
  assistant tokens only (TRL: prompt-completion rows, ``completion_only_loss``);
- the same optimiser steps, ``--threads`` torch threads, sequence length ``--pack-length``;
- each contender in its own subprocess, so its peak RSS (``ru_maxrss``) is its own.

Contenders, in fp32 and, where the CPU has native bf16 (AMX / AVX-512 BF16), in bf16:

- ``thresher (packing)``: ``--pack-batch`` packs of ``--pack-length`` tokens per step
  (block-diagonal attention); ``thresher``: ``--batch`` padded rows per step;
- ``TRL SFTTrainer (packing)``: ``packing=True`` (best-fit decreasing, padding-free,
  ``--pack-batch`` packs per step); ``TRL SFTTrainer``: ``--batch`` padded rows per step.

bf16 means for both: the frozen base in bf16, the LoRA weights in fp32, bf16 autocast
(thresher ``dtype="bf16"``; TRL ``bf16=True`` with the model loaded in bf16).

Printed: real (non-pad) tokens/s over steps 2..N, seconds per step, peak RSS, the achieved
model GFLOP/s and its fraction of the matmul peak for the dtype, measured in the same run
(best of square and model-shaped GEMMs, timed in every contender's process before and after
its training; the best of all of them). Model FLOPs are the useful work: 4 x (block linear
parameters) per token (forward + input gradients; the base is frozen), 6 x r x (in + out) per
token per LoRA layer, 4 x vocab x hidden per *trained* token (the LM head), and 3 x the causal
attention matmuls. Also the first-step loss on an identical batch (TRL's first collated
batch, scored by TRL's ``compute_loss`` and by thresher's token loss; must agree within 1e-4).

Usage: ``python benchmarks/train.py`` (about 10 minutes on 2 free cores), ``--steps``,
``--only thresher-packed,trl-packed``, ``--dtype fp32``, ``--repeats 3`` (interleaved rounds; the
median run per contender and the median per-round ratio are reported), ``--json`` for the records; on a shared
machine ``--lock /tmp/thresher-heavy.lock`` holds that flock around each contender only.
"""

from __future__ import annotations

import os

os.environ.setdefault("THRESHER_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_json, record  # noqa: E402

LORA = {"r": 16, "alpha": 32.0, "dropout": 0.0}
LR = 2e-4
SYSTEM = "You are a helpful assistant."
WORKERS = {
    "thresher-packed": "thresher (packing)",
    "thresher": "thresher",
    "trl-packed": "TRL SFTTrainer (packing)",
    "trl": "TRL SFTTrainer",
}


# ------------------------------------------------------------------------------------------
# shared setup (parent process)
# ------------------------------------------------------------------------------------------

def build_tiny(folder: Path) -> Path:
    """Tiny random Llama (hidden 256, 4 layers) + the SmolLM2 tokenizer, saved to ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig
    from transformers.utils import logging as hf_logging

    from thresher.models import resolve_model

    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(str(resolve_model(None)))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def resolve_bench_model(name: str, work: Path) -> tuple[Path, str]:
    """(folder, display name) for ``--model`` (smollm2 | tiny | a folder)."""
    from thresher.models import resolve_model

    if name == "tiny":
        return build_tiny(work / "tiny"), "tiny Llama (hidden 256, 4 layers)"
    if name in ("smollm2", "default"):
        return resolve_model(None), "SmolLM2-135M"
    return Path(name), Path(name).name


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
                          {"role": "assistant", "content": text(4.0, 0.8, 300)}]}
            for i in range(n)]


def matmul_peak(dtype_name: str, threads: int, hidden: int, inter: int) -> float:
    """Best GFLOP/s of torch GEMMs in ``dtype_name`` (square 1024/2048 and the model's MLP shape)."""
    import torch

    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    best = 0.0
    for m, k, n in ((2048, 2048, 2048), (1024, 1024, 1024), (2048, hidden, inter), (2048, inter, hidden)):
        a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
        a @ b
        for _ in range(4):
            t = time.perf_counter()
            a @ b
            best = max(best, 2 * m * k * n / (time.perf_counter() - t) / 1e9)
    return best


# ------------------------------------------------------------------------------------------
# FLOPs
# ------------------------------------------------------------------------------------------

def model_shape(folder: Path) -> dict:
    """Counts the FLOP model needs: block linear parameters, LoRA in+out sums, vocab, hidden, layers."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(str(folder))
    d, f, n_layers = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    heads, kv = c.num_attention_heads, getattr(c, "num_key_value_heads", c.num_attention_heads)
    hd = d // heads
    linears = [(d, heads * hd), (d, kv * hd), (d, kv * hd), (heads * hd, d), (d, f), (d, f), (f, d)]
    return {"block_params": n_layers * sum(i * o for i, o in linears),
            "lora_in_out": n_layers * sum(i + o for i, o in linears), "vocab": c.vocab_size,
            "hidden": d, "inter": f, "layers": n_layers, "attn_width": heads * hd}


def step_flops(shape: dict, seq_lens: list[int], trained: int, r: int) -> float:
    """Useful training FLOPs of one step over sequences of ``seq_lens`` with ``trained`` targets."""
    tokens = sum(seq_lens)
    linear = 4 * shape["block_params"] * tokens + 6 * r * shape["lora_in_out"] * tokens
    head = 4 * shape["vocab"] * shape["hidden"] * trained
    # causal QK^T and AV: 2 matmuls x 2 FLOPs x width x (L(L+1)/2) per layer, x3 for fwd + bwd
    attn = sum(3 * 2 * 2 * shape["attn_width"] * n * (n + 1) / 2 for n in seq_lens) * shape["layers"]
    return linear + head + attn


# ------------------------------------------------------------------------------------------
# workers (one subprocess each)
# ------------------------------------------------------------------------------------------

def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _summary(name: str, times: list[float], tokens: list[int], flops: list[float], losses: list[float]) -> dict:
    t = times[1:] or times
    k = len(t)
    return {"name": name, "steps": len(times), "tokens_per_s": sum(tokens[-k:]) / sum(t),
            "s_per_step": sum(t) / k, "gflops": sum(flops[-k:]) / sum(t) / 1e9, "peak_rss_mb": _peak_rss_mb(),
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None}


def worker_thresher(args: argparse.Namespace, packed: bool) -> dict:
    import torch

    from thresher.train.config import TrainConfig
    from thresher.train.metrics import read_metrics
    from thresher.train.stage import prepare, run

    torch.set_num_threads(args.threads)
    out = Path(args.work) / f"thresher-{'packed' if packed else 'plain'}-{args.dtype}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = TrainConfig(base=str(args.model), r=LORA["r"], alpha=LORA["alpha"], dropout=LORA["dropout"],
                      lr=LR, warmup=0.0, schedule="cosine", max_steps=args.steps, seed=0,
                      batch_size=args.pack_batch if packed else args.batch, grad_accum=1, dtype=args.dtype,
                      packing=packed, max_length=args.pack_length, save_every=10**6, threads=args.threads)
    run([Path(args.data)], out, cfg, force=True)
    recs = [r for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    # FLOPs per step from the same units the loop drew (epoch order is deterministic)
    from thresher.train.loop import epoch_order, shard_micro_batches, step_units, steps_per_epoch

    units = prepare([Path(args.data)], cfg, quiet=True).units
    shape = model_shape(Path(args.model))
    per = steps_per_epoch(len(units), cfg.batch_size)
    flops = []
    for s in range(len(recs)):
        ep, k = divmod(s, per)
        idx = step_units(epoch_order(len(units), cfg.seed, ep), k, cfg.batch_size)
        seqs = [len(e) for i in shard_micro_batches(idx, cfg.batch_size, 1, 0, 1)[0] for e in units[i]]
        flops.append(step_flops(shape, seqs, recs[s]["trainable_tokens"], LORA["r"]))
    return _summary(WORKERS["thresher-packed" if packed else "thresher"], [r["seconds"] for r in recs],
                    [r["tokens"] for r in recs], flops, [r["loss"] for r in recs])


def worker_trl(args: argparse.Namespace, packed: bool) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.utils import logging as hf_logging
    from trl import SFTConfig, SFTTrainer

    from thresher.train.loop import count_trainable, token_loss_sum
    from thresher.train.model import default_target_modules

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    bf16 = args.dtype == "bf16"
    tok = AutoTokenizer.from_pretrained(str(args.model))
    rows = [json.loads(x) for x in Path(args.data).read_text().splitlines()]
    ds = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(args.model), dtype=torch.bfloat16 if bf16 else torch.float32,
                                                attn_implementation="sdpa")
    model = get_peft_model(base, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                            target_modules=default_target_modules(base), task_type="CAUSAL_LM"))
    conf = SFTConfig(output_dir=str(Path(args.work) / "trl"), max_steps=args.steps, learning_rate=LR,
                     per_device_train_batch_size=args.pack_batch if packed else args.batch,
                     gradient_accumulation_steps=1, packing=packed, lr_scheduler_type="cosine",
                     warmup_steps=0, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                     bf16=bf16, fp16=False, max_length=args.pack_length, completion_only_loss=True, seed=0,
                     dataloader_num_workers=0, max_grad_norm=1.0, disable_tqdm=True,
                     include_num_input_tokens_seen="non_padding", gradient_checkpointing=False)
    shape = model_shape(Path(args.model))
    times: list[float] = []
    tokens: list[int] = []
    flops: list[float] = []

    class Timer(TrainerCallback):
        seen = 0

        def on_step_begin(self, _args, state, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, _args, state, *a, **k):
            times.append(time.perf_counter() - self.t0)
            tokens.append(int(state.num_input_tokens_seen) - self.seen)
            self.seen = int(state.num_input_tokens_seen)

    trainer = SFTTrainer(model=model, args=conf, train_dataset=ds, processing_class=tok, callbacks=[Timer()])
    check = None
    if not packed and not bf16:  # first-step loss on an identical batch, scored both ways
        batch = next(iter(trainer.get_train_dataloader()))
        batch = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        model.eval()
        with torch.no_grad():
            trl_loss = float(trainer.compute_loss(model, dict(batch)))
            ours = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
            thr_loss = float(token_loss_sum(model, ours)) / count_trainable(ours)
        model.train()
        check = {"trl": trl_loss, "thresher": thr_loss, "abs_diff": abs(trl_loss - thr_loss)}

    # the FLOPs of each step's batch, from the same dataloader order the trainer uses
    orig = trainer.compute_loss

    def counting_loss(model, inputs, *a, **k):
        lab = inputs["labels"]
        if "position_ids" in inputs and lab.shape[0] == 1:  # padding-free: split at position 0
            pos = inputs["position_ids"][0]
            starts = (pos == 0).nonzero().flatten().tolist() + [pos.numel()]
            seqs = [b - a for a, b in zip(starts, starts[1:])]
        else:
            seqs = inputs["attention_mask"].sum(1).tolist()
        trained = int((lab[:, 1:] != -100).sum())
        if model.training:
            flops.append(step_flops(shape, seqs, trained, LORA["r"]))
        return orig(model, inputs, *a, **k)

    trainer.compute_loss = counting_loss
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    res = _summary(WORKERS["trl-packed" if packed else "trl"], times, tokens, flops, losses)
    res["identical_batch"] = check
    return res


# ------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------

def _locked(path: str | None):
    """An exclusive ``flock`` on ``path`` (the shared heavy-job lock), or nothing."""
    import contextlib
    import fcntl

    if not path:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def hold():
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    return hold()


def _spawn(args: argparse.Namespace, which: str, dtype: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", which, "--model", str(args.model), "--data", str(args.data),
           "--work", str(args.work), "--steps", str(args.steps), "--batch", str(args.batch),
           "--pack-batch", str(args.pack_batch), "--pack-length", str(args.pack_length),
           "--threads", str(args.threads), "--dtype", dtype]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env.pop("THRESHER_DTYPE", None)
    with _locked(args.lock):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{which} ({dtype}) failed:\n{proc.stderr[-4000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{which} ({dtype}): {json.dumps(res)}", file=sys.stderr, flush=True)  # partial results survive
    return res


def _run_worker(args: argparse.Namespace) -> None:
    fn = {"thresher": lambda: worker_thresher(args, False), "thresher-packed": lambda: worker_thresher(args, True),
          "trl": lambda: worker_trl(args, False), "trl-packed": lambda: worker_trl(args, True)}[args.worker]
    import torch

    shape = model_shape(Path(args.model))
    peak = matmul_peak(args.dtype, args.threads, shape["hidden"], shape["inter"])
    res = fn()
    torch.set_num_threads(args.threads)
    res["peak_gflops"] = max(peak, matmul_peak(args.dtype, args.threads, shape["hidden"], shape["inter"]))
    print(json.dumps(res))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2", help="smollm2 (default), tiny, or a model folder")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8, help="rows per step without packing (thresher and TRL)")
    ap.add_argument("--pack-batch", type=int, default=2, help="packs per step with packing")
    ap.add_argument("--pack-length", type=int, default=512, help="pack length (and max length everywhere)")
    ap.add_argument("--rows", type=int, default=0, help="rows (default: enough for every contender)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["auto", "fp32", "bf16", "both"], default="auto",
                    help="auto: fp32, plus bf16 where the CPU has native bf16")
    ap.add_argument("--only", default=",".join(WORKERS), help="comma-separated: " + ", ".join(WORKERS))
    ap.add_argument("--repeats", type=int, default=1,
                    help="rounds of every contender, interleaved; the median run is reported")
    ap.add_argument("--json", action="store_true", help="print the records as JSON (the table goes to stderr)")
    ap.add_argument("--lock", help="hold this flock file around each contender (a shared machine's heavy-job lock)")
    ap.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    return ap.parse_args()


def dtypes_to_run(choice: str) -> tuple[list[str], str]:
    """The dtypes to run and a note on how they were chosen."""
    from thresher.precision import cpu_fast_bf16

    ok, why = cpu_fast_bf16()
    if choice == "auto":
        return (["fp32", "bf16"] if ok else ["fp32"]), why
    return (["fp32", "bf16"] if choice == "both" else [choice]), why


def main() -> None:
    args = parse_args()
    if args.worker:
        return _run_worker(args)
    dtypes, why = dtypes_to_run(args.dtype)
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    work = Path(tempfile.mkdtemp(prefix="thresher-bench-train-"))
    try:
        args.work = work
        args.model, label = resolve_bench_model(args.model, work)
        n = args.rows or max(args.steps * args.batch, 12 * args.steps * args.pack_batch)
        args.data = work / "rows.jsonl"
        args.data.write_text("".join(json.dumps(r) + "\n" for r in make_rows(n)), encoding="utf-8")
        results: dict[str, list[dict]] = {}
        peaks: dict[str, float] = {}
        rounds: dict[str, list[dict[str, dict]]] = {}
        for dt in dtypes:
            rounds[dt] = [{w: _spawn(args, w, dt) for w in only} for _ in range(args.repeats)]
            results[dt] = [median_run([r[w] for r in rounds[dt]]) for w in only]
            peaks[dt] = max(x["peak_gflops"] for r in rounds[dt] for x in r.values())  # best seen anywhere
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import contextlib

    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        report(results, peaks, label, args, n, why)
        report_rounds(rounds)
    if args.json:
        print_json(to_records(results, peaks, label) + round_records(rounds, label))


def median_run(runs: list[dict]) -> dict:
    """The run with the median tokens/s (the lower middle one for an even count), with every
    run's tokens/s under ``runs_tokens_per_s``."""
    ordered = sorted(runs, key=lambda r: r["tokens_per_s"])
    out = dict(ordered[(len(ordered) - 1) // 2])
    out["runs_tokens_per_s"] = [r["tokens_per_s"] for r in runs]
    return out


def best_vs_trl(one_round: dict[str, dict]) -> float | None:
    """thresher's best tokens/s over TRL's best in one round (contenders run minutes apart)."""
    ours = [r["tokens_per_s"] for r in one_round.values() if not r["name"].startswith("TRL")]
    trl = [r["tokens_per_s"] for r in one_round.values() if r["name"].startswith("TRL")]
    return max(ours) / max(trl) if ours and trl else None


def report_rounds(rounds: dict[str, list[dict[str, dict]]]) -> None:
    """Per dtype: each round's thresher-best / TRL-best ratio and their median."""
    for dt, rs in rounds.items():
        ratios = [x for x in (best_vs_trl(r) for r in rs) if x is not None]
        if len(rs) > 1 and ratios:
            ratios.sort()
            print(f"{dt}: thresher best / TRL best per round: " + ", ".join(f"{x:.2f}x" for x in ratios)
                  + f"; median {ratios[(len(ratios) - 1) // 2]:.2f}x over {len(ratios)} rounds")


def round_records(rounds: dict[str, list[dict[str, dict]]], label: str) -> list[dict]:
    """One record per dtype: the median over rounds of thresher-best / TRL-best."""
    out = []
    for dt, rs in rounds.items():
        ratios = sorted(x for x in (best_vs_trl(r) for r in rs) if x is not None)
        if ratios:
            out.append(record(f"train/{label}/{dt}", "thresher (best)", "median_round_ratio_vs_TRL_best",
                              ratios[(len(ratios) - 1) // 2], "x", False))
    return out


def to_records(results: dict[str, list[dict]], peaks: dict[str, float], label: str) -> list[dict]:
    """The ``--json`` records: per dtype and contender, plus thresher's best vs TRL's best."""
    out = []
    best: dict[str, dict] = {}
    for dt, rows in results.items():
        bench = f"train/{label}/{dt}"
        out.append(record(bench, "torch matmul peak", "gflops", peaks[dt], "GFLOP/s", False))
        for r in rows:
            peer = r["name"].startswith("TRL")
            for metric, unit in (("tokens_per_s", "tokens/s"), ("s_per_step", "s"), ("peak_rss_mb", "MB"),
                                 ("gflops", "GFLOP/s")):
                out.append(record(bench, r["name"], metric, r[metric], unit, peer))
            out.append(record(bench, r["name"], "fraction_of_matmul_peak", r["gflops"] / peaks[dt], "", peer))
            side = "trl" if peer else "thresher"
            key = f"{side}/{dt}"
            if key not in best or r["tokens_per_s"] > best[key]["tokens_per_s"]:
                best[key] = r
    for dt in results:
        t, p = best.get(f"thresher/{dt}"), best.get(f"trl/{dt}")
        if t and p:
            out.append(record(f"train/{label}/{dt}", t["name"], f"tokens_per_s_vs_{p['name']}",
                              t["tokens_per_s"] / p["tokens_per_s"], "x", False))
    if "fp32" in results and "bf16" in results:
        for r32, r16 in zip(results["fp32"], results["bf16"]):
            out.append(record(f"train/{label}/bf16", r16["name"], "tokens_per_s_vs_fp32",
                              r16["tokens_per_s"] / r32["tokens_per_s"], "x", r16["name"].startswith("TRL")))
    return out


def report(results: dict[str, list[dict]], peaks: dict[str, float], label: str, args: argparse.Namespace,
           n: int, why: str) -> None:
    """The side-by-side table."""
    print(f"{label}, LoRA r16 all linear, {args.steps} steps, {args.threads} threads, {n} rows, "
          f"length {args.pack_length}; {machine()}; bf16: {why}")
    for dt, rows in results.items():
        trl = [r for r in rows if r["name"].startswith("TRL")]
        trl_best = max((r["tokens_per_s"] for r in trl), default=None)
        print(f"\n{dt}: torch matmul peak {peaks[dt]:.0f} GFLOP/s")
        print(f"{'contender':<26}{'tokens/s':>9}{'s/step':>8}{'GFLOP/s':>9}{'% peak':>8}{'RSS MB':>8}"
              f"{'vs best TRL':>12}{'loss 1st->last':>17}")
        for r in rows:
            ratio = f"{r['tokens_per_s'] / trl_best:.2f}x" if trl_best else "-"
            print(f"{r['name']:<26}{r['tokens_per_s']:>9.0f}{r['s_per_step']:>8.2f}{r['gflops']:>9.1f}"
                  f"{r['gflops'] / peaks[dt]:>8.0%}{r['peak_rss_mb']:>8.0f}{ratio:>12}"
                  f"{r['first_loss']:>9.4f}->{r['last_loss']:.4f}")
        for r in rows:
            spread = r.get("runs_tokens_per_s", [])
            if len(spread) > 1:
                print(f"  {r['name']}: tokens/s per round {', '.join(f'{x:.0f}' for x in spread)} (median shown)")
        for r in rows:
            ib = r.get("identical_batch")
            if ib:
                ok = "OK" if ib["abs_diff"] <= 1e-4 else "MISMATCH"
                print(f"first-step loss on an identical batch: TRL {ib['trl']:.6f}, thresher "
                      f"{ib['thresher']:.6f}, |diff| {ib['abs_diff']:.2e} ({ok}, limit 1e-4)")
    if "fp32" in results and "bf16" in results:
        print("\nbf16 vs fp32 tokens/s: " + ", ".join(
            f"{a['name']} {b['tokens_per_s'] / a['tokens_per_s']:.2f}x"
            for a, b in zip(results["fp32"], results["bf16"])))


if __name__ == "__main__":
    main()
