"""The ``thresher train`` command group: ``lora`` (train) and ``lint-masks`` (check masks).

Importing this module does not import torch: the training code is imported when a command
runs. Several processes: ``torchrun --nproc-per-node N -m thresher.cli.main train lora ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from thresher.cli.config_options import Opt, config_options, config_values
from thresher.cli.lazy import LazyGroup
from thresher.cli.options import force_option, out_option, read_options
from thresher.train.config import TrainConfig

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


_OPTS = {
    "r": Opt(decls=("-r", "--rank")),
    "target_modules": Opt(callback=_csv, multiple=False,
                          help="Comma-separated module names (default: every linear layer of attention and MLP)."),
    "val_file": Opt(type=click.Path(dir_okay=True)),
    **{name: Opt(decls=(f"--{name.replace('_', '-')}/--no-{name.replace('_', '-')}",))
       for name in ("dora", "rslora", "qlora", "grad_checkpointing", "packing", "merge", "train_reasoning")},
}


@cli.command("lora")
@click.argument("data", metavar="DATA...", nargs=-1, required=True, type=click.Path())
@out_option
@force_option
@read_options
@config_options(TrainConfig, opts=_OPTS)
def lora(data: tuple[str, ...], out: str, force: bool, read: Any, **options: Any) -> None:
    """Fine-tune a student with a LoRA/DoRA adapter on conversation rows DATA (files or run folders).

    Lints every row's loss mask first (see `thresher train lint-masks`), resumes from the last
    checkpoint in OUT when rerun, and writes OUT/adapter (and OUT/merged with --merge),
    metrics.jsonl and loss_curves.png. Run under `torchrun --nproc-per-node N` for
    data-parallel training.
    """
    from thresher.config import from_dict
    from thresher.errors import ThresherError

    config = from_dict(TrainConfig, config_values(TrainConfig, options))
    for d in data:
        if not Path(d).exists():
            raise ThresherError(f"input not found: {d}")
    from thresher.train.stage import run

    result = run([Path(d) for d in data], Path(out), config, force=force, read=read)
    s = result.stats
    if s and not result.reused:
        from thresher.progress import info

        info(f"train: {s.get('steps')} steps, loss {_fmt(s.get('first_loss'))} -> {_fmt(s.get('final_loss'))}"
             f", adapter in {Path(out) / 'adapter'}")


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else "n/a"
