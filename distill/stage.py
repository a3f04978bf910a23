"""The ``generate`` stage: prompt rows in, one row per teacher sample out; resumable.

Rows out hold the prompt messages plus the assistant turn, ``parent_id`` (the prompt row's
id), ``sample_index``, ``teacher`` (name and revision hash), ``gen_params`` (JSON of every
sampling parameter, ``n`` and the backend), ``finish_reason``, ``prompt_tokens``,
``completion_tokens`` and, with ``reasoning="keep"``, ``reasoning``. A row's ``id`` is its
resume key (see :mod:`thresher.distill.shards`), so reruns and resumed runs give the same ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import polars as pl

from thresher.choices import GenerateBackend
from thresher.config import choice_problems, from_dict
from thresher.errors import ConfigError, ThresherError
from thresher.executor import RowStage, StageContext, run_stage
from thresher.histogram import histogram
from thresher.io.inputs import ReadOptions
from thresher.progress import info
from thresher.schema import empty_table
from thresher.stage import StageFolder, StageResult, dropped_frame

from .backends import default_backend, make_backend
from .backends.base import SamplingParams
from .costs import stored_usage
from .loop import Accounting, GenerationLoop
from .prompts import Prompt, extract_prompts
from .shards import ShardStore, row_key

NAME = "generate"


@dataclass(frozen=True)
class Config:
    """Options of ``thresher distill generate`` (and of the recipe stage ``generate``)."""

    teacher: str | None = None
    """Teacher: a local model folder, a .gguf file, a hub name, or the model name a server serves
    (openai). Default: the embedded SmolLM2-135M-Instruct."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) of the teacher."""
    backend: GenerateBackend = "auto"
    """auto | vllm | openai | openai-batch | transformers (auto: vllm when installed with a GPU, else transformers)."""
    n: int = 1
    """Samples per prompt."""
    temperature: float = 0.7
    """Sampling temperature; 0 = greedy."""
    top_p: float = 1.0
    """Nucleus sampling: smallest set of tokens whose probability reaches this."""
    top_k: int = 0
    """Sample among the k most likely tokens; 0 disables top-k."""
    max_tokens: int = 512
    """Most tokens per response."""
    seed: int = 0
    """Sampling seed (part of every row's key)."""
    stop: tuple[str, ...] = ()
    """Stop strings."""
    repetition_penalty: float = 1.0
    """Penalty on tokens already generated (1.0 = none)."""
    system: str | None = None
    """System prompt added to prompts that have none."""
    system_in_rows: bool = True
    """Keep the system prompt in the rows; off: it steers the teacher only and the rows are stored
    without it, so a student learns the behaviour without being told (context distillation)."""
    reasoning: Literal["keep", "strip"] = "keep"
    """keep: <think> text goes to a 'reasoning' column; strip: it is dropped."""
    drop_truncated: bool = False
    """Drop responses cut by max_tokens."""
    batch_size: int = 0
    """Prompts per backend call and per resume shard (0: the backend's default)."""
    dtype: str = "auto"
    """Weights dtype (transformers, vllm)."""
    threads: int = 0
    """transformers: CPU threads (0: torch's default)."""
    trust_remote_code: bool = False
    """Allow the teacher's own code (off by default)."""
    allow_special_tokens_in_content: bool = False
    """transformers, vllm: let special-token strings typed in prompts (e.g. <|im_end|>) act as control tokens (default: tokenized as text)."""
    max_model_len: int | None = None
    """vllm: context length."""
    tensor_parallel_size: int = 1
    """vllm: GPUs per model."""
    gpu_memory_utilization: float = 0.9
    """vllm: share of GPU memory the engine may use."""
    enforce_eager: bool = False
    """vllm: no CUDA graphs / compilation."""
    base_url: str | None = None
    """openai: server URL, e.g. http://127.0.0.1:8000/v1."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai: environment variable holding the API key (never logged or stored)."""
    concurrency: int = 8
    """openai: requests in flight."""
    timeout: float = 120.0
    """openai: seconds per request."""
    max_retries: int = 5
    """openai: retries on 429/5xx."""
    batch_requests: str | None = None
    """openai-batch: where to write the Batch API input file (default: OUT/openai-batch-requests.jsonl)."""
    batch_results: str | None = None
    """openai-batch: the Batch API output file to read the answers from (rerun with it once the batch is done)."""
    tokenizer: str | None = None
    """Tokenizer that counts prompt tokens for --estimate, --max-cost and --tpm (default: the teacher's when available offline, else characters/4)."""
    price_in: float | None = None
    """USD per 1M prompt tokens (default: the shipped price table; unknown model: price unknown)."""
    price_out: float | None = None
    """USD per 1M completion tokens (default: the shipped price table)."""
    prices: dict[str, float] | None = None
    """Recipe: {input: USD, output: USD} per 1M tokens (same as price_in/price_out)."""
    max_cost: float | None = None
    """openai: stop before a request could take the stage's cost past this many USD (rerun with a higher one to continue)."""
    rpm: float | None = None
    """openai: most requests per minute (client-side token bucket; x-ratelimit-* headers lower it)."""
    tpm: float | None = None
    """openai: most tokens per minute, counting prompt + max_tokens per request (token bucket)."""
    response_format: Literal["text", "json"] = "text"
    """text | json: ask for a JSON object (response_format on servers; a prompt instruction with transformers)."""
    json_schema: str | None = None
    """JSON schema file every answer must match (response_format json_schema / guided decoding); invalid answers are retried then dropped."""
    schema_retries: int = 0
    """Times an answer that fails the schema (or is not JSON) is asked again before it is dropped."""

    # options that change how fast rows come, never what they are
    _fingerprint_exclude: ClassVar[tuple[str, ...]] = (
        "batch_size", "threads", "tensor_parallel_size", "gpu_memory_utilization", "enforce_eager",
        "concurrency", "timeout", "max_retries", "api_key_env",
        "tokenizer", "price_in", "price_out", "prices", "max_cost", "rpm", "tpm",
    )

    def check(self) -> list[str]:
        """Range and consistency problems, one string each."""
        problems = choice_problems(self) + self.sampling().check()
        if self.n < 1:
            problems.append(f"n: must be >= 1 (got {self.n})")
        if self.threads < 0:
            problems.append("threads: must be >= 0 (0 = torch's default)")
        if self.batch_size < 0:
            problems.append("batch_size: must be >= 0 (0 = the backend's default)")
        if self.tensor_parallel_size < 1:
            problems.append("tensor_parallel_size: must be >= 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            problems.append("gpu_memory_utilization: must be in (0, 1]")
        if self.max_model_len is not None and self.max_model_len < 16:
            problems.append("max_model_len: must be >= 16")
        if self.concurrency < 1:
            problems.append("concurrency: must be >= 1")
        if self.timeout <= 0:
            problems.append("timeout: must be > 0")
        if self.max_retries < 0:
            problems.append("max_retries: must be >= 0")
        if self.backend == "openai-batch" and not self.teacher:
            problems.append("teacher: required with backend openai-batch (the model name, e.g. gpt-4o-mini)")
        if self.backend == "openai" and not self.base_url:
            problems.append("base_url: required with backend openai (e.g. http://127.0.0.1:8000/v1)")
        return problems + self._cost_problems()

    def _cost_problems(self) -> list[str]:
        problems = []
        for name in ("price_in", "price_out", "max_cost", "rpm", "tpm"):
            v = getattr(self, name)
            if v is not None and not v > 0 and not (name.startswith("price") and v == 0):
                problems.append(f"{name}: must be > 0 (got {v})")
        for name in ("max_cost", "rpm", "tpm"):
            if getattr(self, name) is not None and self.backend != "openai":
                problems.append(f"{name}: applies to --backend openai (requests sent as the run goes), "
                                f"not {self.backend}")
        unknown = set(self.prices or {}) - {"input", "output"}
        if unknown:
            problems.append(f"prices: unknown key(s) {', '.join(sorted(unknown))} (expected input, output)")
        if self.schema_retries < 0:
            problems.append("schema_retries: must be >= 0")
        return problems

    def output_spec(self) -> Any:
        """The structured-output spec (None: free text); reads the schema file."""
        from .structured import load_spec

        return load_spec(self.response_format, self.json_schema)

    def key_params(self) -> dict[str, Any]:
        """Everything in a row key besides the prompt, teacher and template: sampling and output format."""
        spec = self.output_spec()
        return {**self.sampling().as_dict(), **(spec.key() if spec is not None else {})}

    def sampling(self) -> SamplingParams:
        """The sampling parameters (part of every row's key)."""
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              max_tokens=self.max_tokens, seed=self.seed, stop=tuple(self.stop),
                              repetition_penalty=self.repetition_penalty)

    def backend_options(self) -> dict[str, Any]:
        """Keyword options for :func:`make_backend` (each backend ignores the others')."""
        names = ("revision", "dtype", "threads", "trust_remote_code", "allow_special_tokens_in_content", "batch_size", "max_model_len",
                 "tensor_parallel_size", "gpu_memory_utilization", "enforce_eager", "seed", "base_url",
                 "api_key_env", "concurrency", "timeout", "max_retries", "batch_requests", "batch_results")
        return {k: getattr(self, k) for k in names}


