"""Log-likelihood scorer: mean per-token log-probability of the response under a causal LM.

The prompt turns are rendered with the model's chat template plus the generation prompt;
the response tokens are what the full conversation's rendering adds after that (the answer
and its end-of-turn marker). The score is the mean log-probability of those tokens given
everything before them, in nats (higher is better; 0 is the maximum). It works offline with
SmolLM2 (the default model) and uses the same length-sorted batching as the reward scorer.

To keep memory low the vocabulary projection is applied only at response positions (the
decoder's hidden states times the output embedding); a self-check at load time compares
this with the model's own logits and falls back to full logits when they differ (models
with logit scaling or soft-capping).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thresher.chat_tokens import ContentTokenError, encode_chat, encode_chat_ids, has_special_text
from thresher.errors import ThresherError

from .base import (
    BatchCallback,
    Conversation,
    ScoreResult,
    folder_fingerprint,
    resolve_dtype,
    split_response,
)
from .batching import score_prepared
from .options import ModelOptions, ModelScorer, adopt, model_options


@dataclass
class Prepared:
    """One conversation's token ids to score (or why it cannot be scored)."""

    ids: list[int] | None
    n_prompt: int = 0  # tokens before the first response token
    error: str | None = None


class LoglikScorer(ModelScorer):
    """Mean log-likelihood of the final assistant turn given the prompt."""

    kind = "loglik"

    def __init__(self, model: str | None = None, *, name: str = "loglik", options: ModelOptions | None = None,
                 **overrides: Any):
        """``options``: the shared model-scorer options (default: score's Config defaults);
        keyword arguments (``batch_size=4``, ``device="cpu"`` ...) override single fields."""
        self.name = name
        self.model_name = model
        adopt(self, model_options(options, overrides))
        self._load()

    def _load(self) -> None:
        """Resolve the model and load its tokenizer (weights load on first use)."""
        from thresher.models import load_tokenizer, resolve_model

        path = str(resolve_model(self.model_name))
        self.path = path
        self.tokenizer = load_tokenizer(path, trust_remote_code=self.trust_remote_code)
        self.torch_dtype = resolve_dtype(self.dtype_name, self.device)
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.pad_id = int(pad) if pad is not None else 0
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        self.start_id = int(start) if start is not None else self.pad_id
        self.model = None

    def _ensure_model(self) -> None:
        if self.model is not None:
            return
        from thresher.models import load_model

        try:
            model = load_model(
                self.path, dtype=self.torch_dtype, trust_remote_code=self.trust_remote_code
            ).to(self.device)
        except (OSError, ValueError) as e:
            raise ThresherError(f"loglik model {self.model_name or self.path}: cannot load ({e})") from None
        model.eval()
        self.model = model
        self._fast = self._check_fast_path()

    # -- rendering -----------------------------------------------------------------------
    def _render(self, messages: Conversation) -> tuple[str, str] | None:
        prompt, response = split_response(messages)
        if response is None:
            return None
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            p = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            full = tok.apply_chat_template(prompt + [response], tokenize=False)
            if full.startswith(p) and len(full) > len(p):
                return p, full[len(p):].rstrip()
            return p, response["content"]
        p = "".join(f"{m['role']}: {m['content']}\n" for m in prompt) + "assistant: "
        return p, response["content"]

    def _encode(self, conv: Conversation, p: str, r: str) -> tuple[list[int], list[int]]:
        """Prompt and response token ids; special-token strings in message content are
        tokenized as text (unless allowed), the template's own markers stay control tokens."""
        tok = self.tokenizer
        if self.allow_special or not has_special_text(tok, conv):
            return (list(tok(p, add_special_tokens=False)["input_ids"]),
                    list(tok(r, add_special_tokens=False)["input_ids"]))
        prompt, response = split_response(conv)
        has_template = bool(getattr(tok, "chat_template", None))
        p_ids = (encode_chat_ids(tok, p, prompt, add_generation_prompt=True) if has_template else
                 encode_chat(tok, p, prompt, spans=[(0, len(p))])[0])
        content = str(response["content"] or "")
        cand = next((c for c in (content, content.strip()) if c and r.startswith(c)), None)
        if cand is None and has_special_text(tok, [response]):
            raise ContentTokenError("the chat template changes the response text, so its special-token "
                                    "strings cannot be kept from acting as control tokens; pass "
                                    "--allow-special-tokens-in-content")
        spans = [(0, len(cand))] if cand else []
        return p_ids, encode_chat(tok, r, [response], spans=spans)[0]

    def prepare(self, conversations: Sequence[Conversation]) -> list[Prepared]:
        out = []
        for conv in conversations:
            rendered = self._render(conv)
            if rendered is None:
                out.append(Prepared(None, error="no final assistant turn to score"))
                continue
            p, r = rendered
            try:
                p_ids, r_ids = self._encode(conv, p, r)
            except ContentTokenError as e:
                out.append(Prepared(None, error=str(e)))
                continue
            p_ids = p_ids or [self.start_id]
            if not r_ids:
                out.append(Prepared(None, error="empty response: nothing to score"))
                continue
            total = len(p_ids) + len(r_ids)
            if total > self.max_length:
                if self.overflow == "skip":
                    out.append(
                        Prepared(
                            None, error=f"skipped: {total} tokens > max_length {self.max_length}"
                        )
                    )
                    continue
                if self.overflow == "truncate_left":
                    keep_p = max(1, self.max_length - len(r_ids))
                    p_ids = p_ids[-keep_p:]
                    r_ids = r_ids[: self.max_length - len(p_ids)]
                else:  # truncate_right: keep the prompt, cut the end of the response
                    p_ids = p_ids[: self.max_length - 1]
                    r_ids = r_ids[: self.max_length - len(p_ids)]
            out.append(Prepared(p_ids + r_ids, n_prompt=len(p_ids)))
        return out

    # -- model ---------------------------------------------------------------------------
    def _hidden(self, input_ids, mask):
        return self.model.get_decoder()(input_ids=input_ids, attention_mask=mask).last_hidden_state

    def _check_fast_path(self) -> bool:
        """True when decoder states x output embedding reproduce the model's logits."""
        import torch

        try:
            ids = torch.tensor([[self.start_id, self.pad_id, self.start_id, self.pad_id]])
            ids = ids.to(self.device)
            mask = torch.ones_like(ids)
            with torch.inference_mode():
                full = self.model(input_ids=ids, attention_mask=mask).logits.float()
                fast = self.model.get_output_embeddings()(self._hidden(ids, mask)).float()
            return bool(torch.allclose(full, fast, atol=1e-3, rtol=1e-3))
        except Exception:  # noqa: BLE001 - any architecture without the pieces: use full logits
            return False

    def score_batch(self, batch: list[Prepared]) -> list[float]:
        """Mean response log-probability for each prepared row of one batch."""
        return [mean for mean, _last in self.score_batch_detail(batch)]

    def score_batch_detail(self, batch: list[Prepared]) -> list[tuple[float, float]]:
        """``(mean, last)`` response log-probability for each prepared row of one batch; the
        last response token is the end-of-turn marker when the chat template adds one."""
        import torch

        self._ensure_model()
        longest = max(len(p.ids) for p in batch)
        input_ids = torch.full((len(batch), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for i, p in enumerate(batch):
            input_ids[i, : len(p.ids)] = torch.tensor(p.ids, dtype=torch.long)
            mask[i, : len(p.ids)] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        out = []
        with torch.inference_mode():
            if self._fast:
                hidden = self._hidden(input_ids, mask)
                head = self.model.get_output_embeddings()
            else:
                logits_all = self.model(input_ids=input_ids, attention_mask=mask).logits
            for i, p in enumerate(batch):
                lo, hi = p.n_prompt - 1, len(p.ids) - 1  # positions predicting response tokens
                if self._fast:
                    logits = head(hidden[i, lo:hi]).float()
                else:
                    logits = logits_all[i, lo:hi].float()
                targets = input_ids[i, lo + 1 : hi + 1]
                logp = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])
                out.append((float(logp.mean()), float(logp[-1])))
        return out

    @property
    def identity(self) -> str:
        dtype = self.dtype_label()
        return (
            f"loglik|{folder_fingerprint(self.path)}|max_length={self.max_length}"
            f"|overflow={self.overflow}|dtype={dtype}"
            f"|content_specials={'tokens' if self.allow_special else 'text'}"
        )

    def score(
        self, conversations: Sequence[Conversation], on_batch: BatchCallback | None = None
    ) -> list[ScoreResult]:
        return score_prepared(self.prepare(conversations), self.score_batch, batch_size=self.batch_size,
                              max_batch_tokens=self.max_batch_tokens, sort=self.sort, on_batch=on_batch)
