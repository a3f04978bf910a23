"""Reward scoring through vLLM's pooling runner (used when vLLM is installed and a GPU is there,
or when asked for with ``engine="vllm"``).

The conversations are rendered and tokenised by :class:`~thresher.curate.score.reward.RewardScorer`
exactly as on the transformers path; vLLM receives token ids (so truncation and templates are
identical) and returns the classifier's raw logits (``use_activation=False``), from which the
chosen label is taken. vLLM schedules its own batches, so length sorting is left to it.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from thresher.errors import ThresherError

if TYPE_CHECKING:
    from .options import ModelOptions


def vllm_usable() -> bool:
    """True when vllm is importable and a CUDA GPU is visible."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


class VllmRewardRunner:
    """A vLLM ``LLM`` in pooling mode over a sequence-classification model."""

    def __init__(self, path: str, options: ModelOptions, *, dtype: str):
        """``options``: the reward scorer's (``max_length``, ``trust_remote_code``); ``dtype``:
        the resolved torch dtype's name (``bfloat16``)."""
        if importlib.util.find_spec("vllm") is None:
            raise ThresherError("engine vllm: the vllm package is not installed "
                                "(pip install 'thresher[vllm]')")
        from vllm import LLM

        kwargs = {
            "model": path,
            "runner": "pooling",
            "max_model_len": options.max_length,
            "trust_remote_code": options.trust_remote_code,
            "dtype": dtype,
        }
        try:
            import torch

            if not torch.cuda.is_available():
                # CPU builds of vLLM: no CUDA graphs, and the "GPU" memory share is a share of
                # host memory reserved up front; a pooling model needs little of it
                kwargs["enforce_eager"] = True
                kwargs["gpu_memory_utilization"] = 0.1
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        try:
            self.llm = LLM(**kwargs)
        except Exception as e:  # noqa: BLE001 - engine start errors are many; report one line
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ThresherError(f"engine vllm: cannot start a pooling model for {path}: {first}") from None

    def logits(self, batch: list[list[int]]) -> list[list[float]]:
        """Raw classifier logits for each token-id list."""
        from vllm import PoolingParams

        prompts = [{"prompt_token_ids": ids} for ids in batch]
        outs = self.llm.classify(
            prompts, pooling_params=PoolingParams(use_activation=False), use_tqdm=False
        )
        return [list(o.outputs.probs) for o in outs]
