"""The ``train`` stage (recipe) and ``thresher train lora`` (CLI): the same code.

``run(inputs, out, config)`` reads conversation rows, lints their loss masks, trains a peft
adapter on the student (resuming from ``out/checkpoints`` when a previous run was
interrupted), writes the adapter to ``out/adapter`` (and with ``merge`` a checked merged
model to ``out/merged``), ``metrics.jsonl``, ``loss_curves.png`` and the usual
``kept.parquet`` (the rows trained on and validated on, with a ``split`` column),
``dropped.parquet`` (rows the lint rejected, with reasons) and ``stats.json`` (losses,
throughput, padding, lint counts, export check) for the report.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thresher.errors import ConfigError, ThresherError
from thresher.executor import GlobalStage
from thresher.train.config import TrainConfig, environment_problems

Config = TrainConfig
NAME = "train"


@dataclass
class Prepared:
    """Rows and examples ready for training."""

    tokenizer: Any
    train_df: Any
    val_df: Any
    dropped_df: Any
    train_examples: list[Any]
    val_examples: list[Any]
    lint: Any
    units: list[list[Any]]
    token_cache: dict[str, Any] | None = None  # stats of the token caches (train, val), when used


def split_validation(df: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """(train, val): a seeded random ``fraction`` of the rows (at least one) for validation."""
    import polars as pl

    if fraction <= 0 or df.height < 2:
        return df, df.clear()
    n_val = min(df.height - 1, max(1, round(df.height * fraction)))
    keys = [hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).hexdigest() for i in df["id"].to_list()]
    order = sorted(range(df.height), key=lambda k: keys[k])
    val_idx = set(order[:n_val])
    mask = pl.Series([i in val_idx for i in range(df.height)])
    return df.filter(~mask), df.filter(mask)


def prepare(inputs: list[Path], config: TrainConfig, *, quiet: bool = False, read: Any = None,
            cache_dir: Path | None = None) -> Prepared:
    """Read, split, tokenize and lint the rows; refuse to start on lint failures (unless allowed).

    ``read`` (:class:`thresher.io.inputs.ReadOptions`) says how to read ``inputs``; rows
    rejected on read join the dropped rows (``drop_stage = "read"``). With ``cache_dir`` the
    rows are tokenised into a memory-mapped token cache there (reused when it matches), see
    :mod:`thresher.train.data.token_cache`."""
    import polars as pl

    from thresher.io import read_table
    from thresher.io.inputs import read_inputs, resolve_input
    from thresher.progress import info
    from thresher.stage import dropped_frame
    from thresher.train.data import (
        check_attn_implementation,
        load_tokenizer,
        pack_examples,
    )

    if not inputs:
        raise ThresherError("train: no input rows given")
    if config.packing:
        check_attn_implementation(config.attention)
    tokenizer = load_tokenizer(config.base, chat_template=config.chat_template,
                               trust_remote_code=config.trust_remote_code)
    df, rejected = read_inputs(inputs, read)
    if df.height == 0:
        raise ThresherError(f"{inputs[0]}: no rows to train on")
    if config.val_file:
        train_df, val_df = df, read_table(resolve_input(config.val_file))
    else:
        train_df, val_df = split_validation(df, config.val_fraction, config.seed)
    kw = {"max_length": config.max_length, "train_on": config.train_on, "overlong": config.overlong,
          "allow_special_in_content": config.allow_special_tokens_in_content,
          "train_reasoning": config.train_reasoning, "max_reasoning_tokens": config.max_reasoning_tokens}
    lint, vlint, caches = _lint_both(tokenizer, train_df, val_df, kw, cache_dir)
    if not quiet:
        info(f"mask lint: {lint.summary()}")
        warning = length_warning(lint, config)
        if warning:
            info(warning)
    lint.check(allow_failures=config.allow_lint_failures)
    val_examples = vlint.examples if vlint is not None else []
    bad = {i.row_id: f"{i.kind}: {i.message}" for i in lint.issues
           if i.kind in _failure_kinds() or i.kind in ("reasoning_cut", "reasoning_too_long")
           or (i.kind == "response_cut" and config.overlong == "drop")}
    ids = train_df["id"].cast(pl.String)
    dropped = dropped_frame(train_df.filter(ids.is_in(list(bad))), NAME,
                            pl.col("id").cast(pl.String).replace_strict(bad, default="lint"))
    if rejected.height:
        dropped = pl.concat([rejected, dropped], how="diagonal_relaxed")
    train_df = train_df.filter(~ids.is_in(list(bad)))
    examples = lint.examples
    if config.packing:
        bins = pack_examples(examples, config.max_length)
        units = [[examples[i] for i in b] for b in bins]
    else:
        units = [[e] for e in examples]
    return Prepared(tokenizer, train_df, val_df, dropped, examples, val_examples, lint, units, caches)


def _lint_both(tokenizer: Any, train_df: Any, val_df: Any, kw: dict[str, Any],
               cache_dir: Path | None) -> tuple[Any, Any, dict[str, Any] | None]:
    """(train lint, val lint or None, cache stats or None): in memory, or through the cache."""
    from thresher.train.data import lint_rows

    if cache_dir is None:
        return (lint_rows(tokenizer, train_df, **kw),
                lint_rows(tokenizer, val_df, **kw) if val_df.height else None, None)
    from thresher.train.data.token_cache import cached_lint, prune

    lint, stats = cached_lint(tokenizer, train_df, cache_dir, **kw)
    caches = {"train": stats}
    vlint = None
    if val_df.height:
        vlint, caches["val"] = cached_lint(tokenizer, val_df, cache_dir, **kw)
    prune(cache_dir, {c["key"] for c in caches.values()})
    caches["tokens"] = sum(c["tokens"] for c in caches.values())
    caches["reused"] = all(c["reused"] for k, c in caches.items() if k in ("train", "val"))
    return lint, vlint, caches


def overlong_stats(lint: Any, config: TrainConfig) -> dict[str, Any]:
    """Rows the length limits left out or cut, for stats.json: ``rows`` (longer than
    ``max_length``), ``dropped`` (of those), ``truncated``, ``reasoning_cut`` (dropped although
    ``overlong`` is truncate: the cut fell inside a reasoning trace), ``reasoning_too_long``
    (over ``max_reasoning_tokens``, dropped), ``longest`` (tokens) and ``truncated_rows`` (ids,
    the first 1,000)."""
    over = {i.row_id: i.example.n_full for i in lint.issues
            if i.kind in ("response_cut", "reasoning_cut") and i.example is not None}
    over.update({e.row_id: e.n_full for e in lint.examples if e.n_full > config.max_length})
    truncated = sum(1 for e in lint.examples if e.n_full > config.max_length)
    return {"max_length": config.max_length, "rows": len(over), "dropped": len(over) - truncated,
            "truncated": truncated,
            "reasoning_cut": sum(1 for i in lint.issues if i.kind == "reasoning_cut"),
            "reasoning_too_long": sum(1 for i in lint.issues if i.kind == "reasoning_too_long"),
            "longest": max(over.values(), default=None),
            "truncated_rows": [e.row_id for e in lint.examples if e.n_full > config.max_length][:1000]}


def length_warning(lint: Any, config: TrainConfig) -> str | None:
    """One warning line when rows are longer than ``max_length`` or have over-long traces."""
    o = overlong_stats(lint, config)
    parts = []
    if o["rows"]:
        why = f", {o['reasoning_cut']} of them because the cut fell inside a reasoning trace" \
            if o["reasoning_cut"] else ""
        parts.append(f"{o['rows']} of {lint.rows} rows are longer than --max-length {config.max_length} "
                     f"(longest {o['longest']} tokens): {o['dropped']} dropped{why}, {o['truncated']} truncated")
    if o["reasoning_too_long"]:
        parts.append(f"{o['reasoning_too_long']} rows dropped for a reasoning trace over "
                     f"--max-reasoning-tokens {config.max_reasoning_tokens}")
    if not parts:
        return None
    return "train: warning: " + "; ".join(parts) + " (dropped rows in dropped.parquet, truncated ones in stats.json)"


def _failure_kinds() -> frozenset[str]:
    from thresher.train.data import FAILURE_KINDS

    return FAILURE_KINDS


class TrainStage(GlobalStage):
    """Global: the whole set trains one adapter. It holds its folder itself (checkpoints to
    resume from, one writer among torchrun ranks): :func:`run` opens it with
    :func:`thresher.executor.open_stage` (same fingerprint as :func:`run_stage`)."""

    name = NAME
    config_cls = TrainConfig
    cli = "thresher.train.cli:lora"
    cli_group = "train"
    makes_data = False
    position = 80

    def models(self, config: TrainConfig) -> list[tuple[str, str | None]]:
        """The student's base model."""
        return [("base", config.base)]

    def writes(self, config: TrainConfig) -> set[str]:
        """``split`` (train or validation)."""
        return {"split"}


