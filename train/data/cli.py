"""``thresher train lint-masks``: check every row's loss mask before training."""

from __future__ import annotations

from typing import Any

import click

from thresher.cli.config_options import Opt, config_options, config_values
from thresher.cli.options import read_options
from thresher.errors import ThresherError
from thresher.train.config import TrainConfig

#: the trainer's options that decide the loss masks (same names, defaults and help as train lora)
_FIELDS = ("base", "chat_template", "max_length", "train_on", "overlong", "trust_remote_code",
           "train_reasoning", "max_reasoning_tokens")


@click.command("lint-masks")
@click.argument("data", metavar="DATA...", nargs=-1, required=True)
@config_options(TrainConfig, only=_FIELDS, opts={
    "max_length": Opt(type=click.IntRange(min=8)),
    "train_reasoning": Opt(decls=("--train-reasoning/--no-train-reasoning",)),
})
@click.option(
    "--show",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Rows to print as a coloured token view (failing rows first).",
)
@click.option("--allow-special-tokens-in-content", "allow_special", is_flag=True,
              help="Let special-token strings typed in message content (e.g. <|im_end|>) act as control "
                   "tokens (default: tokenized as text).")
@read_options
def lint_masks(data: tuple[str, ...], show: int, allow_special: bool, read: Any, **options: Any) -> None:
    """Check the loss mask of every row of DATA (files or run folders) for the student's chat template.

    Checks: template missing, no trainable token, response cut by --max-length, end-of-turn
    not trained, non-assistant text trained (and agreement with {% generation %} markers).
    Reasoning traces (reasoning_content, a reasoning column) show as trained unless
    --no-train-reasoning; rows cut inside a trace or over --max-reasoning-tokens are listed.
    Prints counts and a token view (trained tokens highlighted); exits 1 when rows fail.

    Example: thresher train lint-masks data.parquet --base smollm2 --max-length 2048
    """
    from rich.console import Console

    from thresher.config import from_dict
    from thresher.io.inputs import read_inputs
    from thresher.train.data.lint import lint_rows, print_report
    from thresher.train.data.templates import load_tokenizer

    c = from_dict(TrainConfig, config_values(TrainConfig, options))
    tokenizer = load_tokenizer(c.base, chat_template=c.chat_template, trust_remote_code=c.trust_remote_code)
    rows, rejected = read_inputs(list(data), read)
    if rejected.height:
        click.echo(f"lint-masks: {rejected.height} bad rows skipped on read")
    report = lint_rows(tokenizer, rows, max_length=c.max_length, train_on=c.train_on, overlong=c.overlong,
                       allow_special_in_content=allow_special, train_reasoning=c.train_reasoning,
                       max_reasoning_tokens=c.max_reasoning_tokens)
    print_report(report, tokenizer, Console(), show=show)
    click.echo(f"lint-masks: {report.summary()}")
    if not report.ok:
        kinds = sorted({i.kind for i in report.failures})
        raise ThresherError(
            f"{len(report.failures)} of {report.rows} rows fail the mask lint ({', '.join(kinds)})"
        )
