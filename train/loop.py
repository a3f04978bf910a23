"""The training loop: token-exact loss over whole optimiser steps, resumable, data-parallel.

Loss definition
    The loss of an optimiser step is the mean over *every trainable token of the step*: the
    token losses of all micro-batches (and all processes) are summed and divided by the step's
    total trainable-token count, which is known before the first backward pass. So batch 8 x
    accumulation 1, batch 2 x accumulation 4 and 2 processes x batch 4 give the same loss and the
    same gradients (up to float rounding), unlike the per-micro-batch mean most trainers use.

Data order
    Training units (encoded conversations, or packs of them) are shuffled once per epoch with a
    generator seeded by ``seed + epoch``. Every optimiser step takes the next
    ``batch_size x grad_accum x world_size`` units (the last step of an epoch wraps around to
    the start of the epoch's order), so the position in the data is just ``(epoch, step)``,
    which a checkpoint stores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from thresher.train.config import TrainConfig

IGNORE_INDEX = -100


# --------------------------------------------------------------------------------------------
# loss
# --------------------------------------------------------------------------------------------

def count_trainable(batch: dict[str, torch.Tensor]) -> int:
    """Trainable (predicted) tokens of a collated batch: labels other than -100 after the shift."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def _accepts_bool_logits_to_keep(model: torch.nn.Module) -> bool:
    cached = getattr(model, "_thresher_ltk", None)
    if cached is not None:
        return cached
    import inspect

    inner = getattr(model, "module", model)  # DDP / FSDP wrapper
    if hasattr(inner, "get_base_model"):  # peft
        inner = inner.get_base_model()
    ok = "logits_to_keep" in inspect.signature(inner.forward).parameters
    try:
        model._thresher_ltk = ok  # type: ignore[attr-defined]
    except AttributeError:
        pass
    return ok


def token_loss_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum (not mean) of the cross-entropy of every trainable token of ``batch``, in fp32.

    Only the positions that predict a trainable token go through the LM head: for plain causal
    LMs the decoder's hidden states are taken there and projected in checkpointed chunks
    (:mod:`thresher.train.loss`); otherwise through ``logits_to_keep`` (a boolean mask) where
    the model supports it. Either way the vocabulary-sized matmul skips prompt, system and
    padding tokens.
    """
    from thresher.train.loss import head_loss_sum, split_head

    labels = batch["labels"]
    targets_mask = labels[:, 1:] != IGNORE_INDEX            # (B, L-1)
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = targets_mask
    targets = labels[:, 1:][targets_mask]
    inputs = {k: v for k, v in batch.items() if k != "labels"}  # incl. cu_seq_lens_* for varlen
    parts = split_head(model)
    if parts is not None:
        decoder, head = parts
        hidden = decoder(**inputs, use_cache=False).last_hidden_state
        return head_loss_sum(head, hidden[keep], targets)
    if _accepts_bool_logits_to_keep(model):
        logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits
        logits = logits.reshape(-1, logits.shape[-1])
    else:
        logits = model(**inputs, use_cache=False).logits[keep]
    return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")


def accumulate_step(
    model: torch.nn.Module,
    micro_batches: Sequence[dict[str, torch.Tensor]],
    *,
    world_size: int = 1,
    autocast: Callable[[], Any] | None = None,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, int]:
    """Forward/backward every micro-batch of one optimiser step; return (loss, trainable tokens).

    Gradients end up equal to those of ``mean over all trainable tokens of the step`` (over all
    processes: DDP averages gradients over ``world_size``, so each process scales by it).
    """
    import contextlib

    local = sum(count_trainable(mb) for mb in micro_batches)
    counts = torch.tensor([float(local)], dtype=torch.float64)
    if all_reduce is not None:
        counts = all_reduce(counts)
    total = int(counts.item())
    loss_sum = torch.zeros((), dtype=torch.float64)
    if total == 0:
        return float("nan"), 0
    no_sync = getattr(model, "no_sync", None)
    for i, mb in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        sync_ctx = no_sync() if (no_sync is not None and not last) else contextlib.nullcontext()
        with sync_ctx:
            with autocast() if autocast is not None else contextlib.nullcontext():
                s = token_loss_sum(model, mb)
            (s * (world_size / total)).backward()
        loss_sum += s.detach().double().cpu()
    if all_reduce is not None:
        loss_sum = all_reduce(loss_sum.reshape(1)).reshape(())
    return float(loss_sum / total), total


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: Sequence[dict[str, torch.Tensor]],
    *,
    autocast: Callable[[], Any] | None = None,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Mean token loss over ``batches`` (all processes together); NaN when nothing is trainable."""
    import contextlib

    was_training = model.training
    model.eval()
    acc = torch.zeros(2, dtype=torch.float64)
    for b in batches:
        with autocast() if autocast is not None else contextlib.nullcontext():
            acc[0] += token_loss_sum(model, b).detach().double().cpu()
        acc[1] += count_trainable(b)
    if all_reduce is not None:
        acc = all_reduce(acc)
    model.train(was_training)
    return float(acc[0] / acc[1]) if acc[1] > 0 else float("nan")


