"""The ``thresher train`` command group: ``lora`` (train) and ``lint-masks`` (check masks).

Importing this module does not import torch: the training code is imported when a command
runs. Several processes: ``torchrun --nproc-per-node N -m thresher.cli.main train lora ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from thresher.cli.lazy import LazyGroup
from thresher.cli.options import force_option, out_option

LAZY = {
    "lint-masks": ("thresher.train.data.cli:lint_masks",
                   "Check every row's loss mask; show counts and a coloured token view."),
}


@click.group(name="train", cls=LazyGroup, lazy_commands=LAZY)
def cli() -> None:
    """Train a student with LoRA/DoRA and lint loss masks."""


def _csv(_ctx: Any, _param: Any, value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items


# (option declarations, config field, click kwargs)
_OPTIONS: list[tuple[tuple[str, ...], str, dict[str, Any]]] = [
    (("--base",), "base", {"help": "Base model: folder, .gguf file or known name (default: SmolLM2-135M-Instruct)."}),
    (("--chat-template",), "chat_template", {"help": "Jinja chat template (file or literal) replacing/adding the student's."}),
    (("--trust-remote-code",), "trust_remote_code", {"is_flag": True, "default": None, "help": "Run the model folder's own Python code (auto_map); only for models you trust."}),
    (("--attn-implementation",), "attn_implementation", {"help": "transformers attention backend (default sdpa)."}),
    (("-r", "--rank"), "r", {"type": int, "help": "LoRA rank (default 16)."}),
    (("--alpha",), "alpha", {"type": float, "help": "LoRA alpha (default 32)."}),
    (("--dropout",), "dropout", {"type": float, "help": "LoRA dropout (default 0.05)."}),
    (("--target-modules",), "target_modules", {"callback": _csv, "help": "Comma-separated module names (default: every linear layer of attention and MLP)."}),
    (("--dora/--no-dora",), "dora", {"default": None, "help": "DoRA (weight-decomposed LoRA)."}),
    (("--rslora/--no-rslora",), "rslora", {"default": None, "help": "Rank-stabilised LoRA scaling."}),
    (("--qlora/--no-qlora",), "qlora", {"default": None, "help": "4-bit base (bitsandbytes; CUDA only)."}),
    (("--lr",), "lr", {"type": float, "help": "Peak learning rate (default 2e-4)."}),
    (("--weight-decay",), "weight_decay", {"type": float, "help": "AdamW weight decay (default 0)."}),
    (("--warmup",), "warmup", {"type": float, "help": "Warmup: a fraction of the steps (<1) or a step count (default 0.03)."}),
    (("--schedule",), "schedule", {"type": click.Choice(["cosine", "linear", "constant"]), "help": "Decay after warmup (default cosine)."}),
    (("--grad-clip",), "grad_clip", {"type": float, "help": "Gradient-norm clipping, 0 = off (default 1.0)."}),
    (("--batch-size",), "batch_size", {"type": int, "help": "Sequences per micro-batch and process (default 4)."}),
    (("--grad-accum",), "grad_accum", {"type": int, "help": "Micro-batches per optimiser step (default 1)."}),
    (("--grad-checkpointing/--no-grad-checkpointing",), "grad_checkpointing", {"default": None, "help": "Recompute activations in the backward pass."}),
    (("--bf16",), "bf16", {"type": click.Choice(["auto", "on", "off"]), "help": "bf16 autocast (auto: where the device supports it)."}),
    (("--seed",), "seed", {"type": int, "help": "Random seed (default 0)."}),
    (("--max-steps",), "max_steps", {"type": int, "help": "Optimiser steps (default 0: use --epochs)."}),
    (("--epochs",), "epochs", {"type": float, "help": "Epochs over the training rows (default 1)."}),
    (("--max-length",), "max_length", {"type": int, "help": "Longest sequence in tokens (default 1024)."}),
    (("--overlong",), "overlong", {"type": click.Choice(["drop", "truncate"]), "help": "Rows longer than --max-length (default drop, listed)."}),
    (("--train-on",), "train_on", {"type": click.Choice(["all", "last"]), "help": "Train on all assistant turns or the last (default all)."}),
    (("--packing/--no-packing",), "packing", {"default": None, "help": "Pack conversations into --max-length sequences (isolated attention)."}),
    (("--allow-lint-failures",), "allow_lint_failures", {"is_flag": True, "default": None, "help": "Skip (and list) rows that fail the mask lint instead of stopping."}),
    (("--val-fraction",), "val_fraction", {"type": float, "help": "Share of rows held out for validation (default 0)."}),
    (("--val-file",), "val_file", {"type": click.Path(dir_okay=True), "help": "Validation rows (instead of --val-fraction)."}),
    (("--eval-every",), "eval_every", {"type": int, "help": "Validate every N steps (default 0: at the end)."}),
    (("--patience",), "patience", {"type": int, "help": "Stop after N evaluations without improvement (default 0: off)."}),
    (("--save-every",), "save_every", {"type": int, "help": "Checkpoint every N steps (default 50)."}),
    (("--keep-checkpoints",), "keep_checkpoints", {"type": int, "help": "Checkpoints kept (default 2)."}),
    (("--merge/--no-merge",), "merge", {"default": None, "help": "Also write a merged model (checked against the adapter)."}),
    (("--export-atol",), "export_atol", {"type": float, "help": "Largest merged-vs-adapter logit difference allowed (default 1e-3)."}),
    (("--threads",), "threads", {"type": int, "help": "CPU threads per process (default 0: torch's default)."}),
    (("--fsdp/--no-fsdp",), "fsdp", {"default": None, "help": "Shard the base with FSDP under torchrun (CUDA)."}),
]


def _config_options(fn: Any) -> Any:
    for decls, field, kwargs in reversed(_OPTIONS):
        fn = click.option(*decls, field, **kwargs)(fn)
    return fn


@cli.command("lora")
@click.argument("data", type=click.Path())
@out_option
@force_option
@_config_options
def lora(data: str, out: str, force: bool, **options: Any) -> None:
    """Fine-tune a student with a LoRA/DoRA adapter on conversation rows DATA.

    Lints every row's loss mask first (see `thresher train lint-masks`), resumes from the last
    checkpoint in OUT when rerun, and writes OUT/adapter (and OUT/merged with --merge),
    metrics.jsonl and loss_curves.png. Run under `torchrun --nproc-per-node N` for
    data-parallel training.
    """
    from thresher.config import from_dict
    from thresher.errors import ThresherError
    from thresher.train.config import TrainConfig

    values = {k: v for k, v in options.items() if v is not None}
    config = from_dict(TrainConfig, values)
    if not Path(data).exists():
        raise ThresherError(f"input not found: {data}")
    from thresher.train.stage import run

    result = run([Path(data)], Path(out), config, force=force)
    s = result.stats
    if s and not result.reused:
        from thresher.progress import info

        info(f"train: {s.get('steps')} steps, loss {_fmt(s.get('first_loss'))} -> {_fmt(s.get('final_loss'))}"
             f", adapter in {Path(out) / 'adapter'}")


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else "n/a"
