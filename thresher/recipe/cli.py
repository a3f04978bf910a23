"""``thresher run RECIPE --out RUN_DIR`` and ``thresher recipe validate FILE``."""

from __future__ import annotations

from pathlib import Path

import click

from thresher.choices import EXECUTORS
from thresher.errors import ThresherError

SET_HELP = "Override a recipe value: STAGE.KEY=VALUE (VALUE is YAML), e.g. --set dedup.threshold=0.9. Repeatable."


def _load(recipe: str, overrides: tuple[str, ...], *, offline_hub: bool = True):
    from thresher.errors import ConfigError
    from thresher.recipe.loading import load_recipe
    from thresher.recipe.preflight import preflight

    try:
        rec = load_recipe(recipe, overrides)
    except ConfigError as e:
        raise ConfigError(e.problems, where=recipe) from None
    # missing models, columns read before a stage writes them: found before any stage runs
    problems, warnings = preflight(rec, offline_hub=offline_hub)
    if problems:
        raise ConfigError(problems, where=recipe)
    if warnings:
        from thresher.progress import info

        for w in warnings:
            info(f"{recipe}: warning: {w}")
    return rec


@click.command("run")
@click.argument("recipe", default="quickstart", metavar="[RECIPE]")
@click.option("--out", "-o", "out", default=None, type=click.Path(file_okay=False),
              help="Run directory (default: runs/<recipe name>).")
@click.option("--set", "overrides", multiple=True, metavar="STAGE.KEY=VALUE", help=SET_HELP)
@click.option("--force", is_flag=True, help="Recompute every stage even when a finished result exists "
              "(and write into a --out folder that is not a run folder).")
@click.option("--wait", is_flag=True, help="When another `thresher run` is writing the same run folder, "
              "wait for it instead of stopping.")
@click.option("--executor", type=click.Choice(EXECUTORS), default=None,
              help="Run the stages here or on a Ray cluster (default: the recipe's executor:, "
                   "else local; ray needs pip install 'thresher[ray]').")
@click.option("--ray-address", default=None, metavar="ADDRESS",
              help="Ray cluster for --executor ray (default: $RAY_ADDRESS, or a local cluster "
                   "started for the run).")
@click.option("--estimate", is_flag=True, help="Print each generate stage's tokens, requests and cost; "
              "send no request (only the inputs step runs).")
def run_cmd(recipe: str, out: str | None, overrides: tuple[str, ...], force: bool, wait: bool,
            executor: str | None, ray_address: str | None, estimate: bool = False) -> None:
    """Run RECIPE (a YAML file, or the name of a shipped recipe; default: quickstart) end to end.

    Each stage writes into its own folder of the run directory. Rerunning reuses finished
    stages, continues a killed run where it stopped, and reruns only the stages whose
    config or inputs changed.

    Example: thresher run recipes/quickstart.yaml --out runs/quickstart
    """
    from thresher.recipe.runner import run_recipe, summary_markdown
    from thresher.stage_folder import set_wait

    rec = _load(recipe, overrides)
    set_wait(wait)
    click.get_current_context().call_on_close(lambda: set_wait(False))
    run_dir = Path(out) if out else Path("runs") / rec.name
    if estimate:
        from thresher.distill.estimate import estimate_recipe

        click.echo("\n".join(estimate_recipe(rec, run_dir)))
        return
    try:
        summary = run_recipe(rec, run_dir, force=force, executor=executor, ray_address=ray_address)
    except KeyboardInterrupt:
        raise ThresherError(f"interrupted; rerun the same command to continue from {run_dir}") from None
    click.echo(summary_markdown(summary).rstrip())


@click.group("recipe")
def recipe() -> None:
    """Check and show recipes."""


@recipe.command("validate")
@click.argument("file", metavar="FILE")
@click.option("--set", "overrides", multiple=True, metavar="STAGE.KEY=VALUE", help=SET_HELP)
def validate(file: str, overrides: tuple[str, ...]) -> None:
    """Parse and validate FILE without running anything; list every problem at once.

    Example: thresher recipe validate recipes/quickstart.yaml --set dedup.threshold=0.9
    """
    rec = _load(file, overrides, offline_hub=False)
    names = ", ".join(s.name for s in rec.stages)
    click.echo(f"{file}: ok: recipe '{rec.name}', {len(rec.inputs)} inputs, {len(rec.stages)} stages ({names})")


@recipe.command("show")
@click.argument("file", metavar="FILE")
@click.option("--set", "overrides", multiple=True, metavar="STAGE.KEY=VALUE", help=SET_HELP)
def show(file: str, overrides: tuple[str, ...]) -> None:
    """Print FILE resolved: every stage option with the value it will run with.

    Example: thresher recipe show quickstart --set generate.n=2
    """
    click.echo(_load(file, overrides, offline_hub=False).to_yaml().rstrip())
