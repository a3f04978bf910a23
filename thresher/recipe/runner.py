"""Run a recipe: the inputs step, then every stage in order, each in its own folder.

``RUN_DIR/00-inputs`` holds the concatenated inputs, ``RUN_DIR/NN-<stage>`` the output of
the recipe's N-th stage, fed by the previous stage's ``kept.parquet``. Each stage's manifest
(hash of its inputs and config, see :class:`thresher.stage.StageFolder`) makes a finished stage
with the same inputs and config a no-op, so rerunning a killed run continues where it
stopped and changing one stage's config reruns that stage and those it feeds only.
The run directory also holds ``recipe.yaml`` (the resolved recipe), ``versions.json`` and
``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from thresher.errors import BatchPending
from thresher.io import parts
from thresher.recipe.spec import (
    Recipe,
    StageSpec,
    data_stages,
    resolve_stage_ref,
    stage_module,
    stage_refs,
)

VERSION_PACKAGES = (
    "thresher", "torch", "transformers", "peft", "polars", "datasets", "datasketch",
    "accelerate", "vllm", "click", "pyyaml", "matplotlib", "ray",
)


def versions() -> dict[str, str]:
    """Versions of Python, thresher and its main dependencies (installed ones only)."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "thresher":
                import thresher

                out[name] = getattr(thresher, "__version__", "unknown")
    return out


def _write_text(path: Path, text: str) -> None:
    from thresher.io import write_text_atomic

    write_text_atomic(path, text)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _row_count(path: Path) -> int | None:
    """Rows of a stage's kept.parquet (one file or a folder of parts, from the footers), None when absent."""
    return parts.count(path) if parts.exists(path) else None


#: generate options the eval stage sets itself for the answers (the rest are kept: budget, backend)
_EVAL_OWN = ("teacher", "model", "n", "system", "system_in_rows", "seed", "temperature", "top_p", "top_k")


def feeder(spec: StageSpec, recipe: Recipe) -> int:
    """The index of the stage whose rows feed ``spec`` (-1: the recipe's inputs): its
    ``input``, else the last data stage before it."""
    if spec.input is not None:
        i, _ = resolve_stage_ref(spec.input, [s.name for s in recipe.stages], spec.index)
        return -1 if i is None else i
    data = data_stages()
    before = [s.index for s in recipe.stages if s.index < spec.index and s.name in data]
    return before[-1] if before else -1


def lineage_generate(spec: StageSpec, recipe: Recipe) -> StageSpec | None:
    """The generate stage ``spec``'s rows come from (following each stage's feeder)."""
    i = feeder(spec, recipe)
    while i >= 0:
        s = recipe.stages[i]
        if s.name == "generate":
            return s
        i = feeder(s, recipe)
    return None


def _rows_of(index: int, recipe: Recipe, run_dir: Path) -> Path:
    from thresher.recipe import inputs_step

    folder = inputs_step.FOLDER if index < 0 else recipe.stages[index].folder
    return run_dir / folder / "kept.parquet"


def _with_stage_refs(spec: StageSpec, recipe: Recipe, run_dir: Path) -> Any:
    """The stage's config with every stage reference of its ``_stage_refs`` fields replaced by
    that stage's rows (``generate#2`` -> ``RUN/03-generate/kept.parquet``)."""
    names = [s.name for s in recipe.stages]
    changes: dict[str, Any] = {}
    for field_name, values in stage_refs(spec.config).items():
        resolved = {}
        for key, value in values.items():
            i, _ = resolve_stage_ref(value, names, spec.index)
            resolved[key] = str(_rows_of(i, recipe, run_dir)) if i is not None else value
        old = getattr(spec.config, field_name)
        changes[field_name] = resolved[""] if isinstance(old, str) else {**old, **resolved}
    return dataclasses.replace(spec.config, **changes) if changes else spec.config


