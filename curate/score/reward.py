"""Reward-model scorer: a sequence classifier with one chosen logit per conversation.

The conversation is rendered with the reward model's own chat template, tokenised, and
scored in length-sorted, right-padded batches. Models with several labels (multi-objective
heads) need an explicit ``label`` (index or ``id2label`` name). Rows longer than
``max_length`` are truncated on the left (keeping the response, the default), on the right,
or skipped with a reason, as ``overflow`` says. bf16 on a GPU, fp32 on a CPU by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thresher.chat_tokens import ContentTokenError
from thresher.errors import ThresherError

from .base import (
    BatchCallback,
    Conversation,
    ScoreResult,
    folder_fingerprint,
    resolve_dtype,
)
from .batching import score_prepared
from .options import ModelOptions, ModelScorer, adopt, model_options

ENGINES = ("auto", "transformers", "vllm")


@dataclass
class _Prepared:
    ids: list[int] | None
    error: str | None = None


def fit_length(ids: list[int], max_length: int, overflow: str) -> tuple[list[int] | None, str | None]:
    """Apply the over-length policy: returns (ids or None, skip reason or None)."""
    if len(ids) <= max_length:
        return ids, None
    if overflow == "truncate_left":
        return ids[-max_length:], None
    if overflow == "truncate_right":
        return ids[:max_length], None
    return None, f"skipped: {len(ids)} tokens > max_length {max_length}"


def pick_label(config, label: str | int | None, model_name: str) -> int:
    """Index of the logit to use; a multi-label model needs ``label`` (index or name)."""
    n = int(getattr(config, "num_labels", 1) or 1)
    names = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    if label is None or label == "":
        if n == 1:
            return 0
        shown = ", ".join(f"{i}={names.get(i, i)}" for i in range(n))
        raise ThresherError(
            f"reward model {model_name} has {n} labels ({shown}); choose one with --label"
        )
    text = str(label)
    if text.lstrip("-").isdigit():
        idx = int(text)
        if not 0 <= idx < n:
            raise ThresherError(f"--label {idx}: reward model {model_name} has labels 0..{n - 1}")
        return idx
    for i, name in names.items():
        if name == text:
            return i
    raise ThresherError(
        f"--label {text!r}: not a label of reward model {model_name} "
        f"(labels: {', '.join(names.get(i, str(i)) for i in range(n))})"
    )


class RewardScorer(ModelScorer):
    """Scores conversations with a sequence-classification reward model."""

    kind = "reward"

    def __init__(self, model: str, *, name: str = "reward", label: str | int | None = None, engine: str = "auto",
                 options: ModelOptions | None = None, **overrides: Any):
        """``engine``: ``transformers``, ``vllm`` (pooling runner) or ``auto`` (vllm when it
        is installed and a GPU is visible, else transformers). ``options``: the shared
        model-scorer options (default: score's Config defaults); keyword arguments
        (``batch_size=4``, ``device="cpu"`` ...) override single fields."""
        options = model_options(options, overrides)
        if engine not in ENGINES:
            raise ThresherError(f"engine: must be one of {', '.join(ENGINES)}")
        if engine == "auto":
            from .vllm_reward import vllm_usable

            engine = "vllm" if vllm_usable() else "transformers"
        self.engine = engine
        self.name = name
        self.model_name = model
        self.label = label
        adopt(self, options)
        self._load()

    def _load(self) -> None:
        """Resolve the model and read its config and tokenizer (weights load on first use)."""
        from thresher.models import load_config, load_tokenizer, resolve_model

        path = str(resolve_model(self.model_name))
        self.path = path
        try:
            config = load_config(path, trust_remote_code=self.trust_remote_code)
        except (OSError, ValueError) as e:
            raise ThresherError(f"reward model {self.model_name}: cannot load config ({e})") from None
        archs = [a for a in (getattr(config, "architectures", None) or []) if a]
        if archs and not any(a.endswith(("ForSequenceClassification", "RewardModel")) for a in archs):
            raise ThresherError(
                f"reward model {self.model_name}: {archs[0]} is not a sequence classifier "
                "(a reward model loads with AutoModelForSequenceClassification)"
            )
        self.label_index = pick_label(config, self.label, self.model_name)
        self.tokenizer = load_tokenizer(path, trust_remote_code=self.trust_remote_code)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ThresherError(
                f"reward model {self.model_name}: its tokenizer has no chat template to render "
                "conversations with"
            )
        self.torch_dtype = resolve_dtype(self.dtype_name, self.device)
        self.model = None

    def _ensure_model(self) -> None:
        if self.model is not None:
            return
        if self.engine == "vllm":
            from .vllm_reward import VllmRewardRunner

            dtype = self.dtype_label()
            self.model = VllmRewardRunner(self.path, self.options, dtype=dtype)
            return
        from thresher.models import load_model

        model = load_model(
            self.path, kind="sequence-classification", dtype=self.torch_dtype, trust_remote_code=self.trust_remote_code
        ).to(self.device)
        model.eval()
        tok = self.tokenizer
        pad = model.config.pad_token_id
        if pad is None:
            pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
            if pad is None:
                raise ThresherError(
                    f"reward model {self.model_name}: no pad or eos token to pad batches with"
                )
            # the classifier head finds each row's last token by the pad id (right padding)
            model.config.pad_token_id = pad
            model.config.get_text_config().pad_token_id = pad
        self.pad_id = int(pad)
        self.model = model

    @property
    def identity(self) -> str:
        dtype = self.dtype_label()
        engine = "|engine=vllm" if self.engine == "vllm" else ""
        return (
            f"reward|{folder_fingerprint(self.path)}|label={self.label_index}"
            f"|max_length={self.max_length}|overflow={self.overflow}|dtype={dtype}{engine}"
            f"|content_specials={'tokens' if self.allow_special else 'text'}"
        )

    def encode(self, messages: Conversation) -> list[int]:
        """Token ids of a conversation rendered with the model's chat template (special-token
        strings in message content are tokenized as text unless allowed)."""
        from thresher.chat_tokens import encode_chat_ids

        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False)
        return encode_chat_ids(self.tokenizer, text, list(messages),
                               allow_special_in_content=self.allow_special)

    def prepare(self, conversations: Sequence[Conversation]) -> list[_Prepared]:
        out = []
        for conv in conversations:
            try:
                ids, err = fit_length(self.encode(conv), self.max_length, self.overflow)
            except ContentTokenError as e:
                ids, err = None, str(e)
            out.append(_Prepared(ids, err))
        return out

    def score_ids(self, batch: list[list[int]]) -> list[float]:
        """Score one batch of token-id lists (right-padded to the longest)."""
        import torch

        self._ensure_model()
        if self.engine == "vllm":
            return [row[self.label_index] for row in self.model.logits(batch)]
        longest = max(len(x) for x in batch)
        input_ids = torch.full((len(batch), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for i, ids in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[i, : len(ids)] = 1
        with torch.inference_mode():
            logits = self.model(
                input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)
            ).logits
        return logits[:, self.label_index].float().cpu().tolist()

    def score(
        self, conversations: Sequence[Conversation], on_batch: BatchCallback | None = None
    ) -> list[ScoreResult]:
        batch_size, budget = self.batch_size, self.max_batch_tokens
        if self.engine == "vllm":  # vLLM schedules its own batches: hand it large chunks
            batch_size, budget = max(batch_size, 256), None
        return score_prepared(self.prepare(conversations), lambda b: self.score_ids([p.ids for p in b]),
                              batch_size=batch_size, max_batch_tokens=budget, sort=self.sort,
                              on_batch=on_batch)
