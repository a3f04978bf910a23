"""Pack conversations into ``max_length`` sequences and collate batches for the model.

Packing is first-fit-decreasing. A packed row keeps each conversation to itself:

- ``position_ids`` restart at 0 for every conversation;
- eager / sdpa attention get an explicit 4D block-diagonal causal mask ``[B, 1, L, L]``
  (additive float for eager, boolean for sdpa; transformers passes a 4D mask through as is);
- flash attention (2/3) and thresher's own ``thresher_segments`` (the default with packing,
  :mod:`thresher.train.attention`) get the whole batch flattened into one row with no padding,
  plus ``cu_seq_lens_q/k`` and ``max_length_q/k`` (the per-sequence boundaries);
- the label of each conversation's first token is ``-100``, so the last token of one
  conversation is never asked to predict the next conversation.

Any other attention backend cannot isolate sequences: :func:`check_attn_implementation`
raises :class:`ThresherError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thresher.errors import ThresherError
from thresher.train.data.masks import IGNORE_INDEX, Example

#: attention implementations that keep packed conversations apart, and how
PACKING_ATTN: dict[str, str] = {
    "eager": "4d-float",
    "sdpa": "4d-bool",
    "flash_attention_2": "varlen",
    "flash_attention_3": "varlen",
    "thresher_segments": "varlen",  # thresher.train.attention: causal SDPA per conversation
}


def check_attn_implementation(
    attn_implementation: str | None, *, config: Any = None, max_length: int | None = None
) -> str:
    """The packing mode for ``attn_implementation`` (``"4d-float"``, ``"4d-bool"``, ``"varlen"``).

    Raises :class:`ThresherError` for a backend that cannot isolate packed sequences. With the
    model ``config`` and ``max_length``, also refuses the 4D-mask modes for a model with
    sliding-window layers whose window is shorter than ``max_length``: transformers uses a
    custom 4D mask as is, so the window would silently be lost.
    """
    name = attn_implementation or "sdpa"
    mode = PACKING_ATTN.get(name)
    if mode is None:
        raise ThresherError(
            f"--packing needs an attention backend that keeps packed conversations apart "
            f"({', '.join(PACKING_ATTN)}); {name!r} cannot: choose another or drop --packing"
        )
    window = _sliding_window(config)
    windowed = mode != "varlen" or name == "thresher_segments"
    if windowed and window is not None and max_length is not None and max_length > window:
        raise ThresherError(
            f"--packing with {name} attention would drop this model's sliding window ({window} "
            f"tokens < --max-length {max_length}); use flash_attention_2, --max-length {window}, "
            "or no --packing"
        )
    return mode


def _sliding_window(config: Any) -> int | None:
    """The sliding window of a model config when some layer uses it, else None."""
    if config is None:
        return None
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(cfg, "sliding_window", None)
    if not isinstance(window, int) or window <= 0:
        return None
    layer_types = getattr(cfg, "layer_types", None)
    if layer_types is not None and "sliding_attention" not in layer_types:
        return None
    if getattr(cfg, "use_sliding_window", True) is False:
        return None
    return window


def _length(x: Example | int) -> int:
    return x if isinstance(x, int) else len(x)


def pack_examples(examples: Sequence[Example | int], max_length: int) -> list[list[int]]:
    """First-fit-decreasing bins of example indices; each bin's total length <= ``max_length``.

    Longest first (ties by index); each example goes to the first bin with room. Bins are in
    creation order, indices in a bin in insertion order. ``examples`` may be lengths.
    Raises :class:`ThresherError` when one example alone is longer than ``max_length``.
    """
    if max_length <= 0:
        raise ValueError("max_length must be positive")
    lengths = [_length(x) for x in examples]
    for i, n in enumerate(lengths):
        if n > max_length:
            raise ThresherError(
                f"example {i} has {n} tokens > max_length {max_length}; drop or truncate it first"
            )
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    # segment tree over bins' free space, to find the first bin with room in O(log n)
    size = 1
    while size < max(1, len(lengths)):
        size *= 2
    tree = [0] * (2 * size)  # max free space per node; unopened bins have 0 free
    bins: list[list[int]] = []

    def update(pos: int, value: int) -> None:
        pos += size
        tree[pos] = value
        pos //= 2
        while pos:
            tree[pos] = max(tree[2 * pos], tree[2 * pos + 1])
            pos //= 2

    for i in order:
        n = lengths[i]
        if tree[1] >= n:
            node = 1
            while node < size:
                node = 2 * node if tree[2 * node] >= n else 2 * node + 1
            b = node - size
            bins[b].append(i)
            update(b, tree[node] - n)
        else:
            bins.append([i])
            update(len(bins) - 1, max_length - n)
    return bins


def padding_fraction(row_lengths: Sequence[Sequence[int]]) -> float:
    """Share of pad positions in a batch whose rows hold conversations of these lengths.

    Each row is padded to the longest row of the batch.
    """
    totals = [sum(r) for r in row_lengths]
    if not totals or max(totals) == 0:
        return 0.0
    return 1.0 - sum(totals) / (len(totals) * max(totals))


def packing_stats(lengths: Sequence[int], *, max_length: int, batch_size: int) -> dict[str, Any]:
    """Padding fraction without and with packing, for batches of ``batch_size`` rows.

    Without packing a batch is ``batch_size`` consecutive conversations padded to the longest;
    with packing it is ``batch_size`` consecutive FFD bins padded to the longest bin.
    """

    def frac(rows: list[list[int]]) -> float:
        real = pad = 0
        for s in range(0, len(rows), batch_size):
            batch = rows[s : s + batch_size]
            totals = [sum(r) for r in batch]
            real += sum(totals)
            pad += len(totals) * max(totals) - sum(totals)
        return pad / (real + pad) if real + pad else 0.0

    unpacked = [[n] for n in lengths]
    bins = pack_examples(list(lengths), max_length)
    packed = [[lengths[i] for i in b] for b in bins]
    return {
        "rows": len(lengths),
        "tokens": int(sum(lengths)),
        "bins": len(bins),
        "rows_per_bin": round(len(lengths) / len(bins), 3) if bins else 0.0,
        "padding_fraction_unpacked": round(frac(unpacked), 6),
        "padding_fraction_packed": round(frac(packed), 6),
    }


def collate(
    batch: Sequence[Sequence[Example]],
    pad_id: int,
    *,
    packing: bool,
    attn_implementation: str | None = "sdpa",
    dtype: Any = None,
    pad_to_multiple_of: int | None = None,
) -> dict[str, Any]:
    """Tensors for one batch; ``batch`` is a list of rows, each a list of conversations.

    Without ``packing`` each row must hold one conversation: returns ``input_ids``, ``labels``,
    ``position_ids`` and a 2D ``attention_mask`` (right padding). With ``packing``:
    ``input_ids``, ``labels`` and ``position_ids`` (restarting per conversation) plus, by
    backend, a 4D ``attention_mask`` ``[B, 1, L, L]`` (eager: additive float in ``dtype``,
    default float32; sdpa: bool), or for flash attention one flattened row with
    ``cu_seq_lens_q``, ``cu_seq_lens_k``, ``max_length_q``, ``max_length_k``. Every key is a
    model forward argument, so ``model(**batch)`` works.
    """
    import torch

    if not batch or any(len(row) == 0 for row in batch):
        raise ValueError("collate needs a non-empty batch of non-empty rows")
    if not packing:
        if any(len(row) != 1 for row in batch):
            raise ValueError("without packing each row must hold exactly one conversation")
        return _collate_plain([row[0] for row in batch], pad_id, pad_to_multiple_of)
    mode = check_attn_implementation(attn_implementation)
    if mode == "varlen":
        return _collate_varlen([e for row in batch for e in row])

    width = max(sum(len(e) for e in row) for row in batch)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    n = len(batch)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((n, width), dtype=torch.long)
    # segment id per position; pads get -1 and attend only to themselves (no empty softmax row)
    segments = torch.full((n, width), -1, dtype=torch.long)
    for b, row in enumerate(batch):
        pos = 0
        for k, ex in enumerate(row):
            m = len(ex)
            input_ids[b, pos : pos + m] = torch.tensor(ex.input_ids, dtype=torch.long)
            labels[b, pos : pos + m] = torch.tensor(ex.labels, dtype=torch.long)
            labels[b, pos] = IGNORE_INDEX
            position_ids[b, pos : pos + m] = torch.arange(m)
            segments[b, pos : pos + m] = k
            pos += m
        position_ids[b, pos:] = torch.arange(width - pos)
    causal = torch.tril(torch.ones(width, width, dtype=torch.bool))
    same = segments[:, :, None] == segments[:, None, :]
    real = (segments >= 0)[:, :, None]
    eye = torch.eye(width, dtype=torch.bool)[None]
    allowed = ((same & real & causal) | eye)[:, None]  # [B, 1, L, L]
    if mode == "4d-bool":
        mask = allowed
    else:
        dt = dtype or torch.float32
        mask = torch.zeros(allowed.shape, dtype=dt).masked_fill_(~allowed, torch.finfo(dt).min)
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "attention_mask": mask,
    }


def _collate_plain(examples: list[Example], pad_id: int, multiple: int | None) -> dict[str, Any]:
    import torch

    width = max(len(e) for e in examples)
    if multiple:
        width = -(-width // multiple) * multiple
    n = len(examples)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    for b, ex in enumerate(examples):
        m = len(ex)
        input_ids[b, :m] = torch.tensor(ex.input_ids, dtype=torch.long)
        labels[b, :m] = torch.tensor(ex.labels, dtype=torch.long)
        attention_mask[b, :m] = 1
    position_ids = torch.arange(width).expand(n, width).clone()
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "attention_mask": attention_mask,
    }


def _collate_varlen(examples: list[Example]) -> dict[str, Any]:
    import torch

    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    cu = [0]
    for ex in examples:
        m = len(ex)
        ids.extend(ex.input_ids)
        labels.append(IGNORE_INDEX)
        labels.extend(ex.labels[1:])
        positions.extend(range(m))
        cu.append(cu[-1] + m)
    cu_t = torch.tensor(cu, dtype=torch.int32)
    longest = max(len(e) for e in examples)
    return {
        "input_ids": torch.tensor([ids], dtype=torch.long),
        "labels": torch.tensor([labels], dtype=torch.long),
        "position_ids": torch.tensor([positions], dtype=torch.long),
        "cu_seq_lens_q": cu_t,
        "cu_seq_lens_k": cu_t.clone(),
        "max_length_q": longest,
        "max_length_k": longest,
    }