def _stage_inputs(spec: StageSpec, recipe: Recipe, run_dir: Path, fed: dict[int, Path]) -> tuple[list[Path], Any]:
    """Inputs and config for one stage (the eval stage gets the run's context)."""
    if spec.name not in ("eval", "evaluate"):
        return [fed[spec.index]], _with_stage_refs(spec, recipe, run_dir)
    from thresher.config import to_dict
    from thresher.evaluate.stage import OWN_GENERATE_KEYS

    not_inherited = (*_EVAL_OWN, *OWN_GENERATE_KEYS)  # eval's own budget and backend, not the teacher's
    before = [s for s in recipe.stages if s.index < spec.index]
    gens = [s for s in before if s.name == "generate"]
    trains = [s for s in before if s.name == "train"]
    ev = spec.config
    inputs = [run_dir / "00-inputs" / "heldout.parquet"]
    models: list[str] = []
    changes: dict[str, Any] = {}
    if gens:
        gen = {k: v for k, v in to_dict(gens[-1].config).items() if k not in not_inherited}
        changes["generate"] = {**gen, **dict(ev.generate)}
    if trains:
        train = trains[-1]
        own = lineage_generate(train, recipe)  # the teacher's generations, not a student's side branch
        if own is not None:
            gens = [own]
            gen = {k: v for k, v in to_dict(own.config).items() if k not in not_inherited}
            changes["generate"] = {**gen, **dict(ev.generate)}
        topts = to_dict(train.config)
        base = topts.get("base")
        models = [f"base={base}", f"curated={run_dir / train.folder}"]
        changes.update(train={**topts, **dict(ev.train)}, base=ev.base or base)
        if gens:  # the curated set the student was trained on, and every generation before curation
            inputs += [fed[train.index], run_dir / gens[-1].folder / "kept.parquet",
                       run_dir / train.folder / "manifest.json"]
    changes["models"] = (*models, *ev.models)
    return inputs, dataclasses.replace(ev, **changes)


