"""The ``evaluate`` recipe stage: did curation pay off?

On the prompts the inputs step held out, it compares the student's mean score (the recipe's
scorer, e.g. log-likelihood under the teacher) for three students:

- ``before``: the base student, untrained;
- ``curated``: the student the recipe's ``train`` stage trained on the curated set;
- ``random``: the same base trained with the same options on a random subset of the
  *uncurated* generations (the ``generate`` stage's output), as many rows as the curated set.

It reuses the ``generate``, ``score`` and ``train`` stage modules through the stage contract:
each student answers the held-out prompts with the generate stage's options (one greedy
sample, the student as the model), the answers are scored with the score stage's options,
and the random baseline is trained by the train stage's ``run``. Every sub-step is a stage
folder of its own under ``NN-evaluate/``, so a killed evaluation resumes too.

The recipe runner fills ``generate``, ``score`` and ``train`` with those stages' resolved
options (a recipe may set a few keys in them to override, e.g. ``generate: {max_new_tokens:
48}``) and passes the inputs ``[curated set, generations, held-out prompts, train manifest]``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thresher.errors import ThresherError

STAGE_NAME = "evaluate"
MODEL_KEYS = ("teacher", "model")


@dataclass(frozen=True)
class Config:
    """Options of the evaluate stage.

    ``baseline``: also train the random-subset student (the third number). ``seed``: the
    random subset's seed. ``generate`` / ``score`` / ``train``: options that override those of
    the recipe's stages for the evaluation only.
    """

    baseline: bool = True
    seed: int = 0
    generate: dict[str, Any] = field(default_factory=dict)
    score: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def check(self) -> list[str]:
        """Consistency problems (one string each)."""
        problems = []
        for key in MODEL_KEYS:
            if key in self.generate and self.generate[key] not in (None, ""):
                problems.append(f"generate.{key}: set by the evaluate stage itself (the student answers)")
        return problems


def _module(name: str):
    from thresher.recipe.schema import _stage_module

    return _stage_module(name)


def _build(module, options: dict[str, Any], where: str, **overrides: Any):
    """The stage's Config from ``options`` with ``overrides`` applied where the field exists."""
    from thresher.config import from_dict

    fields = {f.name for f in dataclasses.fields(module.Config)}
    opts = {k: v for k, v in options.items() if k in fields}
    opts.update({k: v for k, v in overrides.items() if k in fields})
    return from_dict(module.Config, opts, where)


def find_model_dirs(train_dir: Path) -> tuple[Path | None, Path | None]:
    """(adapter folder, merged model folder) written by a train stage (None when absent)."""
    adapter = merged = None
    for cfg in sorted(train_dir.rglob("adapter_config.json")):
        if "checkpoint" not in str(cfg.relative_to(train_dir)):
            adapter = cfg.parent
            break
    for cfg in sorted(train_dir.rglob("config.json")):
        rel = str(cfg.relative_to(train_dir))
        if "checkpoint" not in rel and "merged" in rel and not (cfg.parent / "adapter_config.json").exists():
            merged = cfg.parent
            break
    return adapter, merged