# --------------------------------------------------------------------------------------------
# schedule and data order
# --------------------------------------------------------------------------------------------

def lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at step ``s``: linear warmup then cosine/linear/constant."""
    warm = cfg.warmup_steps(total_steps)

    def f(s: int) -> float:
        if warm and s < warm:
            return (s + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        span = max(1, total_steps - warm)
        progress = min(1.0, (s - warm) / span)
        if cfg.schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


def epoch_order(n_units: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of the units in ``epoch`` (same on every process and every rerun)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n_units, generator=g).tolist()


def steps_per_epoch(n_units: int, global_batch: int) -> int:
    """Optimiser steps in one epoch (the last one wraps around to fill a whole global batch)."""
    return max(1, math.ceil(n_units / global_batch))


def total_steps(cfg: TrainConfig, n_units: int, world_size: int = 1) -> int:
    """Optimiser steps of the whole run: ``max_steps`` or ``epochs`` over the data."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    per = steps_per_epoch(n_units, cfg.batch_size * cfg.grad_accum * world_size)
    return max(1, math.ceil(cfg.epochs * per))


def step_units(order: Sequence[int], step_in_epoch: int, global_batch: int) -> list[int]:
    """Unit indices of one optimiser step (wrapping around the epoch's order)."""
    n = len(order)
    start = step_in_epoch * global_batch
    return [order[(start + i) % n] for i in range(global_batch)]


def shard_micro_batches(units: Sequence[int], batch_size: int, grad_accum: int, rank: int,
                        world_size: int) -> list[list[int]]:
    """This process's micro-batches of one step: every ``world_size``-th unit, in chunks."""
    mine = list(units[rank::world_size])
    return [mine[i * batch_size:(i + 1) * batch_size] for i in range(grad_accum)
            if mine[i * batch_size:(i + 1) * batch_size]]


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------

@dataclass
class LoopState:
    """Everything a checkpoint needs besides model/optimiser/scheduler/RNG tensors."""

    step: int = 0                 # optimiser steps done
    tokens: int = 0               # real (non-pad) tokens seen
    trained_tokens: int = 0       # trainable tokens seen
    best_val: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # train/val loss per step

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LoopState:
        return cls(**d)


@dataclass
class Hooks:
    """Callbacks the loop calls (all optional): metrics, checkpoints, best adapter, progress."""

    on_step: Callable[[dict[str, Any]], None] | None = None
    on_eval: Callable[[dict[str, Any]], None] | None = None
    save_checkpoint: Callable[[LoopState], None] | None = None
    save_best: Callable[[LoopState], None] | None = None


@dataclass
class Dist:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0


