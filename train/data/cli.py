"""``thresher train lint-masks``: check every row's loss mask before training."""

from __future__ import annotations

from typing import Any

import click

from thresher.cli.options import read_options
from thresher.errors import ThresherError


@click.command("lint-masks")
@click.argument("data", metavar="DATA...", nargs=-1, required=True)
@click.option(
    "--base",
    default=None,
    help="Student model: folder, .gguf file or known name (default: SmolLM2).",
)
@click.option(
    "--chat-template", default=None, help="Jinja chat template file replacing the model's own."
)
@click.option(
    "--max-length",
    type=click.IntRange(min=8),
    default=1024,
    show_default=True,
    help="Longest rendered conversation in tokens.",
)
@click.option(
    "--train-on",
    type=click.Choice(["all", "last"]),
    default="all",
    show_default=True,
    help="Train every assistant turn, or only the last one.",
)
@click.option(
    "--overlong",
    type=click.Choice(["drop", "truncate"]),
    default="drop",
    show_default=True,
    help="Rows longer than --max-length: drop them (listed) or truncate them.",
)
@click.option(
    "--show",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Rows to print as a coloured token view (failing rows first).",
)
@click.option("--trust-remote-code", is_flag=True,
              help="Run the model folder's own Python code (auto_map); only for models you trust.")
@click.option("--allow-special-tokens-in-content", "allow_special", is_flag=True,
              help="Let special-token strings typed in message content (e.g. <|im_end|>) act as control "
                   "tokens (default: tokenized as text).")
@read_options
def lint_masks(
    data: tuple[str, ...],
    base: str | None,
    chat_template: str | None,
    max_length: int,
    train_on: str,
    overlong: str,
    show: int,
    trust_remote_code: bool,
    allow_special: bool,
    read: Any,
) -> None:
    """Check the loss mask of every row of DATA (files or run folders) for the student's chat template.

    Checks: template missing, no trainable token, response cut by --max-length, end-of-turn
    not trained, non-assistant text trained (and agreement with {% generation %} markers).
    Prints counts and a token view (trained tokens highlighted); exits 1 when rows fail.

    Example: thresher train lint-masks data.parquet --base smollm2 --max-length 2048
    """
    from rich.console import Console

    from thresher.io.inputs import read_inputs
    from thresher.train.data.lint import lint_rows, print_report
    from thresher.train.data.templates import load_tokenizer

    tokenizer = load_tokenizer(base, chat_template=chat_template, trust_remote_code=trust_remote_code)
    rows, rejected = read_inputs(list(data), read)
    if rejected.height:
        click.echo(f"lint-masks: {rejected.height} bad rows skipped on read")
    report = lint_rows(tokenizer, rows, max_length=max_length, train_on=train_on, overlong=overlong,
                       allow_special_in_content=allow_special)
    print_report(report, tokenizer, Console(), show=show)
    click.echo(f"lint-masks: {report.summary()}")
    if not report.ok:
        kinds = sorted({i.kind for i in report.failures})
        raise ThresherError(
            f"{len(report.failures)} of {report.rows} rows fail the mask lint ({', '.join(kinds)})"
        )
