"""``thresher eval``: compare models on held-out prompts with independent judges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from thresher.cli.config_options import Opt, config_options, config_values
from thresher.cli.options import read_options, stage_options
from thresher.evaluate.stage import Config

JUDGE_HELP = """Judge (repeatable), [NAME=]KIND[:ARGS]. Verifiers (1 pass / 0 fail; judged after
any <think> reasoning block): math (final answer equivalent to the reference, by math-verify);
exact (answer equals the reference); regex:PATTERN (answer matches, 0.1 s match limit per row;
plain regex: the answer contains the reference as a literal; regex:{reference}: the reference is
the pattern); numeric[:TOL] (last number equals the reference's); json[:SCHEMA.json]
(parses as JSON, validates against the schema); ends (ended by itself within the token
budget); sentences:LO-HI or sentences:HI; words:LO-HI or words:HI; lang:CODE (py3langid,
e.g. lang:en); code[:TIMEOUT_S] (passes the row's HumanEval-style tests, run to their end in
the sandbox: see --sandbox). Model-based: refnll (mean token NLL of the held-out human reference
answer under each model; lower is better); reward:MODEL (reward-model score); judge:BACKEND[:MODEL]
(pointwise LLM judge, 1-10); pairwise:BACKEND[:MODEL] (LLM judge picks the better of two answers,
asked in both orders). With two or more verifiers, 'all' (every verifier passes) is added.
Default: ends, sentences:1-2."""


@click.command("eval")
@click.argument("heldout", type=click.Path(path_type=Path, exists=True, dir_okay=True))
@read_options
@config_options(Config, recipe_only=("heldout", "baseline", "generate", "score", "train"), opts={
    "models": Opt(decls=("--model", "-m"), required=True, metavar="NAME=MODEL",
                  help="A model to compare (repeatable): smollm2, a hub name, a model, merged-model, LoRA "
                       "adapter or train-stage folder, e.g. -m base=smollm2 -m curated=runs/q/07-train."),
    "judges": Opt(decls=("--judge", "-j"), metavar="SPEC", help=JUDGE_HELP),
    "target": Opt(metavar="METRIC"),
    "focus": Opt(metavar="NAME"),
    "reference_column": Opt(metavar="COL"),
    "base": Opt(metavar="MODEL"),
    "sandbox": Opt(metavar="CMD"),
    "base_url": Opt(metavar="URL"),
})
@stage_options  # --out, --force, --wait, --executor (the answers go through the generate stage: on Ray)
def eval_cmd(heldout: Path, out: str, force: bool, read: Any, **options: Any) -> None:
    """Every --model answers the prompts of HELDOUT (greedy, the same token budget); each
    --judge scores the answers; every pair of models is compared prompt by prompt (win/tie/loss,
    mean difference with a 95% bootstrap CI, sign-test and paired-bootstrap p-values, per
    category). Writes OUT/eval.json and OUT/kept.parquet and prints the verdict."""
    from thresher.config import from_dict
    from thresher.evaluate.stage import run

    config = from_dict(Config, {**config_values(Config, options), "baseline": False})
    result = run([heldout], Path(out), config, force=force, read=read)
    ev = result.stats.get("eval", {})
    click.echo(format_table(ev))
    click.echo(ev.get("verdict", ""))
    if ev.get("sandbox"):
        click.echo(f"code judge sandbox: {ev['sandbox']['level']}")
    click.echo(f"-> {Path(out) / 'eval.json'}")


def format_table(ev: dict) -> str:
    """Means with 95% CIs, one line per model and metric."""
    lines = []
    samples = ev.get("samples") or 1
    if samples > 1:
        lines.append(f"verifiers: avg@{samples} (pass@1 averaged over {samples} answers per prompt at temperature "
                     f"{ev.get('temperature')}); 95% CIs over prompts")
    for name, d in ev.get("models", {}).items():
        cells = [f"{k} {m['mean']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"
                 for k, m in d["metrics"].items() if m.get("mean") is not None and m["mean"] == m["mean"]]
        lines.append(f"{name}: " + "; ".join(cells))
    return "\n".join(lines)
