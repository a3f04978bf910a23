"""``thresher distill``: the ``generate`` command (same code as the recipe stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from thresher.cli.options import force_option, out_option


@click.group(name="distill")
def cli() -> None:
    """Generate teacher responses for prompt rows."""


@cli.command("generate")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--teacher", "-t", default=None,
              help="Teacher: a local model folder, a .gguf file, a hub name, or the model name a server "
                   "serves (openai). Default: the embedded SmolLM2-135M-Instruct.")
@click.option("--revision", default=None, help="Hub revision (branch, tag or commit) of the teacher.")
@click.option("--backend", "-b", default="auto", show_default=True,
              help="auto | vllm | openai | transformers (auto: vllm when installed with a GPU, else transformers).")
@click.option("-n", "n", type=int, default=1, show_default=True, help="Samples per prompt.")
@click.option("--temperature", type=float, default=0.7, show_default=True, help="0 = greedy.")
@click.option("--top-p", type=float, default=1.0, show_default=True)
@click.option("--top-k", type=int, default=0, show_default=True, help="0 disables top-k.")
@click.option("--max-tokens", type=int, default=512, show_default=True, help="Most tokens per response.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--stop", multiple=True, help="Stop string (repeatable).")
@click.option("--repetition-penalty", type=float, default=1.0, show_default=True)
@click.option("--system", default=None, help="System prompt added to prompts that have none.")
@click.option("--system-in-rows/--system-not-in-rows", default=True, show_default=True,
              help="--system-not-in-rows: the system prompt steers the teacher only and is left out of "
                   "the rows (context distillation).")
@click.option("--reasoning", default="keep", show_default=True,
              help="keep: <think> text goes to a 'reasoning' column; strip: it is dropped.")
@click.option("--drop-truncated", is_flag=True, help="Drop responses cut by --max-tokens.")
@click.option("--batch-size", type=int, default=0, show_default=True,
              help="Prompts per backend call and per resume shard (0: the backend's default).")
@click.option("--dtype", default="auto", show_default=True, help="Weights dtype (transformers, vllm).")
@click.option("--threads", type=int, default=0, show_default=True,
              help="transformers: CPU threads (0: torch's default).")
@click.option("--trust-remote-code", is_flag=True, help="Allow the teacher's own code (off by default).")
@click.option("--max-model-len", type=int, default=None, help="vllm: context length.")
@click.option("--tensor-parallel-size", type=int, default=1, show_default=True, help="vllm: GPUs per model.")
@click.option("--gpu-memory-utilization", type=float, default=0.9, show_default=True, help="vllm.")
@click.option("--enforce-eager", is_flag=True, help="vllm: no CUDA graphs / compilation.")
@click.option("--base-url", default=None, help="openai: server URL, e.g. http://127.0.0.1:8000/v1.")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
              help="openai: environment variable holding the API key (never logged or stored).")
@click.option("--concurrency", type=int, default=8, show_default=True, help="openai: requests in flight.")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="openai: seconds per request.")
@click.option("--max-retries", type=int, default=5, show_default=True, help="openai: retries on 429/5xx.")
@out_option
@force_option
def generate(inputs: tuple[Path, ...], out: str, force: bool, **options: Any) -> None:
    """Answer the prompts of INPUTS with a teacher: one row per sample, resumable.

    Kill it at any moment and run the same command again: finished samples are reused.
    """
    from .stage import make_config, run

    options["stop"] = tuple(options["stop"])
    config = make_config(**options)
    result = run(list(inputs), Path(out), config, force=force)
    s = result.stats
    click.echo(f"generate: {s.get('samples', 0)} samples for {s.get('prompts', 0)} prompts "
               f"({s.get('reused', 0)} reused, {s.get('generated', 0)} generated), "
               f"{s.get('rows_out', 0)} kept -> {result.kept_path}")