def run(inputs: list[Path], out: Path, config: TrainConfig, *, force: bool = False, read: Any = None) -> Any:
    """Train (or resume, or reuse a finished run) and export; returns the StageResult.

    ``inputs`` may be files or run folders; ``read`` holds the read options (fingerprinted)."""
    from thresher.executor import open_stage
    from thresher.train import ddp

    problems = config.check() + environment_problems(config)
    if problems:
        raise ConfigError(problems)
    from thresher.train.tracking import check_report_to

    check_report_to(config.report_targets())  # a missing tracker package fails before any work
    dist, device = ddp.init()
    try:
        stage, inputs, opts = open_stage(TrainStage(), inputs, out, config, force=force, read=read,
                                         quiet=not dist.main)
        done = ddp.broadcast(stage.done if dist.main else None)
        result = stage.result() if done else _train(stage, inputs, Path(out), config, force, dist, device, opts)
        # every process leaves together: a gloo group torn down while a peer still
        # finishes its files can abort ("terminate called without an active exception")
        ddp.barrier()
        return result
    finally:
        ddp.destroy()


@dataclass
class _Run:
    """What the phases of one training run share: the model, its optimiser and bookkeeping."""

    model: Any
    optimizer: Any
    scheduler: Any
    trainable: list[Any]
    steps: int
    collate_fn: Any
    ckdir: Path
    metrics: Any
    fingerprint: str
    precision: str = "fp32"