def run_recipe(
    recipe: Recipe,
    run_dir: Path,
    *,
    force: bool = False,
    echo: Callable[[str], None] | None = None,
    executor: str | None = None,
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Run ``recipe`` into ``run_dir`` and return the summary (also written as summary.json).

    ``executor`` (default: the recipe's ``executor:``, else local) runs the data stages here
    or on Ray (:mod:`thresher.executors`; one cluster connection for the whole run).
    """
    from thresher.executors.ray_session import using

    with using(executor or recipe.executor, ray_address):
        return _run_recipe(recipe, run_dir, force=force, echo=echo)


def _run_recipe(recipe: Recipe, run_dir: Path, *, force: bool,
                echo: Callable[[str], None] | None) -> dict[str, Any]:
    from thresher.recipe import inputs_step

    if echo is None:
        from thresher.progress import info as echo
    run_dir = Path(run_dir)
    from thresher.stage_folder import check_run_dir, folder_lock

    if not force:  # another recipe's run, a stage folder, a folder thresher did not make: refused
        check_run_dir(run_dir, recipe.name)
    with folder_lock(run_dir, what="run folder"):  # one `thresher run` per run folder at a time
        return _run_steps(recipe, run_dir, force=force, echo=echo, inputs_step=inputs_step)


def _run_steps(recipe: Recipe, run_dir: Path, *, force: bool, echo: Callable[[str], None],
               inputs_step: Any) -> dict[str, Any]:
    """The run once its folder is checked and locked: run files, the inputs step, every stage."""
    _write_text(run_dir / "recipe.yaml", recipe.to_yaml())
    _write_text(run_dir / "versions.json", json.dumps(versions(), indent=2) + "\n")
    summary: dict[str, Any] = {
        "recipe": recipe.name,
        "run_dir": str(run_dir),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "stages": [],
        "complete": False,
    }
    total = len(recipe.stages) + 1
    t_run = time.monotonic()

    def step(n: int, name: str, folder: Path, runner: Callable[[], Any]) -> None:
        echo(f"[{n:02d}/{total - 1:02d}] {name} -> {folder}")
        t0 = time.monotonic()
        try:
            result = runner()
        except BatchPending as e:  # not a failure: the run continues when the results exist
            summary["waiting"] = {"stage": name, "folder": folder.name, "message": str(e)}
            _write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
            how = f"rerun thresher run with --set stages[{n - 1}].batch_results=FILE"
            raise BatchPending(f"{name} ({folder}): waiting for batch results: "
                               + str(e).replace("rerun this command with --batch-results FILE", how)) from None
        reused = bool(getattr(result, "reused", False))
        stats = _read_json(folder / "stats.json")
        row = {
            "stage": name,
            "folder": folder.name,
            "status": "reused" if reused else "ran",
            "rows_in": stats.get("rows_in"),
            "rows_out": _row_count(folder / "kept.parquet"),
            "seconds": round(time.monotonic() - t0, 2),
        }
        if "cost_usd" in stats:  # API calls: tokens and cost of the stage (reused samples included), run total
            from thresher.pricing import add_cost

            add_cost(row, summary, stats)
        summary["stages"].append(row)
        echo(
            f"        {row['status']}: {row['rows_in'] if row['rows_in'] is not None else '?'} rows in, "
            f"{row['rows_out'] if row['rows_out'] is not None else '?'} kept ({row['seconds']:.1f} s)"
        )
        _write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")

    cfg = inputs_step.Config(inputs=recipe.inputs, holdout=recipe.holdout, seed=recipe.seed)
    in_dir = run_dir / inputs_step.FOLDER
    step(0, "inputs", in_dir, lambda: inputs_step.run(inputs_step.stage_inputs(cfg), in_dir, cfg, force=force))
    prev_kept = in_dir / "kept.parquet"
    dataset = prev_kept
    fed: dict[int, Path] = {}
    for spec in recipe.stages:
        module = stage_module(spec.name)
        folder = run_dir / spec.folder
        fed[spec.index] = prev_kept if spec.input is None else _rows_of(feeder(spec, recipe), recipe, run_dir)
        stage_in, config = _stage_inputs(spec, recipe, run_dir, fed)
        step(
            spec.index + 1,
            spec.name,
            folder,
            lambda m=module, i=stage_in, f=folder, c=config: m.run(i, f, c, force=force),
        )
        kept = folder / "kept.parquet"
        if parts.exists(kept) and spec.name in data_stages():  # one file or a folder of parts
            prev_kept = dataset = kept
    _complete_summary(summary, recipe, run_dir, dataset, t_run)
    _write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    _write_text(run_dir / "summary.md", summary_markdown(summary))
    return summary


def _complete_summary(summary: dict[str, Any], recipe: Recipe, run_dir: Path, dataset: Path,
                      t_run: float) -> None:
    """Mark the run complete: timing, the dataset, the adapter, reports and the eval verdict."""
    summary["complete"] = True
    summary["seconds"] = round(time.monotonic() - t_run, 1)
    summary["dataset"] = str(dataset)
    summary["dataset_rows"] = _row_count(dataset)
    train = [s for s in recipe.stages if s.name == "train"]
    if train:
        from thresher.evaluate.models import find_model_dirs

        adapter, _ = find_model_dirs(run_dir / train[-1].folder)
        if adapter is not None:
            summary["adapter"] = str(adapter)
    for name in ("report.md", "report.html"):
        if (run_dir / name).exists():
            summary[name.replace(".", "_")] = str(run_dir / name)
    ev = [s for s in recipe.stages if s.name in ("eval", "evaluate")]
    if ev:
        result = _read_json(run_dir / ev[-1].folder / "stats.json").get("eval")
        if result:
            summary["eval"] = {"verdict": result.get("verdict"), "target": result.get("target"),
                               "means": {n: {k: m.get("mean") for k, m in d["metrics"].items()}
                                         for n, d in result.get("models", {}).items()}}
    if summary.get("adapter"):
        _refresh_adapter_card(Path(summary["adapter"]), run_dir, summary.get("eval"))


def _refresh_adapter_card(adapter: Path, run_dir: Path, evaluation: dict[str, Any] | None) -> None:
    """Rewrite the adapter's model card once the run is complete: link the run's card
    (report.md) and add the eval verdict."""
    stats = _read_json(adapter.parent / "stats.json")
    if not stats or not (adapter / "adapter_config.json").is_file():
        return
    from thresher.train.portable import card_info, identity_from_adapter, model_card

    info = card_info(adapter.parent, stats, evaluation=evaluation)
    if (run_dir / "report.md").exists():
        info["run_card"] = os.path.relpath(run_dir / "report.md", adapter)
    _write_text(adapter / "README.md", model_card(identity_from_adapter(adapter, stats), info))


def summary_markdown(summary: dict[str, Any]) -> str:
    """A short human-readable summary of a run (also printed at the end of ``thresher run``)."""
    lines = [
        f"# Run of recipe {summary['recipe']}",
        "",
        "| stage | folder | status | rows in | kept | seconds |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in summary["stages"]:
        lines.append(
            f"| {r['stage']} | {r['folder']} | {r['status']} | {r['rows_in'] if r['rows_in'] is not None else ''} "
            f"| {r['rows_out'] if r['rows_out'] is not None else ''} | {r['seconds']} |"
        )
    lines.append("")
    for key, label in (("dataset", "dataset"), ("adapter", "adapter"), ("report_md", "report"), ("report_html", "report (HTML)")):
        if summary.get(key):
            lines.append(f"- {label}: {summary[key]}")
    if summary.get("eval"):
        lines.append(f"- eval: {summary['eval'].get('verdict')}")
    if "cost_usd" in summary:
        from thresher.pricing import usd

        lines.append(f"- API cost: {usd(summary['cost_usd'])} ({summary['prompt_tokens']} prompt + "
                     f"{summary['completion_tokens']} completion tokens)")
    return "\n".join(lines) + "\n"
