"""The score stage: run one or more scorers over a table and add ``score_<name>`` columns.

Each scorer (see :mod:`thresher.curate.score.specs` for the ``scorers`` syntax, and
:data:`thresher.curate.score.registry.SCORERS` for how each kind is parsed and built) adds a
Float64 column ``score_<name>`` (null when the row has no score) and a String column
``<name>_error`` (why there is no score: a judge answer that could not be read, a row
skipped as too long). Results are cached per row and scorer identity (see
:mod:`thresher.curate.score.cache`), so a re-run after a crash, or with one more scorer,
only scores what is missing; a scorer whose rows are all cached does not even load its
model. Scoring drops no rows, except rows a verifier cannot judge under ``--on-bad-rows skip``
(no reference, no tests); ``stats`` holds per-scorer summaries and histograms.

Verifiers (``verify:...``) read the row's ``reference``/``tests``/``finish_reason`` and are not
cached (they are cheap, and code runs in parallel workers); pass rates (``passrate:...``,
:mod:`thresher.curate.score.passrate`) are computed once every row is scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from thresher.errors import ConfigError, ThresherError
from thresher.executor import RowStage, StageContext, run_stage
from thresher.io.inputs import ReadOptions, resolve_input
from thresher.stage import StageResult, dropped_frame

from .base import ScoreResult, conversation_key
from .options import ModelOptions, Overflow
from .registry import parse_specs
from .specs import ScorerSpec

_MODEL = ModelOptions()  # the model scorers' defaults, written once there

DEFAULT_SCORERS = ("loglik",)


@dataclass(frozen=True)
class Config:
    """Options of ``thresher curate score`` (recipe keys are the field names)."""

    #: options that do not change any score: a finished stage is reused across them
    _fingerprint_exclude: ClassVar[tuple[str, ...]] = (
        "batch_size", "max_batch_tokens", "sort_by_length", "cache", "cache_dir", "verify_workers",
    )
    #: fields whose values may name another recipe stage's output (``generate#2``)
    _stage_refs: ClassVar[tuple[str, ...]] = ("passrate_from",)
    scorers: tuple[str, ...] = ()
    """Scorer as [NAME=]KIND[:ARGS], repeatable; adds column score_NAME (NAME defaults to KIND).
    KIND: loglik[:MODEL] (default; SmolLM2 when MODEL is omitted), reward:MODEL
    (sequence-classification reward model, hub name or folder), gain[:MODEL] (log p(answer|question)
    - log p(answer) per token: does the answer belong to the question), ending[:MODEL] (log p(end of
    turn | question, answer): low for a cut-off answer), relevance[:EMBEDDER] (cosine of the question
    and the answer under an offline sentence embedder, default minilm), judge:BACKEND[:MODEL]
    (LLM judge through a distill backend: transformers, vllm, openai), verify:VERIFIER (1 pass / 0
    fail: math, numeric, exact, regex against the row's reference; code with its tests; ends;
    sentences:LO-HI, words:LO-HI, json, lang:CODE), passrate:WHAT (the share of the prompt's
    samples passing WHAT: a verify scorer's NAME, a score column or verify:VERIFIER)."""
    label: str | None = None
    """Reward models with several labels: the label index or name to use."""
    max_length: int = _MODEL.max_length
    """Token limit per row for reward and loglik scorers."""
    overflow: Overflow = _MODEL.overflow
    """Rows over max_length: keep the end, keep the start, or skip with a reason."""
    batch_size: int = _MODEL.batch_size
    """Rows per batch (at most)."""
    max_batch_tokens: int = _MODEL.max_batch_tokens
    """Padded tokens per batch (rows x longest row)."""
    sort_by_length: bool = _MODEL.sort
    """Batch rows by length (off: in input order; slower, for comparison)."""
    engine: Literal["auto", "transformers", "vllm"] = "auto"
    """Reward-model engine: vllm's pooling runner, transformers, or auto (vllm when installed and
    a GPU is visible)."""
    device: str = _MODEL.device
    """auto, cpu, cuda, cuda:1 ... (auto: cuda when available, else cpu)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = _MODEL.dtype
    """auto: bfloat16 on GPU, float32 on CPU."""
    judge_rubric: Path | None = None
    """Text file with the judge's rubric (replaces the default)."""
    judge_scale: int = 10
    """The judge scores from 1 to this."""
    judge_retries: int = 2
    """Extra attempts when a judge answer has no readable score."""
    judge_max_tokens: int = 128
    """Longest judge answer, in tokens."""
    judge_base_url: str | None = None
    """OpenAI-compatible server of a judge:openai:MODEL scorer (e.g. https://api.openai.com/v1; key in OPENAI_API_KEY)."""
    cache: bool = True
    """Read and write the score cache."""
    cache_dir: Path | None = None
    """Score cache folder (default $THRESHER_CACHE/scores or ~/.cache/thresher/scores)."""
    trust_remote_code: bool = _MODEL.trust_remote_code
    """Allow model repositories' own code."""
    allow_special_tokens_in_content: bool = _MODEL.allow_special_in_content
    """Let special-token strings typed in message content (e.g. <|im_end|>) act as control tokens (default: tokenized as text)."""
    passrate_from: dict[str, str] = field(default_factory=dict)
    """NAME=ROWS: compute passrate scorer NAME on other rows (a file or stage folder, e.g. the
    student's answers to the same prompts; in a recipe also a stage such as generate#2) and
    join each prompt's rate back to these rows by parent_id (difficulty against the student)."""
    verify_workers: int = 0
    """Programs the code verifier runs at once (0: one per CPU)."""

    def specs(self) -> list[ScorerSpec]:
        """The parsed scorer specs (the default when none are given)."""
        return parse_specs(self.scorers or DEFAULT_SCORERS)[0]

    def check(self) -> list[str]:
        problems = parse_specs(self.scorers or DEFAULT_SCORERS)[1]
        if self.max_length < 8:
            problems.append("max_length: must be >= 8")
        if self.batch_size < 1:
            problems.append("batch_size: must be >= 1")
        if self.max_batch_tokens < 1:
            problems.append("max_batch_tokens: must be >= 1")
        if self.judge_scale < 2:
            problems.append("judge_scale: must be >= 2")
        if self.judge_retries < 0:
            problems.append("judge_retries: must be >= 0")
        if self.judge_max_tokens < 1:
            problems.append("judge_max_tokens: must be >= 1")
        if self.verify_workers < 0:
            problems.append("verify_workers: must be >= 0 (0: one per CPU)")
        problems += _passrate_problems(self)
        if self.judge_rubric is not None and not Path(self.judge_rubric).is_file():
            problems.append(f"judge_rubric: no such file {self.judge_rubric}")
        specs, spec_problems = parse_specs(self.scorers or DEFAULT_SCORERS)
        if self.label is not None and not spec_problems and not any(s.kind == "reward" for s in specs):
            problems.append("label: applies to a reward scorer (--scorer reward:MODEL), and none is given")
        return problems


def _passrate_problems(config: Config) -> list[str]:
    """passrate_from must name passrate scorers; inline verifiers must parse."""
    specs, bad = parse_specs(config.scorers or DEFAULT_SCORERS)
    if bad:
        return []
    problems = []
    rates = {s.name: s for s in specs if s.kind == "passrate"}
    for name, path in config.passrate_from.items():
        if name not in rates:
            problems.append(f"passrate_from.{name}: not a passrate scorer (give --scorer {name}=passrate:...)")
        elif not isinstance(path, (str, Path)) or not str(path).strip():
            problems.append(f"passrate_from.{name}: expected a file or stage folder, got {path!r}")
    for s in rates.values():
        if s.model and s.model.startswith("verify:"):
            from thresher.evaluate.judges import JudgeSpecError, parse_judge

            try:
                j = parse_judge(s.model.removeprefix("verify:"))
            except JudgeSpecError as e:
                problems.append(f"scorers: {s.name}=passrate:{s.model}: {e}")
                continue
            if not j.is_verifier:
                problems.append(f"scorers: {s.name}=passrate:{s.model}: {j.kind} is not a verifier")
    return problems


def build_scorer(spec: ScorerSpec, config: Config):
    """Instantiate the scorer a spec names (models load lazily, on first scored batch), by
    its kind's entry in :data:`.registry.SCORERS`."""
    from .registry import SCORERS

    build = SCORERS[spec.kind].build
    if build is None:
        raise ThresherError(f"scorer {spec.name}: {spec.kind} is computed by the stage, not built")
    return build(spec, config)


def _add_usage(stats: dict, usage: dict) -> None:
    """Add one judge's API tokens and cost to the stage totals (``cost_usd`` None once any
    price is unknown), the keys the run summary and the report read."""
    for key, value in (("prompt_tokens", usage["prompt_tokens"]), ("completion_tokens_total", usage["completion_tokens"]),
                       ("requests", usage["requests"])):
        stats[key] = stats.get(key, 0) + value
    known = "cost_usd" not in stats or stats["cost_usd"] is not None
    stats["cost_usd"] = (stats.get("cost_usd") or 0.0) + usage["cost_usd"] if known and usage["cost_usd"] is not None else None


def summarize(results: list[ScoreResult]) -> dict:
    """Counts, moments, quantiles and a histogram of one scorer's results."""
    import polars as pl

    from .summary import summarize_column

    return summarize_column(pl.Series([r.score for r in results], dtype=pl.Float64),
                            pl.Series([r.error for r in results], dtype=pl.String))


def score_rows(
    conversations: list[list[dict]], scorer, *, cache_root: Path | None
) -> tuple[list[ScoreResult], int]:
    """Score conversations with the cache: returns (results in order, rows taken from cache)."""
    from thresher.progress import progress

    from .cache import ScoreCache

    keys = [conversation_key(c) for c in conversations]
    cache = ScoreCache(cache_root, scorer.identity) if cache_root is not None else None
    found = cache.lookup(keys) if cache is not None else {}
    results: list[ScoreResult | None] = [found.get(k) for k in keys]
    todo = [i for i, r in enumerate(results) if r is None]
    # identical conversations are scored once
    first: dict[str, int] = {}
    for i in todo:
        first.setdefault(keys[i], i)
    unique = list(first.values())
    if unique:
        with progress(len(unique), f"score {scorer.name}") as bar:

            def on_batch(positions, out):
                for p, r in zip(positions, out):
                    results[unique[p]] = r
                if cache is not None:
                    cache.add([keys[unique[p]] for p in positions], out)
                bar.advance(len(positions))

            try:
                scorer.score([conversations[i] for i in unique], on_batch=on_batch)
            finally:
                if cache is not None:
                    cache.flush()
        for i in todo:
            results[i] = results[first[keys[i]]]
    return results, len(keys) - len(todo)  # type: ignore[return-value]


class ScoreStage(RowStage):
    """Row-wise: every scorer adds its two columns to each batch; no row is dropped (but rows
    a verifier cannot judge, when ``skip``). Pass rates are added in :meth:`finalize`.

    The scorers (their models load lazily, on the first batch that needs them) are built
    once per worker in :meth:`setup`. When the whole table is one batch (the local default),
    each scorer's model is released before the next one loads.
    """

    name = "score"
    config_cls = Config
    cli = "thresher.curate.score.cli:score"
    cli_group = "curate"
    summary = "Add score columns (reward model, loglik, judge)."
    loads_model = True
    position = 20

    def models(self, config: Config) -> list[tuple[str, str | None]]:
        """The scorers' models (an API judge loads none)."""
        refs: list[tuple[str, str | None]] = []
        for s in config.specs():
            if s.kind in ("loglik", "reward", "ifd"):
                refs.append((f"scorers ({s.kind})", s.model))
            elif s.kind == "judge" and s.backend not in ("openai",):
                refs.append(("scorers (judge)", s.model))
        return refs

    def streams(self, config: Config) -> bool:
        """Without pass rates: those join every sample of a prompt (a whole-table rule)."""
        return not any(spec.kind == "passrate" for spec in config.specs())

    def decides(self, config: Config) -> bool:
        """With pass rates (joined at finalize); the summaries alone decide nothing."""
        return not self.streams(config)

    def finalize_columns(self, config: Config, columns: list[str]) -> list[str]:
        """Each scorer's value and error column (summarised into the stats)."""
        want = {c for spec in config.specs() for c in (spec.column, spec.error_column)}
        return [c for c in columns if c in want]

    def writes(self, config: Config) -> set[str]:
        """One column per scorer."""
        return {s.column for s in config.specs()}

    def __init__(self, skip: bool = False):
        self.skip = skip  # --on-bad-rows skip: a row a verifier cannot judge is dropped, not an error

    def fingerprint_inputs(self, inputs, config: Config):
        return [*inputs, *(resolve_input(p) for p in config.passrate_from.values())]

    def check(self, table, config: Config, where: str) -> None:
        from .verify import VerifyScorer

        verifiers = {s.name: build_scorer(s, config) for s in config.specs() if s.kind == "verify"}
        for v in verifiers.values():
            v.check_table(table.columns, where)
        for spec in (s for s in config.specs() if s.kind == "passrate"):
            src = config.passrate_from.get(spec.name)
            if src is not None:
                if not resolve_input(src).exists():
                    raise ThresherError(f"passrate_from.{spec.name}: no such file or folder: {src}")
                continue
            what = spec.model or ""
            if what.startswith("verify:"):
                VerifyScorer(what.removeprefix("verify:"), name=spec.name).check_table(table.columns, where)
            elif what not in verifiers and f"score_{what}" not in table.columns and what not in table.columns:
                have = sorted([*(f"score_{n}" for n in verifiers),
                               *(c for c in table.columns if c.startswith("score_"))]) or ["none"]
                raise ThresherError(f"{where}: scorer {spec.name} (passrate:{what}): no verify scorer or column "
                                    f"{what!r} (score columns: {', '.join(have)})")

    def setup(self, config: Config, where: str = "", stage=None) -> StageContext:
        ctx = super().setup(config, where, stage)
        cache_root = None
        if config.cache:
            from .cache import default_cache_root

            cache_root = Path(config.cache_dir) if config.cache_dir else default_cache_root()
        ctx.state["cache_root"] = cache_root
        ctx.state["scorers"] = [(spec, build_scorer(spec, config)) for spec in config.specs()  # fail fast
                                if spec.kind != "passrate"]
        return ctx

    def process_batch(self, table, context: StageContext):
        import polars as pl

        conversations = table["messages"].to_list()
        rejects: dict[int, tuple[str, str]] = {}
        for spec, scorer in context.state["scorers"]:
            if spec.kind == "verify":
                results, bad = scorer.score_table(table, context.where, skip=self.skip)
                for i, why in bad.items():
                    rejects.setdefault(i, why)
            else:
                results, cached = score_rows(conversations, scorer, cache_root=context.state["cache_root"])
                context.count(f"cached:{spec.name}", cached)
            table = table.with_columns(
                pl.Series(spec.column, [r.score for r in results], dtype=pl.Float64),
                pl.Series(spec.error_column, [r.error for r in results], dtype=pl.String),
            )
            release = getattr(scorer, "release", None)
            if context.single_batch and release is not None:  # free one model before the next loads
                release()
        if not rejects:
            return table, dropped_frame(table.clear(), "score", "")
        mask = pl.Series([i in rejects for i in range(table.height)])
        bad = sorted(rejects)
        return table.filter(~mask), dropped_frame(
            table.filter(mask), "score", pl.Series([rejects[i][1] for i in bad], dtype=pl.String),
            pl.Series([rejects[i][0] for i in bad], dtype=pl.String))

    def summarizes_parts(self, config: Config) -> bool:
        """A streamed run (no pass rates) summarises each score from the final parts."""
        return self.streams(config)

    def summarize_parts(self, kept: list, context: StageContext) -> dict:
        """:meth:`finalize`'s stats, each score column read from the part files in turn."""
        from .summary import summarize_files

        return self._stats(lambda spec: summarize_files(kept, spec.column, spec.error_column), context, {})

    def finalize(self, kept, dropped, context: StageContext):
        from .summary import summarize_column

        rate_stats: dict[str, Any] = {}
        kept = self._passrates(kept, context, rate_stats)
        stats = self._stats(lambda spec: summarize_column(kept[spec.column], kept[spec.error_column]), context,
                            rate_stats)
        return kept, dropped, stats

    def _stats(self, summarize: Any, context: StageContext, rate_stats: dict[str, Any]) -> dict:
        """The stats: each scorer's summary (``summarize(spec)``) and what ran it."""
        stats: dict = {"scorers": {}}
        for spec, scorer in context.state["scorers"]:
            summary = summarize(spec)
            summary.update(kind=spec.kind, identity=scorer.identity,
                           cached=int(context.counters.get(f"cached:{spec.name}", 0)))
            stats["scorers"][spec.name] = summary
            if getattr(getattr(scorer, "judge", None), "kind", None) == "code":  # which isolation ran the programs
                from thresher.sandbox import detect

                summary["sandbox"] = detect().describe()
            usage = getattr(getattr(scorer, "generate", None), "usage", None)
            api = usage() if callable(usage) else None
            if api is not None:  # a judge through an API: its tokens and cost
                summary["api"] = api
                _add_usage(stats, api)
        stats["scorers"].update(rate_stats)
        return stats

    def _passrates(self, kept, context: StageContext, stats: dict[str, Any]):
        """Every passrate scorer's column (on the stage's rows or joined from other rows)."""
        import polars as pl

        from . import passrate as P

        config: Config = context.config
        rated = [s for s in config.specs() if s.kind == "passrate"]
        if not rated:  # no per-row prompt keys (a Python string a row) for nothing
            return kept
        verifiers = {spec.name: s for spec, s in context.state["scorers"] if spec.kind == "verify"}
        keys = P.prompt_keys(kept)
        for spec in rated:
            src = config.passrate_from.get(spec.name)
            rows, where = (kept, context.where) if src is None else (P.read_rows_from(resolve_input(src)), str(src))
            values = P.sample_values(spec.model or "", rows, where, verifiers, own_rows=src is None, skip=True)
            rates = P.rates_by_prompt(P.prompt_keys(rows), values)
            results = P.rate_results(keys, rates, where)
            kept = kept.with_columns(
                pl.Series(spec.column, [r.score for r in results], dtype=pl.Float64),
                pl.Series(spec.error_column, [r.error for r in results], dtype=pl.String),
            )
            summary = summarize(results)
            summary.update(kind="passrate", identity=f"passrate|{spec.model}|{src or 'own rows'}",
                           cached=0, per_prompt=P.prompt_summary(keys, rates), source=str(src) if src else None)
            stats[spec.name] = summary
        return kept

    def teardown(self, context: StageContext) -> None:
        for _, scorer in context.state.get("scorers", []):
            release = getattr(scorer, "release", None)
            if release is not None:
                release()


def run(
    inputs: list[Path], out: Path, config: Config, *, force: bool = False,
    read: ReadOptions | dict | None = None,
) -> StageResult:
    """Score every row of ``inputs`` with each configured scorer; write the run dir."""
    problems = config.check()
    if problems:
        raise ConfigError(problems)
    skip = ReadOptions.coerce(read).on_bad_rows == "skip"
    return run_stage(ScoreStage(skip), inputs, out, config, force=force, read=read)
