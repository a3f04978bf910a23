"""``thresher models``: show and prepare cached models."""

from __future__ import annotations

import click


@click.group(invoke_without_command=True)
@click.pass_context
def models(ctx: click.Context) -> None:
    """Show cached models; `thresher models prepare` converts the default SmolLM2 once."""
    if ctx.invoked_subcommand is None:
        from thresher.models import cache_dir, cached_models

        rows = cached_models()
        click.echo(f"cache: {cache_dir() / 'models'}")
        if not rows:
            click.echo("no models cached yet (run `thresher models prepare`)")
        for name, path, size in rows:
            click.echo(f"{name:40s} {size / 1e6:8.1f} MB  {path}")


@models.command()
@click.argument("name", required=False)
def prepare(name: str | None) -> None:
    """Resolve NAME (default: the embedded SmolLM2-135M-Instruct) into the local cache."""
    from thresher.models import resolve_model

    click.echo(str(resolve_model(name)))
