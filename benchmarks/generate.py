"""Generated tokens per second: naive one-prompt-at-a-time ``model.generate`` vs our
transformers backend vs our vLLM backend, on the same prompts and model.

    python benchmarks/generate.py                      # SmolLM2 on CPU, 16 prompts, 64 tokens
    python benchmarks/generate.py --teacher ORG/NAME --prompts 256 --max-tokens 256   # on a GPU

The vLLM run uses the separate vLLM environment (``make vllm-env``; ``--vllm-python`` points
at its interpreter) in a subprocess; its engine start-up is reported apart from tokens/s.
Target on CPU: the transformers backend at least 3x the naive loop.

All methods run in one process with the same torch threads; ``OMP_WAIT_POLICY=PASSIVE`` (what
``thresher.distill`` sets when unset) applies to the naive loop too, so the comparison is fair.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads; see thresher/distill

PROMPTS = [
    "What is the capital of France?",
    "Explain photosynthesis in two sentences.",
    "Write a haiku about the sea.",
    "List three prime numbers and say why they are prime.",
    "Give me one tip for sleeping well.",
    "Who wrote Hamlet, and when?",
    "Translate 'good morning' into Spanish and French.",
    "What is the difference between weather and climate?",
    "Describe a cat to someone who has never seen one.",
    "Why is the sky blue?",
    "Suggest a name for a small bakery.",
    "How do I boil an egg?",
    "What does a compiler do?",
    "Summarise the story of Little Red Riding Hood.",
    "Name three uses of a paperclip.",
    "What is 12 times 12? Explain briefly.",
]


def prompts(k: int) -> list[list[dict]]:
    """``k`` single-turn conversations (the list repeats with a suffix when k > 16)."""
    out = []
    for i in range(k):
        p = PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" ({i // len(PROMPTS)})")
        out.append([{"role": "user", "content": p}])
    return out


def bench_naive(model: str | None, convs: list[list[dict]], max_tokens: int, threads: int) -> dict:
    """One prompt at a time through ``model.generate`` (batch 1), stopping at end of turn."""
    import torch

    from thresher.distill.backends.transformers import load_causal_lm
    from thresher.distill.prompts import end_of_turn_ids

    if threads:
        torch.set_num_threads(threads)
    _, tok, lm = load_causal_lm(model)
    stops = end_of_turn_ids(tok)

    def one(conv: list[dict], n_new: int) -> int:
        enc = tok.apply_chat_template(conv, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        enc = {k: v.to(lm.device) for k, v in enc.items()}
        with torch.inference_mode():
            out = lm.generate(**enc, max_new_tokens=n_new, do_sample=True, temperature=0.7,
                              eos_token_id=stops, pad_token_id=stops[0])
        return int(out.shape[1] - enc["input_ids"].shape[1])

    one(convs[0], 4)  # warm-up
    t0 = time.perf_counter()
    tokens = sum(one(c, max_tokens) for c in convs)
    return {"tokens": tokens, "seconds": time.perf_counter() - t0}


def bench_backend(name: str, model: str | None, convs: list[list[dict]], max_tokens: int, threads: int,
                  options: dict | None = None) -> dict:
    """Our backend, all prompts in one call (as the stage hands them over per shard)."""
    from thresher.distill.backends import SamplingParams, make_backend

    t0 = time.perf_counter()
    be = make_backend(name, model, threads=threads, **(options or {}))
    start = time.perf_counter() - t0
    params = SamplingParams(temperature=0.7, max_tokens=max_tokens, seed=0)
    be.generate(convs[:1], n=1, params=SamplingParams(max_tokens=4))  # warm-up
    t0 = time.perf_counter()
    out = be.generate(convs, n=1, params=params)
    seconds = time.perf_counter() - t0
    be.close()
    return {"tokens": sum(c.completion_tokens for o in out for c in o), "seconds": seconds, "startup": start}


def _child(args: argparse.Namespace) -> None:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    res = bench_backend("vllm", args.teacher, prompts(args.prompts), args.max_tokens, 0,
                        {"max_model_len": 1024, "enforce_eager": args.enforce_eager, "dtype": args.vllm_dtype})
    print("BENCH_JSON " + json.dumps(res), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default=None, help="model (default: the embedded SmolLM2)")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--skip", action="append", default=[], choices=["naive", "transformers", "vllm"])
    ap.add_argument("--vllm-python", default=str(Path(__file__).resolve().parents[1] / ".venv-vllm/bin/python"))
    ap.add_argument("--vllm-dtype", default="bfloat16")
    ap.add_argument("--enforce-eager", action="store_true", default=True)
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(args)

    convs = prompts(args.prompts)
    results: dict[str, dict] = {}
    if "naive" not in args.skip:
        results["naive model.generate (batch 1)"] = bench_naive(args.teacher, convs, args.max_tokens, args.threads)
    if "transformers" not in args.skip:
        results["thresher transformers backend"] = bench_backend("transformers", args.teacher, convs,
                                                                 args.max_tokens, args.threads)
    if "vllm" not in args.skip:
        if not Path(args.vllm_python).exists():
            print(f"vllm: skipped ({args.vllm_python} missing: run `make vllm-env`)", file=sys.stderr)
        else:
            cmd = [args.vllm_python, str(Path(__file__).resolve()), "--child", "--prompts", str(args.prompts),
                   "--max-tokens", str(args.max_tokens), "--vllm-dtype", args.vllm_dtype]
            if args.teacher:
                cmd += ["--teacher", args.teacher]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
            if line is None:
                print("vllm: failed\n" + proc.stderr[-3000:], file=sys.stderr)
            else:
                results["thresher vllm backend"] = json.loads(line[len("BENCH_JSON "):])

    import torch

    base = results.get("naive model.generate (batch 1)")
    base_rate = base["tokens"] / base["seconds"] if base else None
    print(f"\n{args.prompts} prompts, max {args.max_tokens} new tokens, model {args.teacher or 'SmolLM2-135M-Instruct'}, "
          f"torch threads {args.threads or torch.get_num_threads()}, cpus {os.cpu_count()}, "
          f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'method':34s} {'tokens':>7s} {'seconds':>8s} {'tok/s':>8s} {'vs naive':>9s} {'startup s':>10s}")
    for name, r in results.items():
        rate = r["tokens"] / r["seconds"]
        r["tokens_per_second"] = rate
        ratio = f"{rate / base_rate:.2f}x" if base_rate else "-"
        start = f"{r['startup']:.1f}" if "startup" in r else "-"
        print(f"{name:34s} {r['tokens']:7d} {r['seconds']:8.1f} {rate:8.1f} {ratio:>9s} {start:>10s}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
