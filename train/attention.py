"""Per-conversation causal attention for packed rows, on any device: ``thresher_segments``.

Packed training flattens a batch into one row with ``cu_seq_lens_q`` (the ``varlen`` collate
of :mod:`thresher.train.data.packing`). Flash attention consumes that on CUDA; elsewhere the
only stock choice is SDPA with a dense ``[L, L]`` block-diagonal mask, which computes the whole
square although each conversation only needs its own causal triangle (a tenth of it for packs
of ten conversations), and without ``is_causal`` the CPU kernel cannot skip masked blocks.

This attention function (registered with transformers' ``AttentionInterface``) gathers each
conversation's queries, keys and values into a padded ``[S, H, Lmax, D]`` batch and runs SDPA
with ``is_causal=True``: right padding is invisible to a causal query, so no mask is needed.
Conversations are grouped by length (longest first; a group admits a conversation at least
``GROUP_RATIO`` times its longest), which bounds the padding work, and each group is one SDPA
call. The result is exact: the same softmax over the same keys as the dense mask.
"""

from __future__ import annotations

from typing import Any

NAME = "thresher_segments"
#: a group's shortest conversation is at least this fraction of its longest
GROUP_RATIO = 0.6

#: largest score tensor (elements) computed with plain matmuls instead of SDPA's kernel
MATH_MAX_SCORES = 1 << 24

_cache: dict[str, Any] = {"cu": None, "plan": None}


def register() -> str:
    """Register :func:`segment_attention` with transformers (idempotent); return its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, segment_attention)
    return NAME


def plan_groups(lengths: list[int], ratio: float = GROUP_RATIO) -> list[list[int]]:
    """Indices of the conversations in each SDPA call: longest first, each group's members at
    least ``ratio`` times its first (longest) member's length."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] >= ratio * lengths[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _gather_plan(cu: Any, device: Any) -> tuple[list[tuple[Any, Any, int, int]], Any]:
    """Per group: (gather index ``[S*Lmax]`` into the flat row, positions of the real tokens
    in the group's flattened padded output, S, Lmax); plus the permutation that puts the
    groups' concatenated real outputs back in row order."""
    import torch

    bounds = [int(x) for x in cu.tolist()]
    starts, lengths = bounds[:-1], [b - a for a, b in zip(bounds, bounds[1:])]
    groups, order = [], []
    for group in plan_groups(lengths):
        width = lengths[group[0]]
        ar = torch.arange(width)
        gather, real = [], []
        for s, i in enumerate(group):
            m = lengths[i]
            # pad slots repeat the conversation's last token: finite values, never seen causally
            gather.append(starts[i] + ar.clamp(max=m - 1))
            real.append(s * width + torch.arange(m))
            order.append(starts[i] + torch.arange(m))
        groups.append((torch.cat(gather).to(device), torch.cat(real).to(device), len(group), width))
    inverse = torch.argsort(torch.cat(order)).to(device)
    return groups, inverse


def _plan(cu: Any, device: Any) -> tuple[list[tuple[Any, Any, int, int]], Any]:
    if _cache["cu"] is not cu:  # one plan per batch, shared by every layer
        _cache["cu"], _cache["plan"] = cu, _gather_plan(cu, device)
    return _cache["plan"]


def _causal(q: Any, k: Any, v: Any, scale: float | None, dropout: float) -> Any:
    """Causal attention of ``q [S, H, L, D]`` over ``k, v [S, Hkv, L, D]`` (grouped-query when
    ``Hkv < H``). Short groups use two batched matmuls with an fp32 softmax: torch's CPU flash
    kernel tiles keys in blocks of 512, so on conversations of a few dozen tokens it does the
    work of 512 (measured 3-5x slower in bf16 for lengths 50-128). Long groups, where the
    ``[S, H, L, L]`` score tensor would be large, use SDPA's flash kernel."""
    import torch
    import torch.nn.functional as F

    n, heads, width, dim = q.shape
    kv_heads = k.shape[1]
    small = width <= (512 if q.dtype == torch.bfloat16 else 128) and n * heads * width * width <= MATH_MAX_SCORES
    if not small or q.device.type != "cpu" or dropout:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, dropout_p=dropout,
                                              enable_gqa=heads != kv_heads)
    group = heads // kv_heads  # q heads j*group .. j*group+group-1 share kv head j
    q = q * (scale or dim ** -0.5)  # scaling q is cheaper than scaling the [L, L] scores
    scores = torch.matmul(q.reshape(n, kv_heads, group * width, dim), k.transpose(-1, -2))
    future = torch.ones(width, width, dtype=torch.bool, device=q.device).triu_(1)
    scores = scores.view(n, kv_heads, group, width, width).masked_fill_(future, float("-inf"))
    probs = torch.softmax(scores, -1, dtype=torch.float32).to(v.dtype)
    return torch.matmul(probs.view(n, kv_heads, group * width, width), v).view(n, heads, width, dim)


def segment_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                      dropout: float = 0.0, scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """transformers attention function: causal attention within each ``cu_seq_lens_q`` segment
    of a single packed row (``query`` ``[1, H, T, D]``); returns ``([1, T, H, D], None)``."""
    import torch

    cu = kwargs.get("cu_seq_lens_q")
    if cu is None or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        # no packing information (e.g. generation): plain causal SDPA
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    q, k, v = query[0], key[0], value[0]                      # [H, T, D]
    heads, dim = q.shape[0], q.shape[2]
    groups, inverse = _plan(cu, q.device)
    pieces = []
    for gather, real, s, width in groups:
        q_g, k_g, v_g = (x.index_select(1, gather).view(x.shape[0], s, width, dim).transpose(0, 1)
                         for x in (q, k, v))
        out = _causal(q_g, k_g, v_g, scaling, dropout if module.training else 0.0)
        pieces.append(out.transpose(1, 2).reshape(s * width, heads, dim).index_select(0, real))
    flat = torch.cat(pieces) if len(pieces) > 1 else pieces[0]   # [T, H, D], group order
    return flat.index_select(0, inverse).unsqueeze(0), None
