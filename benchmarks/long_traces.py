"""Long reasoning traces: peak memory and speed of a packed step of 8k-32k tokens on CPU.

A model built from a config (a Llama with SmolLM2-135M's vocabulary and head sizes,
``--layers`` decoder layers of ``--hidden`` width; random weights), SmolLM2's real
tokenizer and chat template (the test tokenizer folder of ``tests/train/fetch_tokenizers.py``),
and rows whose assistant turn carries a long ``reasoning_content``: ``--per-pack`` conversations
of about ``L / per-pack`` tokens each, packed into one row of ``L`` tokens (``--packing``,
batch 1). Each run is ``thresher train lora`` in its own subprocess, so its peak RSS (the
child's ``ru_maxrss``) is its own.

Contenders per length: ``thresher_segments`` (the default attention with packing: causal SDPA
per conversation, no ``[L, L]`` mask) and ``sdpa`` (transformers' SDPA with the dense 4D
block-diagonal mask), the latter only up to ``--dense-max`` tokens (its mask and scores grow
with L squared). Printed: tokens per step, seconds per step, peak RSS and the ratios
(dense / segments).

Usage: ``python benchmarks/long_traces.py`` (lengths 8192,16384,32768; a few minutes on one
core), ``--lengths 16384``, ``--layers 4 --hidden 576`` (SmolLM2's width), ``--json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("THRESHER_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("THRESHER_DTYPE", "fp32")

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import machine, print_json, record  # noqa: E402

WORDS = ("first we add the units then carry the tens and check each partial sum again before "
         "writing the result so that every step can be verified by counting").split()


def build_model(out: Path, layers: int, hidden: int) -> Path:
    """A random Llama with SmolLM2's tokenizer (vocabulary 49,152) and ``layers`` layers."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tests.train.fetch_tokenizers import ensure

    tok_dir = ensure()["smollm2"]
    for f in tok_dir.iterdir():
        if f.is_file():
            shutil.copy(f, out / f.name)
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    heads = max(1, hidden // 64)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 8 // 3,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=max(1, heads // 3),
                      max_position_embeddings=65536, rope_theta=100000.0, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(str(out))
    return out


def rows_for(length: int, per_pack: int, model: Path) -> list[dict]:
    """``per_pack`` conversations that together fill one ``length``-token pack (a little under)."""
    from thresher.train.data import encode_conversation, load_tokenizer

    tok = load_tokenizer(str(model))

    def row(i: int, words: int) -> dict:
        trace = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(words))
        return {"id": f"r{i}", "messages": [
            {"role": "user", "content": f"Problem {i}: add the numbers."},
            {"role": "assistant", "content": f"The answer is {i}.", "reasoning_content": trace}]}

    probe = encode_conversation(tok, row(0, 1000)["messages"], max_length=10**7)
    base = encode_conversation(tok, row(0, 0)["messages"], max_length=10**7)
    per_word = (len(probe) - len(base)) / 1000
    words = int((length / per_pack - len(base) - 16) / per_word)
    return [row(i, words) for i in range(per_pack)]


def run_one(model: Path, data: Path, length: int, attn: str, steps: int, threads: int, work: Path) -> dict:
    """One ``thresher train lora`` subprocess: seconds per step, peak RSS, tokens per step."""
    out = work / f"run-{length}-{attn}"
    cmd = [sys.executable, "-m", "thresher.cli.main", "train", "lora", str(data), "--base", str(model),
           "--out", str(out), "--packing", "--attn-implementation", attn, "--max-length", str(length),
           "--batch-size", "1", "--max-steps", str(steps), "--threads", str(threads), "--warmup", "0",
           "--save-every", "1000", "--force"]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    log = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        return {"error": log.strip().splitlines()[-1] if log.strip() else f"exit {status}", "rss_mb": ru.ru_maxrss / 1024}
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps_ = [m for m in metrics if "loss" in m]
    stats = json.loads((out / "stats.json").read_text())
    return {"rss_mb": ru.ru_maxrss / 1024, "wall_s": wall,
            "step_s": sum(m["seconds"] for m in steps_) / len(steps_),
            "tokens": steps_[0]["tokens"], "trained": steps_[0]["trainable_tokens"],
            "reasoning_tokens": stats["lint"]["reasoning_tokens"], "loss": steps_[-1]["loss"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="8192,16384,32768")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--per-pack", type=int, default=4)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dense-max", type=int, default=8192, help="longest length run with the dense sdpa mask")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    records, lines = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "model").mkdir()
        model = build_model(work / "model", args.layers, args.hidden)
        for length in lengths:
            data = work / f"rows-{length}.jsonl"
            data.write_text("".join(json.dumps(r) + "\n" for r in rows_for(length, args.per_pack, model)))
            res = {attn: run_one(model, data, length, attn, args.steps, args.threads, work)
                   for attn in ("thresher_segments", "sdpa") if attn == "thresher_segments" or length <= args.dense_max}
            seg = res["thresher_segments"]
            bench = f"long-traces/{args.layers}x{args.hidden}/{length}"
            for attn, r in res.items():
                name = "thresher (segments)" if attn == "thresher_segments" else "sdpa dense mask"
                if "error" in r:
                    lines.append(f"{length:>6}  {name:<20} failed: {r['error']}")
                    continue
                ratio = "" if attn == "thresher_segments" or "error" in seg else \
                    f"  x{r['rss_mb'] / seg['rss_mb']:.2f} RSS, x{r['step_s'] / seg['step_s']:.2f} time"
                lines.append(f"{length:>6}  {name:<20} {r['tokens']:>6} tok/step ({r['reasoning_tokens']:>6} reasoning)"
                             f"  {r['step_s']:7.1f} s/step  peak RSS {r['rss_mb']:7.0f} MB{ratio}")
                records += [record(bench, name, "peak_rss_mb", r["rss_mb"], "MB", attn != "thresher_segments"),
                            record(bench, name, "seconds_per_step", r["step_s"], "s", attn != "thresher_segments")]
    if args.json:
        print_json(records)
        return
    print(f"machine: {machine()}; model: Llama {args.layers} layers x {args.hidden} (random), SmolLM2 tokenizer; "
          f"{args.per_pack} conversations with reasoning traces per packed row; {args.threads} thread(s)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