def _train(stage: Any, inputs: list[Path], out: Path, config: TrainConfig, force: bool, dist: Any,
           device: Any, read: Any = None) -> Any:
    """Prepare the rows, build the model, resume, run the loop, export and write the stage."""
    import torch

    t_start = time.time()
    _quiet_libraries()
    if config.threads:
        torch.set_num_threads(config.threads)
    bound_allocator(config, device)
    prep = prepare(inputs, config, quiet=not dist.main, read=read, cache_dir=stage.path("token_cache"))
    run = _build(stage, prep, out, config, dist, device)
    state = _resume(run, config, dist, force)
    state = _loop(run, prep, config, dist, device, state)
    run.metrics.close()
    return _finish(stage, run, prep, state, out, config, dist, t_start)


#: sequences from this length on (CPU) get a fixed malloc mmap threshold, see :func:`bound_allocator`
LONG_SEQUENCE = 8192
MMAP_THRESHOLD = 8 << 20


def bound_allocator(config: TrainConfig, device: Any) -> bool:
    """Fix glibc's mmap threshold at 8 MB for long sequences on CPU; True when it was set.

    glibc raises its mmap threshold each time a large block is freed (up to 32 MB), so the
    head's per-chunk logits and the long activations of an 8k-32k packed row move from mmap
    (returned to the system on free) to the heap, which fragments: peak RSS then grows step
    after step to about twice the live memory (measured: 4,758 MB instead of about 2,000 at
    16k tokens). A fixed threshold keeps large blocks on mmap. Skipped when the user set
    ``MALLOC_MMAP_THRESHOLD_``, off glibc, on GPUs and for shorter sequences (where reusing
    heap blocks is faster)."""
    from thresher.malloc import fixed_mmap_threshold

    if config.max_length < LONG_SEQUENCE or getattr(device, "type", str(device)) != "cpu":
        return False
    return fixed_mmap_threshold(MMAP_THRESHOLD)


