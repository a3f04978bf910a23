"""A click group whose subcommands are imported only when they run.

``thresher --help`` lists every command from the short help stored here, without importing
torch, transformers or vLLM.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from thresher.errors import ThresherError


class LazyGroup(click.Group):
    """``lazy_commands`` maps a command name to ``("module:attr", "short help")``."""

    def __init__(self, *args: Any, lazy_commands: dict[str, tuple[str, str]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in self.lazy_commands:
            return None
        target, short = self.lazy_commands[cmd_name]
        mod_name, attr = target.split(":")
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name and (e.name == mod_name or mod_name.startswith(e.name + ".")):
                return _unavailable(cmd_name, short, f"not available in this installation ({e.name} missing)")
            raise
        cmd = getattr(mod, attr, None)
        if cmd is None:
            return _unavailable(cmd_name, short, f"not available ({target} missing)")
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                cmd = self.commands[name]
                if cmd.hidden:
                    continue
                rows.append((name, cmd.get_short_help_str(limit=formatter.width - 6 - len(name))))
            else:
                rows.append((name, self.lazy_commands[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _unavailable(name: str, short: str, why: str) -> click.Command:
    @click.command(name=name, help=short, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def cmd(args: Any) -> None:
        raise ThresherError(f"'{name}' is {why}")

    return cmd
