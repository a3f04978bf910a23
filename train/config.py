"""TrainConfig: every option of ``thresher train lora`` (and the recipe ``train`` stage).

A frozen dataclass; every field has a default and the recipe keys are the field names.
:meth:`TrainConfig.check` returns every range/consistency problem at once (the core's
``thresher.config.from_dict`` raises them together); :func:`environment_problems` adds the
problems that depend on the machine (QLoRA without CUDA, FSDP without several GPUs, ...).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from thresher.config import choice_problems
from thresher.precision import Dtype

# Options that change what is computed (and therefore whether a checkpoint can be resumed).
# Options outside this set (save_every, log_every, merge, ...) may change between reruns.
_RESUME_IRRELEVANT = frozenset(
    {"save_every", "keep_checkpoints", "log_every", "merge", "export_atol", "allow_lint_failures",
     "threads", "trust_remote_code", "report_to"}
)

Schedule = Literal["cosine", "linear", "constant"]
TrainOn = Literal["all", "last"]
Overlong = Literal["drop", "truncate"]
Distributed = Literal["ddp", "fsdp"]
REPORT_TO = ("tensorboard", "trackio", "wandb", "mlflow", "none")


@dataclass(frozen=True)
class TrainConfig:
    """Options of the LoRA/DoRA trainer.

    Model and template
        ``base``: base model (folder, ``.gguf`` file, or a name ``resolve_model`` knows;
        ``None`` = SmolLM2-135M-Instruct). ``chat_template``: a Jinja file or literal string that
        replaces (or supplies) the student's template. ``attn_implementation``: transformers
        attention backend (``sdpa``, ``eager``, ``flash_attention_2``, ...).
        ``trust_remote_code``: run the model folder's own Python code (``auto_map``); off by
        default, a folder that needs it is refused.
    Adapter
        ``r``, ``alpha``, ``dropout``; ``target_modules`` (``None`` = every linear layer of the
        attention and MLP blocks); ``dora``; ``rslora``; ``qlora`` (4-bit base, CUDA only).
    Optimisation
        ``lr``, ``weight_decay``, ``warmup`` (a fraction of the steps when < 1, else a step
        count), ``schedule`` (cosine | linear | constant after warmup), ``grad_clip`` (0 = off),
        ``batch_size`` (sequences per micro-batch and process), ``grad_accum``,
        ``grad_checkpointing``, ``dtype`` (auto | fp32 | bf16: compute precision; auto = bf16
        where the hardware has native bf16 math, a CUDA GPU or a CPU with AMX/AVX-512 BF16,
        see :mod:`thresher.train.mixed_precision`), ``seed``, ``max_steps`` (0 = use ``epochs``), ``epochs``.
    Data
        ``max_length``, ``overlong`` (drop | truncate rows longer than ``max_length``),
        ``train_on`` (all assistant turns | the last one), ``packing``,
        ``allow_lint_failures`` (skip and list failing rows instead of refusing to start),
        ``train_reasoning`` (train the ``<think>`` traces, rendered the way the student's
        template expects, or mask them), ``max_reasoning_tokens`` (drop rows with a longer trace).
        A row that ``max_length`` would cut inside a reasoning trace is always dropped and listed.
    Validation and checkpoints
        ``val_fraction`` or ``val_file``; ``eval_every`` (0 = only at the end); ``patience``
        (early stopping on validation loss, 0 = off; the best adapter is kept);
        ``save_every`` (checkpoint every N optimiser steps), ``keep_checkpoints``.
    Export
        ``merge`` (also write a merged model), ``export_atol`` (largest allowed logit
        difference between the merged and the adapter model on the probe prompts).
    Several processes
        ``distributed``: how torchrun processes share the work: ``ddp`` (default; each
        process holds the model, gradients are averaged) or ``fsdp`` (torch FSDP2
        ``fully_shard`` of every decoder layer and the LoRA model: parameters, gradients and
        optimiser state sharded; gloo on CPU, NCCL on CUDA; see :mod:`thresher.train.ddp`).
        ``threads``: CPU threads per process (0 = torch's default).
    """

    base: str | None = None
    """Base model: folder, .gguf file or known name (default: SmolLM2-135M-Instruct)."""
    chat_template: str | None = None
    """Jinja chat template (file or literal) replacing/adding the student's."""
    attn_implementation: str = "auto"
    """Attention backend: auto (thresher_segments with packing, else sdpa), thresher_segments
    (per-conversation causal attention of packed rows), or a transformers backend (sdpa, eager,
    flash_attention_2, ...)."""
    trust_remote_code: bool = False
    """Run the model folder's own Python code (auto_map); only for models you trust."""
    # adapter
    r: int = 16
    """LoRA rank."""
    alpha: float = 32.0
    """LoRA alpha."""
    dropout: float = 0.05
    """LoRA dropout, in [0, 1)."""
    target_modules: list[str] | None = None
    """Module names to adapt (default: every linear layer of attention and MLP)."""
    dora: bool = False
    """DoRA (weight-decomposed LoRA)."""
    rslora: bool = False
    """Rank-stabilised LoRA scaling."""
    qlora: bool = False
    """4-bit base (bitsandbytes; CUDA only)."""
    # optimisation
    lr: float = 2e-4
    """Peak learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup: float = 0.03
    """Warmup: a fraction of the steps (<1) or a step count."""
    schedule: Schedule = "cosine"
    """Decay after warmup: cosine, linear or constant."""
    grad_clip: float = 1.0
    """Gradient-norm clipping, 0 = off."""
    batch_size: int = 4
    """Sequences per micro-batch and process."""
    grad_accum: int = 1
    """Micro-batches per optimiser step."""
    grad_checkpointing: bool = False
    """Recompute activations in the backward pass."""
    dtype: Dtype = "auto"
    """Compute precision: auto (bf16 where the GPU/CPU has native bf16 math, else fp32), fp32 or bf16."""
    seed: int = 0
    """Random seed."""
    max_steps: int = 0
    """Optimiser steps (0: use epochs)."""
    epochs: float = 1.0
    """Epochs over the training rows."""
    # data
    max_length: int = 1024
    """Longest sequence (rendered conversation) in tokens."""
    overlong: Overlong = "drop"
    """Rows longer than max_length: drop them (listed) or truncate them."""
    train_on: TrainOn = "all"
    """Train on all assistant turns or only the last one."""
    packing: bool = False
    """Pack conversations into max_length sequences (isolated attention)."""
    allow_lint_failures: bool = False
    """Skip (and list) rows that fail the mask lint instead of stopping."""
    allow_special_tokens_in_content: bool = False
    """Let special-token strings typed in message content (e.g. <|im_end|>) act as control tokens (default: tokenized as text)."""
    train_reasoning: bool = True
    """Train reasoning traces (reasoning_content, the generate stage's reasoning column, or a leading <think> block) like the answer; off: the trace stays in the context, masked."""
    max_reasoning_tokens: int = 0
    """Drop (and list) rows with a reasoning trace longer than this many tokens (0: no limit)."""
    # validation and checkpoints
    val_fraction: float = 0.0
    """Share of rows held out for validation, in [0, 1)."""
    val_file: str | None = None
    """Validation rows (instead of val_fraction)."""
    eval_every: int = 0
    """Validate every N steps (0: at the end)."""
    patience: int = 0
    """Stop after N evaluations without improvement (0: off; the best adapter is kept)."""
    save_every: int = 50
    """Checkpoint every N optimiser steps."""
    keep_checkpoints: int = 2
    """Checkpoints kept."""
    log_every: int = 10
    """Print a plain metrics line every N optimiser steps when stderr is not a terminal."""
    report_to: str = "tensorboard"
    """Where metrics go besides metrics.jsonl: comma-separated tensorboard, trackio, wandb,
    mlflow, or none (like transformers' report_to)."""
    # export
    merge: bool = False
    """Also write a merged model (checked against the adapter)."""
    export_atol: float = 1e-3
    """Largest merged-vs-adapter logit difference allowed on the probe prompts."""
    # several processes / threads
    distributed: Distributed = "ddp"
    """Under torchrun: ddp (replicate the model) or fsdp (FSDP2 fully_shard; gloo on CPU, NCCL on CUDA)."""
    threads: int = 0
    """CPU threads per process (0: torch's default)."""

    @property
    def fsdp(self) -> bool:
        """True for ``distributed: fsdp``."""
        return self.distributed == "fsdp"

    @property
    def attention(self) -> str:
        """The attention backend ``attn_implementation`` resolves to for this run."""
        if self.attn_implementation != "auto":
            return self.attn_implementation
        return "thresher_segments" if self.packing else "sdpa"

    def check(self) -> list[str]:
        """Every range/consistency problem, one string each (empty when the config is valid)."""
        p: list[str] = choice_problems(self)

        def positive(name: str) -> None:
            if getattr(self, name) <= 0:
                p.append(f"{name}: must be > 0, got {getattr(self, name)}")

        def non_negative(name: str) -> None:
            if getattr(self, name) < 0:
                p.append(f"{name}: must be >= 0, got {getattr(self, name)}")

        for name in ("r", "alpha", "lr", "batch_size", "grad_accum", "max_length", "epochs",
                     "save_every", "keep_checkpoints", "log_every", "export_atol"):
            positive(name)
        for name in ("weight_decay", "warmup", "grad_clip", "max_steps", "eval_every", "patience", "threads",
                     "max_reasoning_tokens"):
            non_negative(name)
        if not 0.0 <= self.dropout < 1.0:
            p.append(f"dropout: must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.val_fraction < 1.0:
            p.append(f"val_fraction: must be in [0, 1), got {self.val_fraction}")
        if self.val_fraction > 0 and self.val_file:
            p.append("val_fraction and val_file: give one or the other, not both")
        if self.patience > 0 and not (self.val_fraction > 0 or self.val_file):
            p.append("patience: early stopping needs validation data (val_fraction or val_file)")
        if self.eval_every > 0 and not (self.val_fraction > 0 or self.val_file):
            p.append("eval_every: evaluation needs validation data (val_fraction or val_file)")
        if math.isfinite(self.warmup) and self.warmup >= 1 and self.warmup != int(self.warmup):
            p.append(f"warmup: a step count (>= 1) must be a whole number, got {self.warmup}")
        if self.attn_implementation == "thresher_segments" and not self.packing:
            p.append("attn_implementation: thresher_segments attends within packed conversations; "
                     "it needs packing")
        for item in self.report_targets():
            if item not in REPORT_TO:
                p.append(f"report_to: unknown target {item!r} (expected {', '.join(REPORT_TO)})")
        if self.target_modules is not None and not self.target_modules:
            p.append("target_modules: must name at least one module (or be null for all linear)")
        if self.fsdp and self.qlora:
            p.append("fsdp and qlora: not supported together")
        if 0 < self.max_length < 8:
            p.append(f"max_length: must be >= 8, got {self.max_length}")
        bad = self._non_finite()  # NaN passes (or fails oddly) every range check above
        named = {b.split(":", 1)[0] for b in bad}
        return bad + [x for x in p if x.split(":", 1)[0] not in named]

    def _non_finite(self) -> list[str]:
        """``name: must be a finite number`` for every numeric option that is NaN or infinite."""
        out = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                out.append(f"{f.name}: must be a finite number, got {v}")
        return out

    def report_targets(self) -> list[str]:
        """The ``report_to`` targets, ``none`` removed."""
        items = [t.strip() for t in str(self.report_to).split(",") if t.strip()]
        return [t for t in items if t != "none"]

    def fingerprint(self) -> str:
        """Hash of the options that change the computation (a checkpoint resumes only when equal)."""
        from thresher.stage import config_fingerprint

        return config_fingerprint(self, exclude=_RESUME_IRRELEVANT)[:16]

    def warmup_steps(self, total_steps: int) -> int:
        """Warmup length in optimiser steps for a run of ``total_steps``."""
        if self.warmup < 1:
            return round(self.warmup * total_steps)
        return min(int(self.warmup), total_steps)


def environment_problems(cfg: TrainConfig) -> list[str]:
    """Problems that depend on this machine: QLoRA/FSDP without CUDA, bf16 forced on a GPU without it."""
    import importlib.util
    import os

    import torch

    p: list[str] = []
    if cfg.qlora:
        if not torch.cuda.is_available():
            p.append("qlora: 4-bit QLoRA needs a CUDA GPU (none found); train a plain LoRA instead")
        elif importlib.util.find_spec("bitsandbytes") is None:
            p.append("qlora: needs the bitsandbytes package (pip install bitsandbytes)")
    if cfg.fsdp and int(os.environ.get("WORLD_SIZE", "1")) < 2:
        p.append("distributed: fsdp runs under torchrun --nproc-per-node N (N >= 2)")
    if cfg.dtype == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        p.append("dtype: bf16 forced but this GPU does not support bf16")
    return p