def make_config(**options: Any) -> Config:
    """A validated Config from keyword options (raises one ConfigError listing all problems)."""
    return from_dict(Config, options)


def teacher_identity(backend: str, config: Config) -> tuple[str, str | None, str | None, Any]:
    """``(name, revision, chat_template, backend_or_None)`` of the teacher.

    Local backends read only the tokenizer (no weights), so a run whose samples are all
    stored does not load the model. The openai backend is created here (it is cheap).
    """
    if backend in ("openai", "openai-batch"):
        be = make_backend(backend, config.teacher, **config.backend_options())
        return be.model, be.revision, be.chat_template, be
    from thresher.models import load_tokenizer, resolve_model

    from .backends.base import model_fingerprint

    path = resolve_model(config.teacher, revision=config.revision)
    try:
        tok = load_tokenizer(path, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ThresherError(f"{config.teacher or 'smollm2'}: cannot load the tokenizer from {path}: {first}") from None
    name = config.teacher if config.teacher and config.teacher.lower() not in ("smollm2", "default") else Path(path).name
    return name, model_fingerprint(path), tok.chat_template, None


class GenerateStage(RowStage):
    """Row-wise: each batch's prompts get their samples (stored shards are reused; the
    backend is created once per worker, and only when some sample is missing)."""

    name = NAME
    config_cls = Config
    cli = "thresher.distill.cli:generate"
    cli_group = "distill"
    loads_model = True
    position = 10
    #: the provenance columns generate adds to each sample
    COLUMNS = frozenset({"parent_id", "sample_index", "teacher", "gen_params", "finish_reason",
                         "prompt_tokens", "completion_tokens", "reasoning"})

    def models(self, config: Config) -> list[tuple[str, str | None]]:
        """The teacher (none for an API backend)."""
        return [] if config.backend in ("openai", "openai-batch") else [("teacher", config.teacher)]

    def writes(self, config: Config) -> set[str]:
        """The provenance columns."""
        return set(self.COLUMNS)

    def __init__(self, backend_factory: Any = None):
        self.backend_factory = backend_factory

    def check(self, table: pl.DataFrame, config: Config, where: str) -> None:
        if not extract_prompts(table, where=where, system=config.system):
            raise ThresherError(f"{where}: no prompts")

    def fingerprint_inputs(self, inputs: list[Any], config: Config) -> list[Any]:
        return [*inputs, *([Path(config.json_schema)] if config.json_schema else [])]

    def setup(self, config: Config, where: str = "", stage: StageFolder | None = None) -> StageContext:
        backend_name = config.backend if config.backend != "auto" else default_backend()
        if backend_name == "openai-batch" and not config.batch_requests and stage is not None:
            import dataclasses

            config = dataclasses.replace(config, batch_requests=str(stage.path("openai-batch-requests.jsonl")))
        ctx = super().setup(config, where, stage)
        if self.backend_factory is None:
            teacher, revision, template, backend = teacher_identity(backend_name, config)
        else:
            backend = self.backend_factory(backend_name, config.teacher, **config.backend_options())
            teacher, revision, template = backend.model, backend.revision, backend.chat_template
        store = ShardStore(stage.path("shards")) if stage is not None else None
        ctx.state.update(backend_name=backend_name, teacher=teacher, revision=revision, template=template,
                         backend=backend, store=store, stored=store.load() if store is not None else {},
                         spec=config.output_spec())
        ctx.state["accounting"] = Accounting.create(config, backend_name, teacher)
        return ctx

    def process_batch(self, table: pl.DataFrame, context: StageContext):
        config: Config = context.config
        st = context.state
        prompts = extract_prompts(table, where=context.where, system=config.system)
        pdict = config.key_params()
        tid = st["revision"] or st["teacher"]
        keys = {p.id: [row_key(p.messages, teacher=tid, revision=None, params=pdict,
                               chat_template=st["template"], sample_index=s) for s in range(config.n)]
                for p in prompts}
        stored = st["stored"]
        todo = [(p, missing) for p in prompts
                if (missing := [s for s, k in enumerate(keys[p.id]) if k not in stored])]
        total = len(prompts) * config.n
        reused = total - sum(len(m) for _, m in todo)
        if reused and st["store"] is not None:
            info(f"generate: reusing {reused} of {total} samples already generated in {st['store'].folder}")
        context.count("prompts", len(prompts))
        context.count("reused", reused)
        acc: Accounting = st["accounting"]
        before = stored_usage([stored[k] for p in prompts for k in keys[p.id] if k in stored])
        acc.add_spent_before(*before)
        context.count("stored_prompt_tokens", before[0])
        context.count("stored_completion_tokens", before[1])
        if todo:
            if st["backend"] is None:
                factory = self.backend_factory or make_backend
                st["backend"] = factory(st["backend_name"], config.teacher, **config.backend_options())
            acc.attach(st["backend"], st["spec"])
            loop = GenerationLoop(st["backend"], config, st["store"], stored, acc, st["spec"])
            try:
                loop.run(todo, keys)
            finally:
                for name, value in loop.counters().items():
                    context.count(name, value)
            if loop.budget_hit:
                done = sum(all(k in stored for k in keys[p.id]) for p in prompts)
                raise ThresherError(f"budget USD {config.max_cost:g} reached after {done} of {len(prompts)} prompts; "
                                    "rerun with a higher --max-cost to continue")
        return _assemble(prompts, keys, stored, config, st["teacher"], st["revision"], st["backend_name"], pdict,
                         st["spec"])

    def finalize(self, kept: pl.DataFrame, dropped: pl.DataFrame, context: StageContext):
        config: Config = context.config
        st, c = context.state, context.counters
        prompts, reused = int(c.get("prompts", 0)), int(c.get("reused", 0))
        total = prompts * config.n
        tokens, seconds = int(c.get("generated_tokens", 0)), c.get("generation_seconds", 0.0)
        stats = {
            "backend": st["backend_name"],
            "teacher": st["teacher"],
            "teacher_revision": st["revision"],
            "prompts": prompts,
            "n": config.n,
            "samples": total,
            "reused": reused,
            "generated": total - reused,
            "generated_tokens": tokens,
            "generation_seconds": round(seconds, 3),
            "tokens_per_second": round(tokens / seconds, 2) if seconds > 0 else None,
            "finish_reasons": {str(r): int(n) for r, n in
                               kept["finish_reason"].value_counts(sort=True).iter_rows()} if kept.height else {},
            "completion_tokens": _token_summary(kept["completion_tokens"]) if kept.height else {},
            **st["accounting"].stats(c),
        }
        if st["spec"] is not None:
            invalid = int((dropped["drop_code"] == "schema-invalid").sum()) if dropped.height else 0
            stats["structured"] = {"schema": config.json_schema or "json object", "invalid_dropped": invalid,
                                   "retried": int(c.get("schema_retried", 0)),
                                   "invalid_first_try": int(c.get("schema_invalid_first", 0)),
                                   "checked_first_try": int(c.get("schema_checked", 0))}
        return kept, dropped, stats

    def teardown(self, context: StageContext) -> None:
        backend = context.state.get("backend")
        if backend is not None:
            backend.close()

    def rows_in(self, table: pl.DataFrame, context: StageContext) -> int | None:
        return int(context.counters.get("prompts", 0))


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False,
        backend_factory: Any = None, read: ReadOptions | dict | None = None) -> StageResult:
    """Generate ``config.n`` teacher samples for every prompt of ``inputs`` into ``out``.

    Finished samples are stored in ``out/shards`` as they come; an interrupted run resumes
    from them and a rerun with changed sampling options regenerates only affected rows.
    ``backend_factory(name, model, **options)`` replaces :func:`make_backend` (tests).
    """
    problems = config.check()
    if problems:
        raise ConfigError(problems)
    if not inputs:
        raise ThresherError("generate: no input given")
    return run_stage(GenerateStage(backend_factory), inputs, out, config, force=force, read=read)


