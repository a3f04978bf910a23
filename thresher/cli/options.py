"""Reusable click option bundles (sqlite-utils style)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from thresher.choices import EXECUTORS
from thresher.cli.config_options import Opt, config_options, config_values
from thresher.io.inputs import ReadOptions

#: how the :class:`~thresher.io.inputs.ReadOptions` fields are spelled on the command line
_READ_OPTS = {"fmt": Opt(decls=("--format",)), "split": Opt(metavar="NAME")}


def read_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The shared input bundle of every command that reads rows: ``--format``, ``--on-bad-rows``
    and ``--split``, generated from :class:`thresher.io.inputs.ReadOptions` (its fields, their
    docstrings and defaults) and handed to the command as one ``read`` keyword (part of the
    stage fingerprint)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, read=ReadOptions(**config_values(ReadOptions, kwargs)), **kwargs)

    return config_options(ReadOptions, opts=_READ_OPTS, mark=False)(wrapper)


def out_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--out RUN_DIR``: the stage's run folder."""
    return click.option(
        "--out", "-o", "out", required=True, type=click.Path(file_okay=False),
        help="Run folder for this stage (kept.parquet, dropped.parquet, stats.json).",
    )(fn)


def _set_executor(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if ctx.resilient_parsing:
        return value
    if param.name == "ray_address":  # eager: seen before --executor
        ctx.meta["thresher_ray_address"] = value
        return value
    from thresher.errors import ThresherError
    from thresher.executors.ray_session import use

    try:  # every command starts from the executor it was given (default: local) ...
        use(value or "local", ctx.meta.get("thresher_ray_address"))
    except ThresherError as e:
        raise click.ClickException(str(e)) from None
    ctx.call_on_close(use)  # ... and leaves the process on the local one
    return value


def executor_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--executor local|ray`` and ``--ray-address``: where the stage runs (not passed to the
    command: they set :func:`thresher.executors.ray_session.use`)."""
    fn = click.option(
        "--ray-address", default=None, expose_value=False, callback=_set_executor, is_eager=True,
        metavar="ADDRESS", help="Ray cluster to use with --executor ray (default: $RAY_ADDRESS, "
        "or a local cluster started for the run).",
    )(fn)
    return click.option(
        "--executor", type=click.Choice(EXECUTORS), default=None, expose_value=False,
        callback=_set_executor, help="Run here (local, the default) or on a Ray cluster "
        "(needs pip install 'thresher[ray]').",
    )(fn)


def _set_wait(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if ctx.resilient_parsing:
        return value
    from thresher.stage_folder import set_wait

    set_wait(bool(value))
    ctx.call_on_close(lambda: set_wait(False))
    return value


def wait_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--wait``: wait for another process writing the same folder instead of stopping
    (not passed to the command: it sets :func:`thresher.stage_folder.set_wait`)."""
    return click.option(
        "--wait", is_flag=True, expose_value=False, callback=_set_wait,
        help="When another thresher process is writing the same --out folder, wait for it "
             "instead of stopping.")(fn)


def force_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--force``: recompute even if the stage already finished with the same inputs; with it
    the :func:`executor_options` and :func:`wait_option` every stage command has."""
    fn = click.option("--force", is_flag=True, help="Recompute even when a finished result exists.")(fn)
    return wait_option(executor_options(fn))


def stage_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--out`` and ``--force`` together."""
    return out_option(force_option(fn))