def _student_model(train_dir: Path, base: str | None, out: Path, name: str) -> Path:
    """A plain model folder for the student trained in ``train_dir``, named after a hash of
    its weights (so a retrained student is never mistaken for the previous one): a link to
    the train stage's merged model, or the adapter merged into the base with peft."""
    from thresher.stage import file_fingerprint

    adapter, merged = find_model_dirs(train_dir)
    if adapter is None and merged is None:
        raise ThresherError(f"{train_dir}: the train stage left no adapter to evaluate")
    dest = out / f"student-{name}-{file_fingerprint(adapter or merged)[:12]}"
    if dest.exists():
        return dest
    if merged is not None:
        dest.symlink_to(merged.resolve(), target_is_directory=True)
        return dest
    import torch
    from peft import PeftModel
    from thresher.io import atomic_path
    from thresher.models import load_model, load_tokenizer, resolve_model

    base_dir = resolve_model(base)
    model = load_model(base_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    tok = load_tokenizer(str(adapter if (adapter / "tokenizer_config.json").exists() else base_dir))
    with atomic_path(dest, is_dir=True) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        gen = Path(base_dir) / "generation_config.json"
        if gen.exists() and not (tmp / "generation_config.json").exists():
            (tmp / "generation_config.json").write_bytes(gen.read_bytes())
    return dest


def _score_column(df) -> str:
    cols = [c for c in df.columns if c.startswith("score_")]
    if not cols:
        raise ThresherError("evaluate: the score stage added no score column")
    return cols[0]


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False):
    """Score the three students on the held-out prompts (see the module docstring)."""
    import polars as pl

    from thresher.io import read_table, write_table
    from thresher.schema import conform, content_id, prompt_messages
    from thresher.stage import Stage

    if len(inputs) != 4:
        raise ThresherError("evaluate: needs [curated set, generations, held-out prompts, train manifest] as inputs")
    stage = Stage(STAGE_NAME, out, inputs=inputs, config=config, force=force)
    if stage.done:
        return stage.result()
    curated = read_table(inputs[0])
    generations = read_table(inputs[1])
    heldout = read_table(inputs[2])
    train_dir = Path(inputs[3]).parent
    if heldout.height == 0:
        raise ThresherError("evaluate: no held-out prompts (set holdout: N in the recipe)")

    gen_mod, score_mod, train_mod = _module("generate"), _module("score"), _module("train")
    train_opts = dict(config.train)
    base = train_opts.get("base") or train_opts.get("base_model")

    prompts = conform(pl.DataFrame({
        "id": heldout["id"],
        "messages": [prompt_messages(m) for m in heldout["messages"].to_list()],
        "category": heldout["category"],
        "source": heldout["source"],
    }))
    prompts_path = stage.path("heldout-prompts.parquet")
    write_table(prompts, prompts_path)

    students: dict[str, Path | str | None] = {"before": str(base) if base else None}
    students["curated"] = _student_model(train_dir, base, out, "curated")
    train_rows = curated.height
    if config.baseline:
        n = min(curated.height, generations.height)
        subset = generations.sample(n=n, seed=config.seed, shuffle=True)
        subset_path = stage.path("random-subset.parquet")
        write_table(subset, subset_path)
        cfg = _build(train_mod, train_opts, f"{STAGE_NAME}.train", merge=True)
        train_mod.run([subset_path], stage.path("train-random"), cfg, force=force)
        students["random"] = _student_model(stage.path("train-random"), base, out, "random")

    scored = []
    means: dict[str, float | None] = {}
    column = None
    for name, model in students.items():
        model_key = next((k for k in MODEL_KEYS if k in {f.name for f in dataclasses.fields(gen_mod.Config)}), "teacher")
        gcfg = _build(gen_mod, dict(config.generate), f"{STAGE_NAME}.generate",
                      **{model_key: str(model) if model is not None else None, "n": 1, "temperature": 0.0,
                         "seed": config.seed})
        gres = gen_mod.run([prompts_path], stage.path(f"generate-{name}"), gcfg, force=force)
        scfg = _build(score_mod, dict(config.score), f"{STAGE_NAME}.score")
        sres = score_mod.run([Path(gres.out) / "kept.parquet"], stage.path(f"score-{name}"), scfg, force=force)
        df = pl.read_parquet(Path(sres.out) / "kept.parquet")
        column = column or _score_column(df)
        vals = df[column].cast(pl.Float64).drop_nulls().drop_nans()
        means[name] = round(float(vals.mean()), 4) if vals.len() else None
        scored.append(df.with_columns(pl.lit(name).alias("student")))
    kept = pl.concat(scored, how="diagonal_relaxed")
    kept = kept.with_columns(
        pl.struct("student", "id").map_elements(lambda r: content_id([{"role": "system", "content": r["student"]},
                                                                      {"role": "user", "content": r["id"]}]),
                                                return_dtype=pl.String).alias("id"))
    payoff = {
        **means,
        "metric": column,
        "scorer": ", ".join(config.score.get("scorers") or ()) or "default scorer",
        "prompts": heldout.height,
        "train_rows": train_rows,
    }
    return stage.finish(kept, None, stats={"payoff": payoff, "students": {k: str(v) for k, v in students.items()}},
                        rows_in=heldout.height)