def _token_summary(tokens: pl.Series, bins: int = 20) -> dict[str, Any]:
    """Mean, percentiles and a histogram (``edges`` and ``counts`` lists) of token counts."""
    import numpy as np

    values = tokens.drop_nulls().to_numpy()
    return {"mean": round(float(values.mean()), 2), "p50": float(np.percentile(values, 50)),
            "p90": float(np.percentile(values, 90)), "max": int(values.max()),
            "histogram": histogram(values.tolist(), bins=min(bins, len(np.unique(values))), digits=2)}


def _assemble(prompts: list[Prompt], keys: dict[str, list[str]], stored: dict[str, dict[str, Any]],
              config: Config, teacher: str, revision: str | None, backend_name: str,
              pdict: dict[str, Any], spec: Any = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Kept and dropped row tables, in prompt order then sample order."""
    teacher_col = f"{teacher}@{revision}" if revision else teacher
    gen_params = json.dumps({**pdict, "n": config.n, "backend": backend_name}, sort_keys=True)
    schema_errors: list[str | None] = []
    rows: list[dict[str, Any]] = []
    for p in prompts:
        for s, key in enumerate(keys[p.id]):
            rec = stored[key]
            shown = p.as_messages()
            if not config.system_in_rows and config.system is not None and shown and shown[0]["role"] == "system" \
                    and shown[0]["content"] == config.system:
                shown = shown[1:]
            row = {
                "id": key,
                "messages": [*shown, {"role": "assistant", "content": rec["text"] or ""}],
                "category": p.category,
                "source": p.source,
                "parent_id": p.id,
                "sample_index": s,
                "teacher": teacher_col,
                "gen_params": gen_params,
                "finish_reason": rec["finish_reason"],
                "prompt_tokens": rec["prompt_tokens"],
                "completion_tokens": rec["completion_tokens"],
            }
            if config.reasoning == "keep":
                row["reasoning"] = rec["reasoning"]
            if spec is not None:
                row["structured"], error = _structured(rec, spec)
                schema_errors.append(error)
            row.update(p.extra)  # the prompt's reference answer and tests travel with its samples
            rows.append(row)
    extra = {"parent_id": pl.String, "sample_index": pl.Int64, "teacher": pl.String, "gen_params": pl.String,
             "finish_reason": pl.String, "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64}
    if config.reasoning == "keep":
        extra["reasoning"] = pl.String
    if spec is not None:
        extra["structured"] = pl.String
    extra.update({c: pl.String for c in (prompts[0].extra if prompts else {})})
    schema = empty_table(extra).schema
    df = pl.DataFrame(rows, schema=schema) if rows else empty_table(extra)
    return _split(df, config, schema_errors if spec is not None else None)


def _split(df: pl.DataFrame, config: Config, schema_errors: list[str | None] | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Kept rows, and dropped ones with their reason and code (empty, truncated, schema-invalid)."""
    empty = pl.col("messages").list.last().struct.field("content").str.strip_chars().str.len_chars() == 0
    bad = empty
    reason = pl.when(empty).then(pl.lit("empty response"))
    if config.drop_truncated:
        bad = bad | (pl.col("finish_reason") == "length")
        reason = reason.when(pl.col("finish_reason") == "length").then(pl.lit("truncated at max_tokens"))
    code = pl.lit(None, dtype=pl.String)
    if schema_errors is not None:
        df = df.with_columns(pl.Series("__schema_error", schema_errors, dtype=pl.String))
        invalid = pl.col("__schema_error").is_not_null() & ~empty
        bad = bad | invalid
        reason = reason.when(invalid).then(pl.col("__schema_error"))
        code = pl.when(invalid).then(pl.lit("schema-invalid"))
    kept = df.filter(~bad).drop("__schema_error", strict=False)
    bad_rows = df.filter(bad)
    codes = bad_rows.select(code.otherwise(None).alias("c"))["c"] if schema_errors is not None else None
    if codes is not None and bad_rows.height:
        from thresher.stage import drop_code_of

        reasons = bad_rows.select(reason.otherwise(pl.lit("")).alias("r"))["r"]
        codes = pl.Series([c or drop_code_of(r) for c, r in zip(codes, reasons)], dtype=pl.String)
    dropped = dropped_frame(bad_rows, NAME, reason.otherwise(pl.lit("")), codes).drop("__schema_error", strict=False)
    return kept, dropped


def _structured(rec: dict[str, Any], spec: Any) -> tuple[str | None, str | None]:
    """``(parsed JSON, error)`` of a stored sample (checked again: old shards lack the columns)."""
    if rec.get("structured") is not None or rec.get("schema_error") is not None:
        return rec.get("structured"), rec.get("schema_error")
    return spec.check(rec.get("text") or "")