def _build(stage: Any, prep: Prepared, out: Path, config: TrainConfig, dist: Any, device: Any) -> _Run:
    """Seeded model with its adapter (wrapped for DDP/FSDP), optimiser, schedule and collate."""
    import torch

    from thresher.train import checkpoint as ck
    from thresher.train import ddp
    from thresher.train.data import collate
    from thresher.train.loop import lr_lambda, total_steps
    from thresher.train.metrics import MetricsWriter
    from thresher.train.mixed_precision import (
        base_dtype,
        check_master_weights,
        skip_adapter_input_casts,
        training_precision,
    )
    from thresher.train.model import add_adapter, load_base

    tok = prep.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0

    def collate_fn(units: list[list[Any]]) -> dict[str, Any]:
        b = collate(units, pad_id, packing=config.packing, attn_implementation=config.attention)
        return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in b.items()}

    ck.seed_everything(config.seed)
    prec = training_precision(config.dtype, device, qlora=config.qlora)
    if dist.main:
        from thresher.progress import info

        info(f"train: {prec.describe()}")
    base = load_base(config, device=device, dtype=base_dtype(prec))
    model = add_adapter(base, config)
    check_master_weights(model)  # the adapter trains in fp32 whatever the base dtype
    if prec.bf16 and not (config.qlora or config.dora):
        skip_adapter_input_casts(model)
    if not config.qlora:
        model.to(device)
    model = ddp.wrap(model, fsdp=config.fsdp, device=device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    steps = total_steps(config, len(prep.units), dist.world_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, steps))
    return _Run(model, optimizer, scheduler, trainable, steps, collate_fn, stage.path("checkpoints"),
                MetricsWriter(out, enabled=dist.main, tensorboard=False),  # TensorBoard: tracking.py
                _fingerprint(config, stage), prec.name)


def _resume(run: _Run, config: TrainConfig, dist: Any, force: bool) -> Any:
    """The loop state to start from: the latest compatible checkpoint's, or a fresh one."""
    from thresher.progress import info
    from thresher.train import checkpoint as ck
    from thresher.train import ddp
    from thresher.train.loop import LoopState
    from thresher.train.model import load_trainable_state

    state = LoopState()
    if force and dist.main:
        ck.clear(run.ckdir)
    ddp.barrier()
    last = ck.latest(run.ckdir)
    if last is not None:
        saved = ck.read_state(last)  # JSON only; the fingerprint is checked before any other file is read
        ck.check_compatible(saved, fingerprint=run.fingerprint, world_size=dist.world_size, path=last)
        data = ck.load(last, rank=dist.rank, state=saved)
        load_trainable_state(run.model, data["adapter"])
        ddp.load_optimizer_state(run.model, run.optimizer, data["optimizer"], fsdp=config.fsdp)
        run.scheduler.load_state_dict(data["scheduler"])
        if data["rng"] is not None:
            ck.set_rng_state(data["rng"])
        state = LoopState.from_json(data["state"]["loop"])
        run.metrics.truncate_after(state.step)
        if dist.main:
            info(f"train: resuming from {last} (step {state.step} of {run.steps})")
    else:
        run.metrics.reset()
    ddp.barrier()
    return state


def _loop(run: _Run, prep: Prepared, config: TrainConfig, dist: Any, device: Any, state: Any) -> Any:
    """Run the training loop with its hooks (metrics, progress, checkpoints, best adapter)."""
    from contextlib import closing

    from thresher.progress import progress, quiet_bar
    from thresher.train import checkpoint as ck
    from thresher.train import ddp
    from thresher.train.loop import Hooks, LoopState, run_loop
    from thresher.train.portable import checkpoint_writer, identity_for
    from thresher.train.tracking import BAR_EXTRA, Tracker, bar_fields

    model, optimizer = run.model, run.optimizer
    val_batches = _val_batches(prep.val_examples, config, dist, run.collate_fn)
    bar_ctx = progress(run.steps, "train", unit="steps", extra=BAR_EXTRA, fields=bar_fields({}, None)) \
        if dist.main else quiet_bar()
    tracker = Tracker(run.ckdir.parent, config.report_targets(), config=_plain_config(config),
                      total_steps=run.steps, log_every=config.log_every, start_step=state.step,
                      enabled=dist.main)
    ckpt_files = checkpoint_writer(model, identity_for(config)) if dist.main else None

    with bar_ctx as bar, closing(tracker):
        bar.advance(state.step)

        def on_step(rec: dict[str, Any]) -> None:
            run.metrics.log(rec)
            tracker.log_step(rec)
            bar.advance(1, **bar_fields(rec, tracker.last_val))

        def on_eval(rec: dict[str, Any]) -> None:
            run.metrics.log(rec)
            tracker.log_eval(rec)
            bar.update(**bar_fields(tracker.last, tracker.last_val))

        def save_checkpoint(st: LoopState) -> None:
            adapter = ddp.full_trainable_state(model)
            opt_state = ddp.optimizer_state(model, optimizer, fsdp=config.fsdp)
            rngs = ddp.gather_objects(ck.rng_state())
            if dist.main:
                ck.save(run.ckdir, step=st.step, adapter=adapter, optimizer=opt_state, scheduler=run.scheduler,
                        rngs=rngs, keep=config.keep_checkpoints, extra=ckpt_files,
                        state={"loop": st.to_json(), "fingerprint": run.fingerprint,
                               "world_size": dist.world_size})
            ddp.barrier()

        def save_best(st: LoopState) -> None:
            adapter = ddp.full_trainable_state(model)
            if dist.main:
                ck.save_best(run.ckdir, adapter, {"step": st.best_step, "val_loss": st.best_val},
                             extra=ckpt_files)

        hooks = Hooks(on_step=on_step, on_eval=on_eval, save_checkpoint=save_checkpoint,
                      save_best=save_best)
        return run_loop(config, model, optimizer, run.scheduler, prep.units, run.collate_fn,
                        lambda u: sum(len(e) for e in u), state=state, steps=run.steps,
                        val_batches=val_batches, has_val=len(prep.val_examples) > 0, dist=dist, hooks=hooks,
                        autocast=_autocast(config, device), trainable=run.trainable)


