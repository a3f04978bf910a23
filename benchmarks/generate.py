"""Generated tokens per second: a naive one-prompt-at-a-time ``model.generate`` loop vs our
transformers backend vs our vLLM backend, on the same prompts and model, with n = 1 and n = 4
samples per prompt.

    python benchmarks/generate.py                      # SmolLM2 on CPU, 8 prompts, 48 tokens, n 1 and 4
    python benchmarks/generate.py --teacher ORG/NAME --prompts 256 --max-tokens 256   # on a GPU

- naive: one prompt and one sample at a time through ``model.generate`` (batch 1), so n = 4
  is four separate calls per prompt; fp32 (transformers' default load);
- thresher transformers backend: all prompts in one call, length-sorted micro-batches,
  ``num_return_sequences`` for n, dtype ``auto`` (bf16 where the CPU has native bf16, see
  ``thresher.precision``; ``--dtype`` to force); when that is bf16, also at fp32;
- thresher vLLM backend: the separate vLLM environment (``make vllm-env``; ``--vllm-python``
  points at its interpreter) in a subprocess; n samples share the prompt's KV cache (vLLM's
  parallel sampling). Its engine start-up is reported apart from tokens/s. Skipped with a note
  when the environment is missing.

All methods run with the same torch threads; ``OMP_WAIT_POLICY=PASSIVE`` (what
``thresher.distill`` sets when unset) applies to the naive loop too. ``--json`` prints the
records (``benchmarks/_common.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads; see thresher/distill

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_json, record  # noqa: E402

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
NAIVE, TRANSFORMERS, VLLM = "naive model.generate (batch 1)", "thresher transformers backend", "thresher vllm backend"


def prompts(k: int) -> list[list[dict]]:
    """``k`` single-turn conversations (the list repeats with a suffix when k > 16)."""
    out = []
    for i in range(k):
        p = PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" ({i // len(PROMPTS)})")
        out.append([{"role": "user", "content": p}])
    return out


def bench_naive(model: str | None, convs: list[list[dict]], max_tokens: int, threads: int, n: int) -> dict:
    """One prompt and one sample at a time through ``model.generate``, stopping at end of turn."""
    import torch

    from thresher.distill.backends.transformers import load_causal_lm
    from thresher.tokens import end_of_turn_ids

    if threads:
        torch.set_num_threads(threads)
    _, tok, lm = load_causal_lm(model, dtype="float32")
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
    tokens = sum(one(c, max_tokens) for c in convs for _ in range(n))
    return {"tokens": tokens, "seconds": time.perf_counter() - t0}


def bench_backend(name: str, model: str | None, convs: list[list[dict]], max_tokens: int, threads: int,
                  ns: list[int], options: dict | None = None) -> dict[int, dict]:
    """Our backend, all prompts in one call per n (as the stage hands them over per shard)."""
    from thresher.distill.backends import SamplingParams, make_backend

    t0 = time.perf_counter()
    be = make_backend(name, model, threads=threads, **(options or {}))
    start = time.perf_counter() - t0
    be.generate(convs[:1], n=1, params=SamplingParams(max_tokens=4))  # warm-up
    out: dict[int, dict] = {}
    for n in ns:
        params = SamplingParams(temperature=0.7, max_tokens=max_tokens, seed=0)
        t0 = time.perf_counter()
        res = be.generate(convs, n=n, params=params)
        out[n] = {"tokens": sum(c.completion_tokens for o in res for c in o),
                  "seconds": time.perf_counter() - t0, "startup": start}
    dtype = str(getattr(getattr(be, "lm", None), "dtype", "")).replace("torch.", "")
    be.close()
    for r in out.values():
        r["dtype"] = dtype or str((options or {}).get("dtype", ""))
    return out


def _child(args: argparse.Namespace) -> None:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    res = bench_backend("vllm", args.teacher, prompts(args.prompts), args.max_tokens, 0, args.n,
                        {"max_model_len": 1024, "enforce_eager": True, "dtype": args.vllm_dtype})
    print("BENCH_JSON " + json.dumps({str(k): v for k, v in res.items()}), flush=True)


def run_vllm(args: argparse.Namespace) -> dict[int, dict] | None:
    """The vLLM backend in its own environment, or None (with a note) when it cannot run."""
    if not Path(args.vllm_python).exists():
        print(f"vllm: skipped ({args.vllm_python} missing: run `make vllm-env`)", file=sys.stderr)
        return None
    cmd = [args.vllm_python, str(Path(__file__).resolve()), "--child", "--prompts", str(args.prompts),
           "--max-tokens", str(args.max_tokens), "--vllm-dtype", args.vllm_dtype, "--n", *map(str, args.n)]
    if args.teacher:
        cmd += ["--teacher", args.teacher]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        print("vllm: failed\n" + proc.stderr[-3000:], file=sys.stderr)
        return None
    return {int(k): v for k, v in json.loads(line[len("BENCH_JSON "):]).items()}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default=None, help="model (default: the embedded SmolLM2)")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--n", type=int, nargs="+", default=[1, 4], help="samples per prompt (default: 1 4)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--dtype", default="auto", help="transformers backend dtype (auto, float32, bfloat16)")
    ap.add_argument("--skip", action="append", default=[], choices=["naive", "transformers", "vllm"])
    ap.add_argument("--vllm-python", default=str(Path(__file__).resolve().parents[1] / ".venv-vllm/bin/python"))
    ap.add_argument("--vllm-dtype", default="bfloat16")
    ap.add_argument("--json", action="store_true", help="print the records as JSON (the table goes to stderr)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        return _child(args)
    convs = prompts(args.prompts)
    results: dict[str, dict[int, dict]] = {}
    if "naive" not in args.skip:
        results[NAIVE] = {n: bench_naive(args.teacher, convs, args.max_tokens, args.threads, n) for n in args.n}
        for r in results[NAIVE].values():
            r["dtype"] = "float32"
    if "transformers" not in args.skip:
        results[TRANSFORMERS] = bench_backend("transformers", args.teacher, convs, args.max_tokens,
                                              args.threads, args.n, {"dtype": args.dtype})
        if next(iter(results[TRANSFORMERS].values()))["dtype"] == "bfloat16":  # show what bf16 buys
            results[TRANSFORMERS + " (fp32)"] = bench_backend("transformers", args.teacher, convs,
                                                             args.max_tokens, args.threads, args.n,
                                                             {"dtype": "float32"})
    print(f"partial: {json.dumps({k: {str(n): r for n, r in v.items()} for k, v in results.items()})}",
          file=sys.stderr, flush=True)  # survives a timeout in the vLLM run
    if "vllm" not in args.skip:
        res = run_vllm(args)
        if res is not None:
            results[VLLM] = res
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        report(results, args)
    if args.json:
        print_json(to_records(results, args))


def to_records(results: dict[str, dict[int, dict]], args: argparse.Namespace) -> list[dict]:
    """tokens/s per method and n, and each backend's ratio to the naive loop."""
    out = []
    for name, per_n in results.items():
        for n, r in per_n.items():
            bench = f"generate/{args.teacher or 'SmolLM2-135M'}/n={n}"
            rate = r["tokens"] / r["seconds"]
            peer = not name.startswith(TRANSFORMERS)  # the naive loop and vLLM's engine are the peers
            out.append(record(bench, name, "tokens_per_s", rate, "tokens/s", peer))
            base = results.get(NAIVE, {}).get(n)
            if base and name != NAIVE:
                out.append(record(bench, name, "tokens_per_s_vs_naive", rate / (base["tokens"] / base["seconds"]),
                                  "x", peer))
    return out


def report(results: dict[str, dict[int, dict]], args: argparse.Namespace) -> None:
    """The side-by-side table."""
    import torch

    print(f"\n{args.prompts} prompts, max {args.max_tokens} new tokens, model {args.teacher or 'SmolLM2-135M-Instruct'}, "
          f"torch threads {args.threads or torch.get_num_threads()}; {machine()}")
    print(f"{'method':39s} {'n':>2s} {'dtype':>9s} {'tokens':>7s} {'seconds':>8s} {'tok/s':>8s} {'vs naive':>9s} "
          f"{'startup s':>10s}")
    for name, per_n in results.items():
        for n, r in per_n.items():
            rate = r["tokens"] / r["seconds"]
            base = results.get(NAIVE, {}).get(n)
            ratio = f"{rate / (base['tokens'] / base['seconds']):.2f}x" if base else "-"
            start = f"{r['startup']:.1f}" if "startup" in r else "-"
            print(f"{name:39s} {n:>2d} {r.get('dtype', ''):>9s} {r['tokens']:7d} {r['seconds']:8.1f} {rate:8.1f} "
                  f"{ratio:>9s} {start:>10s}")


if __name__ == "__main__":
    main()
