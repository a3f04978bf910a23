"""The ``eval`` stage (``thresher eval`` and the recipe stage ``eval``): several models answer
the same held-out prompts, judges independent of the training signal score every answer,
and every pair of models is compared prompt by prompt.

Inputs: ``[held-out rows]`` (their final assistant turn, when there is one, is the human
reference), and in a recipe also ``[..., curated set, uncurated generations]`` for the
random-subset student (the same base trained with the same options on as many rows drawn
at random from the generations). Each model answers through the ``generate`` stage (so the
distill backends, vLLM on a GPU), greedily, with the recipe's token budget, without the
teacher's system prompt (``system`` sets one for every model). Sub-steps are stage folders
of their own (``answers-NAME``, ``train-random`` ...), so a killed evaluation resumes.

Output: ``kept.parquet`` (one row per model and prompt, with the answer and a column
``eval_<metric>`` per metric), ``eval.json`` (means with bootstrap CIs, per-pair
win/tie/loss, mean differences with CIs, sign-test and paired-bootstrap p-values, the
same per category, and the verdict sentence) and ``stats.json`` (the same summary).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thresher.choices import GenerateBackend
from thresher.errors import ConfigError, InputError, ThresherError
from thresher.evaluate.answers import OWN_GENERATE_KEYS, stage_config, stage_module
from thresher.evaluate.judges import Judge, parse_judges
from thresher.evaluate.models import ModelSpec, fingerprint_path, parse_models
from thresher.executor import GlobalStage

NAME = "eval"
DEFAULT_JUDGES = ("ends", "sentences:1-2")
ALL = "all"


@dataclass(frozen=True)
class Config:
    """Options of ``thresher eval`` and of the recipe stage ``eval``."""

    models: tuple[str, ...] = ()
    """NAME=MODEL entries (smollm2, a hub name, a model/merged/adapter/train-stage folder).
    In a recipe ``base`` (the train stage's base), ``curated`` (its student) and ``random``
    (see ``baseline``) come first by themselves."""
    judges: tuple[str, ...] = DEFAULT_JUDGES
    """Judge specs (see ``thresher eval --help``): verifiers, refnll, reward:M, judge:B:M, pairwise:B:M."""
    target: str | None = None
    """The metric the verdict is about (default: ``all`` with two or more verifiers, else the first judge)."""
    focus: str | None = None
    """The model the verdict is about (default: ``curated`` when present, else the last model)."""
    heldout: str | None = None
    """A file or hub dataset of held-out rows to use instead of the recipe's held-out prompts
    (e.g. a verifiable set such as openai/openai_humaneval with the code judge)."""
    reference_column: str | None = None
    """Column of the held-out rows holding the reference answer (default: their ``reference`` column
    (an answer, solution or ideal column is read as one), else their final assistant turn)."""
    tests_column: str = "test"
    """``code`` judge: column with the tests (HumanEval's ``check(candidate)``; a test, tests or
    test_list column is read as ``tests``)."""
    entry_point_column: str = "entry_point"
    """``code`` judge: column with the function name passed to ``check``."""
    system: str | None = None
    """System prompt given to every model (default none: students answer without one)."""
    max_tokens: int = 96
    """Token budget of every answer (the same for every model)."""
    backend: GenerateBackend = "auto"
    """How the models answer (the generate stage's backends): auto (vllm when installed with a GPU,
    else transformers), transformers, vllm, openai (a server: base_url) or openai-batch."""
    base_url: str | None = None
    """backend openai: the OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1)."""
    samples: int = 1
    """Answers per prompt and model (k). With k > 1, sampled at ``temperature``, every verifier's
    value for a prompt is its pass rate over the k answers (avg@k: pass@1 averaged over k samples);
    CIs and paired tests still resample prompts."""
    temperature: float | None = None
    """Sampling temperature of the answers (default: 0, greedy, for one answer; 0.6 for several)."""
    sandbox: str | None = None
    """``code`` judge: a command that runs ``python -`` in a container (e.g. ``docker run --rm
    --network none -i IMAGE python -``); default: the strongest sandbox level this machine allows."""
    code_workers: int = 0
    """``code`` judge: programs checked in parallel (0: one per CPU)."""
    baseline: bool = True
    """In a recipe: also train and compare the random-subset student."""
    base: str | None = None
    """Base model adapters are merged into (in a recipe: the train stage's base)."""
    resamples: int = 2000
    """Bootstrap resamples for CIs and the paired bootstrap."""
    seed: int = 0
    """Seed of the random subset and of the bootstrap."""
    generate: dict[str, Any] = field(default_factory=dict)
    """Other options of the generate stage for the answers (dtype, max_model_len ...; in a recipe
    the teacher's, except its sampling, token budget and backend)."""
    score: dict[str, Any] = field(default_factory=dict)
    """Options of the score stage for reward / judge judges (batch_size, judge_scale ...)."""
    train: dict[str, Any] = field(default_factory=dict)
    """Options of the train stage for the random-subset student (a recipe fills them)."""

    def check(self) -> list[str]:
        """Every problem of the judge and model specs and the ranges."""
        judges, problems = parse_judges(self.judges)
        problems += parse_models(self.models)[1]
        if not self.judges:
            problems.append("judges: name at least one judge")
        names = {j.name for j in judges} | ({ALL} if sum(j.is_verifier for j in judges) >= 2 else set())
        if self.target is not None and judges and self.target not in names:
            problems.append(f"target: {self.target!r} is not a judge's metric (known: {', '.join(sorted(names))})")
        if self.samples < 1:
            problems.append(f"samples: must be >= 1 (got {self.samples})")
        if self.temperature is not None and self.temperature < 0:
            problems.append(f"temperature: must be >= 0 (got {self.temperature})")
        if self.samples > 1 and self.temperature == 0:
            problems.append("temperature: avg@k (samples > 1) needs sampled answers, temperature > 0")
        if self.code_workers < 0:
            problems.append("code_workers: must be >= 0")
        if self.resamples < 100:
            problems.append("resamples: must be >= 100")
        if self.max_tokens < 1:
            problems.append(f"max_tokens: must be >= 1 (got {self.max_tokens})")
        for key in ("teacher", "model", "n"):
            if key in self.generate:
                problems.append(f"generate.{key}: set by the eval stage itself")
        for key in OWN_GENERATE_KEYS:
            if key in self.generate:
                problems.append(f"generate.{key}: set eval's own {key} instead")
        return problems

    def answer_temperature(self) -> float:
        """The temperature the answers are sampled at (greedy for one answer by default)."""
        if self.temperature is not None:
            return self.temperature
        return 0.6 if self.samples > 1 else 0.0

    def parsed_judges(self) -> list[Judge]:
        return parse_judges(self.judges)[0]

    def target_metric(self) -> str:
        judges = self.parsed_judges()
        if self.target:
            return self.target
        return ALL if sum(j.is_verifier for j in judges) >= 2 else judges[0].name


def _prompts_table(heldout, config: Config, judges: list[Judge], where: str):
    """The prompt rows the models answer, and each prompt's reference, tests and entry point."""
    import polars as pl

    from thresher.schema import conform, prompt_messages, response_text

    msgs = heldout["messages"].to_list()
    refs: list[str | None]
    ref_col = config.reference_column or ("reference" if "reference" in heldout.columns else None)
    if ref_col:
        if ref_col not in heldout.columns:
            raise InputError(f"{where}: no reference column {config.reference_column!r} "
                             f"(columns: {', '.join(heldout.columns)})")
        refs = [None if r is None else str(r) for r in heldout[ref_col].to_list()]
    else:
        refs = [response_text(m) if m and m[-1]["role"] == "assistant" else None for m in msgs]
    needing = [j.name for j in judges if j.needs_reference]
    if needing and any(r is None or not str(r).strip() for r in refs):
        missing = sum(r is None or not str(r).strip() for r in refs)
        raise InputError(f"{where}: judge {needing[0]} needs a reference answer but {missing} of {len(refs)} "
                         "held-out rows have none (give rows ending with the reference answer, or "
                         "reference_column)")
    tests_col = config.tests_column if config.tests_column in heldout.columns else "tests"
    if any(j.kind == "code" for j in judges) and tests_col not in heldout.columns:
        raise InputError(f"{where}: judge code needs a tests column {config.tests_column!r}")
    tests = heldout[tests_col].to_list() if tests_col in heldout.columns else [None] * len(msgs)
    entry = (heldout[config.entry_point_column].to_list() if config.entry_point_column in heldout.columns
             else [None] * len(msgs))
    prompts = conform(pl.DataFrame({
        "id": heldout["id"], "messages": [prompt_messages(m) for m in msgs],
        "category": heldout["category"], "source": heldout["source"]}))
    return prompts, refs, tests, entry


def _random_student(inputs: list[Path], config: Config, stage, force: bool) -> str | None:
    """Train the random-subset student (recipe only) and return its train folder."""
    from thresher.io import read_table, write_table

    if not config.baseline or len(inputs) < 3:
        return None
    curated, generations = read_table(inputs[1]), read_table(inputs[2])
    n = min(curated.height, generations.height)
    subset = generations.sample(n=n, seed=config.seed, shuffle=True)
    path = stage.path("random-subset.parquet")
    write_table(subset, path)
    train_mod = stage_module("train")
    cfg = stage_config(train_mod, dict(config.train), f"{NAME}.train", merge=True)
    train_mod.run([path], stage.path("train-random"), cfg, force=force)
    return str(stage.path("train-random"))


class EvalStage(GlobalStage):
    """Global: every model answers every held-out prompt (nested generate/train stage folders
    under its own); it reads the held-out rows itself (``heldout`` or the first input)."""

    name = NAME
    config_cls = Config
    cli = "thresher.evaluate.cli:eval_cmd"
    summary = "Compare models on held-out prompts: verifiers, reference NLL, judges, p-values."
    makes_data = False
    loads_model = True
    reads_rows = False
    position = 90

    def writes(self, config: Config) -> set[str]:
        return set()  # its rows are answers, not the dataset

    def run_table(self, table: Any, context: Any) -> tuple[Any, Any, dict[str, Any]]:
        from thresher.evaluate.compare import evaluate_models
        from thresher.io import write_table, write_text_atomic
        from thresher.io.inputs import read_inputs

        config, stage, inputs = context.config, context.stage, context.inputs
        models, _ = parse_models(config.models)
        judges = config.parsed_judges()
        source = config.heldout or inputs[0]
        heldout, rejected = read_inputs([source], context.read)
        if heldout.height == 0:
            raise InputError(f"{source}: no held-out prompts")
        prompts, refs, tests, entry = _prompts_table(heldout, config, judges, str(source))
        prompts_path = stage.path("prompts.parquet")
        write_table(prompts, prompts_path)
        random_dir = _random_student(inputs, config, stage, context.force)
        if random_dir is not None:
            models = [*models, ModelSpec("random", random_dir)]
        kept, summary = evaluate_models(models, prompts, prompts_path, refs, tests, entry, judges, config, stage,
                                        context.force)
        summary["heldout"] = str(source)
        write_text_atomic(stage.path("eval.json"), json.dumps(summary, indent=2, default=_json_default) + "\n")
        context.artefacts["eval"] = "eval.json"
        context.state["rows_in"] = prompts.height + rejected.height
        return kept, (rejected if rejected.height else None), {"eval": summary}

    def rows_in(self, table: Any, context: Any) -> int | None:
        return context.state["rows_in"]


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False, read: Any = None):
    """Evaluate every model on the held-out prompts of ``inputs[0]`` (module docstring).

    ``inputs[0]`` may be a file or a run folder; ``read`` (:class:`thresher.io.inputs.ReadOptions`)
    says how to read it; rows rejected on read are listed in dropped.parquet."""
    from thresher.executor import run_stage

    problems = config.check()
    if problems:
        raise ConfigError(problems, where=NAME)
    if not inputs:
        raise ThresherError("eval: no held-out prompts given")
    models, _ = parse_models(config.models)
    if len(models) + (1 if config.baseline and len(inputs) >= 3 else 0) < 1:
        raise ConfigError("models: name at least one model (NAME=MODEL)", where=NAME)
    extra = [p for p in (fingerprint_path(m.model) for m in models) if p is not None]
    if config.heldout and Path(config.heldout).exists():
        extra.append(Path(config.heldout))
    return run_stage(EvalStage(), inputs, out, config, force=force, read=read, extra_inputs=extra)


def _json_default(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return str(v)
