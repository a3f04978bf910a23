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
    """``lazy_commands`` maps a command name to ``("module:attr", "short help")``; with
    ``stage_group`` (``""``: the top level, ``"curate"``) the commands of the registered stages
    listed in that group are added (:func:`thresher.registry.commands`)."""

    def __init__(self, *args: Any, lazy_commands: dict[str, tuple[str, str]] | None = None,
                 stage_group: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})
        self.stage_group = stage_group

    def _stage_commands(self) -> dict[str, tuple[str, str]]:
        if self.stage_group is None:
            return {}
        from thresher.registry import commands

        return commands(self.stage_group)

    def _lazy(self, name: str) -> tuple[str, str] | None:
        if name in self.lazy_commands:
            return self.lazy_commands[name]
        if self.stage_group is None:
            return None
        from thresher.registry import command

        return command(self.stage_group, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands) | set(self._stage_commands()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        lazy = self._lazy(cmd_name)
        if lazy is None:
            return None
        target, short = lazy
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
                rows.append((name, (self._lazy(name) or ("", ""))[1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _unavailable(name: str, short: str, why: str) -> click.Command:
    @click.command(name=name, help=short, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def cmd(args: Any) -> None:
        raise ThresherError(f"'{name}' is {why}")

    return cmd