def _finish(stage: Any, run: _Run, prep: Prepared, state: Any, out: Path, config: TrainConfig, dist: Any,
            t_start: float) -> Any:
    """Restore the best adapter, export it, and write kept/dropped/stats (main process only)."""
    import polars as pl

    from thresher.progress import info
    from thresher.stage import StageResult
    from thresher.train import checkpoint as ck
    from thresher.train import ddp
    from thresher.train.data import packing_stats
    from thresher.train.metrics import CURVES, plot_losses, read_metrics
    from thresher.train.model import load_trainable_state

    best = ck.load_best(run.ckdir) if prep.val_examples else None
    if best is not None and state.best_step != state.step:
        load_trainable_state(run.model, best)
    final_adapter = ddp.full_trainable_state(run.model)  # collective under FSDP
    export_stats = _export(run.model, final_adapter, prep, config, stage) if dist.main else {}
    ddp.barrier()
    if not dist.main:
        return StageResult(NAME, out, {}, reused=False)

    pack = packing_stats([len(e) for e in prep.train_examples], max_length=config.max_length,
                         batch_size=config.batch_size)
    info(f"train: padding {pack['padding_fraction_unpacked']:.1%} without packing, "
         f"{pack['padding_fraction_packed']:.1%} with packing ({'on' if config.packing else 'off'})")
    records = read_metrics(out / "metrics.jsonl")
    curves = plot_losses(records, out / CURVES)
    stats = _stats(records, state, prep, config, run.steps, dist, export_stats, curves, time.time() - t_start)
    stats["packing"] = pack
    stats["precision"] = run.precision
    if prep.token_cache is not None:
        stats["token_cache"] = prep.token_cache
    _publish(out, records, state, stats, config, run)
    kept = pl.concat([prep.train_df.with_columns(pl.lit("train").alias("split")),
                      prep.val_df.with_columns(pl.lit("val").alias("split"))], how="diagonal_relaxed") \
        if prep.val_df.height else prep.train_df.with_columns(pl.lit("train").alias("split"))
    artefacts = {name: name for name in ("adapter", "merged") if (out / name).exists()}
    artefacts.update({k: v for k, v in (("metrics", "metrics.jsonl"), ("curves", CURVES)) if (out / v).exists()})
    return stage.finish(kept, prep.dropped_df, stats, rows_in=prep.train_df.height + prep.dropped_df.height
                        + prep.val_df.height, artefacts=artefacts)


def _publish(out: Path, records: list[dict[str, Any]], state: Any, stats: dict[str, Any], config: TrainConfig,
             run: _Run) -> None:
    """trainer_state.json and the adapter's model card (main process, after the export)."""
    from thresher.train.portable import card_info, finish_adapter, identity_for
    from thresher.train.tracking import write_trainer_state

    write_trainer_state(out, records, state, total_steps=run.steps, config=_plain_config(config),
                        checkpoints=run.ckdir)
    if stats.get("export", {}).get("adapter"):
        finish_adapter(Path(stats["export"]["adapter"]), identity_for(config), card_info(out, stats))


def _plain_config(config: TrainConfig) -> dict[str, Any]:
    """The config as JSON-plain values (for trackers and the model card)."""
    return json.loads(json.dumps(config.__dict__, default=list))