def run_loop(
    cfg: TrainConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    units: Sequence[Any],
    collate_fn: Callable[[list[Any]], dict[str, torch.Tensor]],
    unit_tokens: Callable[[Any], int],
    *,
    state: LoopState,
    steps: int,
    val_batches: Sequence[dict[str, torch.Tensor]] = (),
    has_val: bool | None = None,
    dist: Dist | None = None,
    hooks: Hooks | None = None,
    autocast: Callable[[], Any] | None = None,
    trainable: Sequence[torch.nn.Parameter] | None = None,
) -> LoopState:
    """Train from ``state.step`` to ``steps`` optimiser steps (or early stop); returns the state.

    ``units`` are the training items (examples or packs), ``collate_fn`` turns a list of them
    into a batch dict (``input_ids``, ``labels``, ``attention_mask`` and/or ``position_ids``),
    ``unit_tokens`` counts a unit's real tokens (for tokens/s). ``has_val`` says whether any
    process has validation batches (every process must then take part in evaluation).
    """
    dist = dist or Dist()
    hooks = hooks or Hooks()
    params = list(trainable) if trainable is not None else [p for p in model.parameters() if p.requires_grad]
    global_batch = cfg.batch_size * cfg.grad_accum * dist.world_size
    per_epoch = steps_per_epoch(len(units), global_batch)
    if has_val is None:
        has_val = len(val_batches) > 0
    model.train()
    order_cache: dict[int, list[int]] = {}

    while state.step < steps and not state.stopped_early:
        epoch, in_epoch = divmod(state.step, per_epoch)
        if epoch not in order_cache:
            order_cache.clear()
            order_cache[epoch] = epoch_order(len(units), cfg.seed, epoch)
        idx = step_units(order_cache[epoch], in_epoch, global_batch)
        shards = shard_micro_batches(idx, cfg.batch_size, cfg.grad_accum, dist.rank, dist.world_size)
        t0 = time.perf_counter()
        micro = [collate_fn([units[i] for i in s]) for s in shards]
        real = sum(unit_tokens(units[i]) for i in idx)
        loss, n_train = accumulate_step(model, micro, world_size=dist.world_size,
                                        autocast=autocast, all_reduce=dist.all_reduce)
        grad_norm = _clip(params, cfg.grad_clip)
        check_finite(state.step + 1, loss, grad_norm, n_train)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        state.step += 1
        state.tokens += real
        state.trained_tokens += n_train
        rec = {"step": state.step, "epoch": round(state.step / per_epoch, 4), "loss": loss, "lr": lr,
               "grad_norm": grad_norm, "tokens": real, "trainable_tokens": n_train,
               "seconds": round(dt, 4), "tokens_per_s": round(real / dt, 1) if dt > 0 else None}
        state.history.append({"step": state.step, "loss": loss})
        if hooks.on_step:
            hooks.on_step(rec)
        at_end = state.step >= steps
        if has_val and ((cfg.eval_every and state.step % cfg.eval_every == 0) or at_end):
            _eval_and_maybe_stop(cfg, model, val_batches, state, dist, hooks, autocast)
        if hooks.save_checkpoint and (state.step % cfg.save_every == 0 or at_end or state.stopped_early):
            hooks.save_checkpoint(state)
    return state


def check_finite(step: int, loss: float, grad_norm: float, n_train: int) -> None:
    """Stop with one line when step ``step``'s loss or gradient norm is NaN or infinite.

    Called before the optimiser step, so no NaN reaches the weights, and before any
    checkpoint or export of that step: what is on disk is the last finite step's."""
    from thresher.errors import ThresherError

    bad = [f"{name} {value}" for name, value in (("loss", loss), ("gradient norm", grad_norm))
           if n_train and not math.isfinite(value)]
    if bad:
        raise ThresherError(
            f"train: the {' and the '.join(bad)} at step {step}: stopping before the update "
            "(no adapter written); lower --lr, keep --grad-clip on, or check the data and --dtype")


def _eval_and_maybe_stop(cfg: TrainConfig, model: torch.nn.Module, val_batches: Sequence[dict],
                         state: LoopState, dist: Dist, hooks: Hooks, autocast: Any) -> None:
    if any(h.get("step") == state.step and "val_loss" in h for h in state.history):
        return
    val = evaluate(model, val_batches, autocast=autocast, all_reduce=dist.all_reduce)
    state.history.append({"step": state.step, "val_loss": val})
    improved = state.best_val is None or (not math.isnan(val) and val < state.best_val)
    if improved:
        state.best_val, state.best_step, state.bad_evals = val, state.step, 0
        if hooks.save_best:
            hooks.save_best(state)
    else:
        state.bad_evals += 1
        if cfg.patience and state.bad_evals >= cfg.patience:
            state.stopped_early = True
    if hooks.on_eval:
        hooks.on_eval({"step": state.step, "val_loss": val, "best_val": state.best_val,
                       "best_step": state.best_step, "stopped_early": state.stopped_early})


def _clip(params: Sequence[torch.nn.Parameter], max_norm: float) -> float:
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return 0.0
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(grads, max_norm))
    return float(torch.linalg.vector_norm(torch.stack([g.grad.detach().norm() for g in grads])))
