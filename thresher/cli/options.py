"""Reusable click option bundles (sqlite-utils style)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from thresher.io.shapes import SHAPES


def input_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--format`` (force a record shape) and ``--on-bad-rows error|skip``."""
    fn = click.option(
        "--on-bad-rows",
        type=click.Choice(["error", "skip"]),
        default="error",
        show_default=True,
        help="Stop at the first bad row, or skip bad rows and write them with reasons beside the output.",
    )(fn)
    fn = click.option(
        "--format",
        "fmt",
        type=click.Choice(SHAPES),
        default=None,
        help="Force the input record format (default: detected from the first record).",
    )(fn)
    return fn


def out_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--out RUN_DIR``: the stage's run folder."""
    return click.option(
        "--out", "-o", "out", required=True, type=click.Path(file_okay=False),
        help="Run folder for this stage (kept.parquet, dropped.parquet, stats.json).",
    )(fn)


def force_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--force``: recompute even if the stage already finished with the same inputs."""
    return click.option("--force", is_flag=True, help="Recompute even when a finished result exists.")(fn)


def stage_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--out`` and ``--force`` together."""
    return out_option(force_option(fn))