def _quiet_libraries() -> None:
    """No per-file "Loading weights" bars or deprecation chatter from transformers/peft."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def _val_batches(examples: list[Any], config: TrainConfig, dist: Any, collate_fn: Any) -> list[Any]:
    """This process's validation batches (every ``world_size``-th example, unpacked)."""
    mine = examples[dist.rank::dist.world_size]
    mine = sorted(mine, key=len)  # similar lengths together: less padding
    step = config.batch_size
    return [collate_fn([[e] for e in mine[i:i + step]]) for i in range(0, len(mine), step)]


def _autocast(config: TrainConfig, device: Any) -> Any:
    from thresher.train.mixed_precision import autocast_factory, training_precision

    return autocast_factory(training_precision(config.dtype, device, qlora=config.qlora), device)


def _fingerprint(config: TrainConfig, stage: Any) -> str:
    inputs = json.dumps(stage.fingerprint.get("inputs"), sort_keys=True)
    return hashlib.blake2b((config.fingerprint() + inputs).encode(), digest_size=12).hexdigest()


def _export(model: Any, adapter: dict[str, Any], prep: Prepared, config: TrainConfig, stage: Any) -> dict[str, Any]:
    from thresher.progress import info
    from thresher.train.export import merge_and_check, probe_sequences, save_adapter
    from thresher.train.model import add_adapter, load_base, load_trainable_state

    if config.fsdp:  # sharded parameters: export from a fresh CPU copy holding the gathered adapter
        import dataclasses

        model = add_adapter(load_base(dataclasses.replace(config, qlora=False, grad_checkpointing=False)), config)
        load_trainable_state(model, adapter)
    from thresher.train.portable import fix_adapter_config, identity_for

    ident = identity_for(config)
    adapter_dir = save_adapter(model, prep.tokenizer, stage.path("adapter"))
    fix_adapter_config(adapter_dir, ident)  # the hub id, never a cache path; the card comes in _finish
    out: dict[str, Any] = {"adapter": str(adapter_dir), "base_model": ident.hub_id,
                           "base_local_path": ident.local_path}
    if config.merge:
        import dataclasses

        # dequantised base for the merge; the check feeds whole sequences, so plain sdpa
        full = dataclasses.replace(config, qlora=False, packing=False, attn_implementation="auto")
        res = merge_and_check(lambda: load_base(full), adapter_dir, prep.tokenizer, stage.path("merged"),
                              probe_sequences(prep.train_examples), atol=config.export_atol,
                              dtype=ident.torch_dtype())  # saved in the base's own dtype
        out.update(merged=str(stage.path("merged")), **res)
        info(f"train: merged model written, logits match the adapter's within {res['max_logit_diff']:.2g}")
    return out


def _stats(records: list[dict[str, Any]], state: Any, prep: Prepared, config: TrainConfig, steps: int,
           dist: Any, export_stats: dict[str, Any], curves: Any, seconds: float) -> dict[str, Any]:
    train = [[r["step"], r["loss"]] for r in records if "loss" in r]
    val = [[r["step"], r["val_loss"]] for r in records if "val_loss" in r]
    tps = [r["tokens_per_s"] for r in records if r.get("tokens_per_s")]
    finite = [x for _, x in train if isinstance(x, float) and math.isfinite(x)]
    return {
        "base": config.base or "smollm2",
        "steps": state.step,
        "planned_steps": steps,
        "stopped_early": state.stopped_early,
        "processes": dist.world_size,
        "train_rows": len(prep.train_examples),
        "val_rows": len(prep.val_examples),
        "units": len(prep.units),
        "tokens_seen": state.tokens,
        "trainable_tokens_seen": state.trained_tokens,
        "tokens_per_s": round(sum(tps) / len(tps), 1) if tps else None,
        "first_loss": finite[0] if finite else None,
        "final_loss": finite[-1] if finite else None,
        "losses": train,
        "val_losses": val,
        "best_val_loss": state.best_val,
        "best_step": state.best_step,
        "lint": prep.lint.to_stats(),
        "overlong": overlong_stats(prep.lint, config),
        "export": export_stats,
        "loss_curves": str(curves) if curves else None,
        "train_seconds": round(seconds, 2),
        "config": {k: v for k, v in json.loads(json.dumps(config.__dict__, default=list)).items()},
    }
