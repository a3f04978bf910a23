"""The options every model scorer shares (loglik, reward, ifd, gain, ending; the local judge
and vLLM's reward runner take the ones they use), built from the score stage's Config.

The defaults are written here once, and score's Config takes its defaults from them, so
a scorer built directly (``LoglikScorer(path, batch_size=4)``) and one the stage builds agree.
Keyword arguments a scorer is given override single fields (:func:`model_options`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

from thresher.errors import ThresherError

#: what a model scorer does with a row over ``max_length``
Overflow = Literal["truncate_left", "truncate_right", "skip"]
OVERFLOW_CHOICES: tuple[str, ...] = get_args(Overflow)


@dataclass(frozen=True)
class ModelOptions:
    """How a model scorer loads its model and batches rows (score's Config fields of the same
    meaning; :meth:`from_config`)."""

    max_length: int = 2048
    """Token limit per row."""
    overflow: Overflow = "truncate_left"
    """Rows over max_length: truncate_left (keep the end), truncate_right, or skip."""
    batch_size: int = 16
    """Rows per batch (at most)."""
    max_batch_tokens: int | None = 16384
    """Padded tokens per batch (rows x longest row); None: no limit."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:1 ..."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """auto, float32, bfloat16, float16."""
    sort: bool = True
    """Batch rows by length."""
    trust_remote_code: bool = False
    """Allow model repositories' own code."""
    allow_special_in_content: bool = False
    """Special-token strings typed in message content act as control tokens."""

    @classmethod
    def from_config(cls, config: Any) -> ModelOptions:
        """The options of a score stage ``Config``."""
        return cls(
            max_length=config.max_length, overflow=config.overflow, batch_size=config.batch_size,
            max_batch_tokens=config.max_batch_tokens, device=config.device, dtype=config.dtype,
            sort=config.sort_by_length, trust_remote_code=config.trust_remote_code,
            allow_special_in_content=config.allow_special_tokens_in_content,
        )

    @classmethod
    def default(cls) -> ModelOptions:
        """The default options (score's Config takes its defaults from these fields)."""
        return cls()


def model_options(options: ModelOptions | None, overrides: dict[str, Any]) -> ModelOptions:
    """``options`` (default: :meth:`ModelOptions.default`) with the fields in ``overrides``
    replaced; an unknown field is a TypeError, an unknown ``overflow`` a one-line error."""
    base = options if options is not None else ModelOptions.default()
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(ModelOptions)})
    if unknown:
        raise TypeError(f"unexpected scorer option(s): {', '.join(unknown)}")
    out = dataclasses.replace(base, **overrides) if overrides else base
    if out.overflow not in OVERFLOW_CHOICES:
        raise ThresherError(f"overflow: must be one of {', '.join(OVERFLOW_CHOICES)}")
    return out


def adopt(scorer: Any, options: ModelOptions) -> None:
    """Set a model scorer's option attributes (``max_length``, ``batch_size``, ``device``
    resolved ...) from ``options``; ``scorer.options`` keeps the whole object."""
    from .base import resolve_device

    scorer.options = options
    scorer.max_length = options.max_length
    scorer.overflow = options.overflow
    scorer.batch_size = options.batch_size
    scorer.max_batch_tokens = options.max_batch_tokens
    scorer.sort = options.sort
    scorer.trust_remote_code = options.trust_remote_code
    scorer.allow_special = options.allow_special_in_content
    scorer.device = resolve_device(options.device)
    scorer.dtype_name = options.dtype


class ModelScorer:
    """What every model scorer that holds a loaded model shares (loglik, reward)."""

    model: Any = None
    torch_dtype: Any = None

    def release(self) -> None:
        """Drop the loaded model (it loads again on the next ``score``)."""
        self.model = None
        import gc

        gc.collect()

    def dtype_label(self) -> str:
        """The compute dtype as it appears in the scorer's identity (``float32``, ``bfloat16``)."""
        return str(self.torch_dtype).replace("torch.", "")

