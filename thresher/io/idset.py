"""The ids of a streamed read in bounded memory: :class:`CompactIds`.

A streamed read (:mod:`thresher.io.stream`) must still find an id given twice anywhere in its
inputs and derive the same ids as the whole-table read (:class:`thresher.schema.IdAssigner`,
whose dict holds each id and where it appeared: ~220 bytes a row, plus the derived-id
counters). :class:`CompactIds` gives the same answers from a 16-byte digest of each id
(BLAKE2b; two different ids share one with a chance of about n^2 / 2^129), where it appeared
(file index, row or line number) and whether it was derived. Recent ids sit in a dict; every
100,000 they move to a sorted NumPy level, looked up by binary search; levels of similar size
merge (up to :data:`MERGE_MAX` ids), so there are few of them and no merge copies the whole set.

A level of :data:`SPILL` ids or more moves to disk (:class:`thresher.io.idspill.DiskLevels`),
which keeps in memory Bloom filters and sparse fences: 1.3 to 2.6 bytes an id. So the set holds
at most ~30 MB (the dict, the levels in memory, a merge's scratch) plus those bytes: ~20 MB at
10M rows, against 240 MB when every level stayed in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from thresher.io.idspill import DiskLevels
from thresher.schema import content_id, duplicate_id_problem, id_type_problem, takeable_ids

#: ids held in the dict before they move to a sorted level
FLUSH = 100_000
#: the largest level a merge makes (ids): a merge's scratch memory (:func:`_merge`, ~33
#: bytes an id beside the two levels) stays under ~70 MB
MERGE_MAX = 2_000_000
#: a level of this many ids or more moves to disk (:class:`~thresher.io.idspill.DiskLevels`)
SPILL = 400_000
# a place: bits 0-15 the file's index, 16-17 the kind of where ("N", "row N", another text:
# an index into `_odd`), 18-61 the number, 62 set for a derived id
_DERIVED = 1 << 62
_DIGITS, _ROW, _OTHER = 0, 1, 2


def digest(rid: str) -> bytes:
    """The 16-byte key of an id (its last byte odd: NumPy's ``S16`` keeps it whole)."""
    d = bytearray(hashlib.blake2b(rid.encode("utf-8"), digest_size=16).digest())
    d[-1] |= 1
    return bytes(d)


class _Level:
    """Sorted keys and their places (file index in the low 16 bits, then the encoded where)."""

    def __init__(self, keys: np.ndarray, places: np.ndarray, *, presorted: bool = False) -> None:
        if not presorted:
            order = np.argsort(keys, kind="stable")
            keys, places = keys[order], places[order]
        self.keys, self.places = keys, places

    def find(self, key: bytes) -> int | None:
        i = int(np.searchsorted(self.keys, key))
        return int(self.places[i]) if i < len(self.keys) and self.keys[i] == key else None

    def hits(self, keys: np.ndarray) -> np.ndarray:
        """Which of ``keys`` this level holds."""
        i = np.searchsorted(self.keys, keys).clip(0, max(len(self.keys) - 1, 0))
        return (self.keys[i] == keys) if len(self.keys) else np.zeros(len(keys), dtype=bool)


def _merge(a: _Level, b: _Level) -> _Level:
    """``a`` and ``b`` as one level, their sorted keys merged (no sort of the whole: the
    scratch is the new arrays and ``b``'s positions, not a second copy and an argsort)."""
    n = len(a.keys) + len(b.keys)
    at = np.searchsorted(a.keys, b.keys) + np.arange(len(b.keys))  # b's places in the merged order
    rest = np.ones(n, dtype=bool)
    rest[at] = False
    keys, places = np.empty(n, dtype=a.keys.dtype), np.empty(n, dtype=np.int64)
    keys[at], keys[rest] = b.keys, a.keys
    places[at], places[rest] = b.places, a.places
    return _Level(keys, places, presorted=True)


class CompactIds:
    """:class:`thresher.schema.IdAssigner`'s interface and answers (``assign``, ``take_all``,
    ``overlay``/``commit``, the ``file`` being read), in a few bytes a row (module docstring)."""

    def __init__(self) -> None:
        self.file = ""
        self._files: list[str] = []
        self._odd: list[str] = []
        self._recent: dict[bytes, int] = {}
        self._levels: list[_Level] = []
        self._disk = DiskLevels()
        self._multi: dict[str, int] = {}
        """Derived-id counters above 1 (a content seen three times: 3); 1 is implied by the
        content id being held as derived, 0 by its absence."""
        self._parent: CompactIds | None = None

    # -- where an id appeared, packed into an int ----------------------------------------

    def _pack(self, where: str, derived: bool) -> int:
        root = self._root()
        if not root._files or root._files[-1] != self.file:
            root._files.append(self.file)
        if where.isdigit():
            kind, num = _DIGITS, int(where)
        elif where.startswith("row ") and where[4:].isdigit():
            kind, num = _ROW, int(where[4:])
        else:
            root._odd.append(where)
            kind, num = _OTHER, len(root._odd) - 1
        return (_DERIVED if derived else 0) | num << 18 | kind << 16 | (len(root._files) - 1)

    def _unpack(self, place: int) -> tuple[str, str]:
        """``(file, where)`` of a packed place."""
        root = self._root()
        f, kind, num = place & 0xFFFF, place >> 16 & 3, (place & ~_DERIVED) >> 18
        where = str(num) if kind == _DIGITS else f"row {num}" if kind == _ROW else root._odd[num]
        return root._files[f], where

    def _root(self) -> CompactIds:
        return self if self._parent is None else self._parent._root()

    # -- the set ------------------------------------------------------------------------

    def _find(self, key: bytes) -> int | None:
        got = self._recent.get(key)
        if got is not None:
            return got
        if self._parent is not None:
            return self._parent._find(key)
        for level in self._levels:
            got = level.find(key)
            if got is not None:
                return got
        return self._disk.find(key)

    def _add(self, key: bytes, place: int) -> None:
        self._recent[key] = place
        if self._parent is None and len(self._recent) >= FLUSH:
            self._flush()

    def _flush(self) -> None:
        if self._recent:
            keys = np.array(list(self._recent), dtype="S16")
            self._levels.append(_Level(keys, np.fromiter(self._recent.values(), np.int64, len(self._recent))))
            self._recent = {}
        lv = self._levels
        while len(lv) >= 2 and len(lv[-1].keys) * 2 >= len(lv[-2].keys) \
                and len(lv[-1].keys) + len(lv[-2].keys) <= MERGE_MAX:  # size-tiered: few levels, bounded merges
            b, a = lv.pop(), lv.pop()
            lv.append(_merge(a, b))
        for level in [x for x in lv if len(x.keys) >= SPILL]:
            lv.remove(level)
            self._disk.add(level.keys, level.places)

    def settle(self) -> None:
        """Move the recent ids into a sorted level (a streamed read calls it after each batch).
        Its keys and places are then NumPy arrays, not Python objects: a dict that lived across
        batches, beside each batch's per-row objects, kept CPython's small-object arenas from
        being released, and memory crept up with the rows read."""
        if self._parent is None:
            self._flush()

    def __len__(self) -> int:
        return len(self._recent) + sum(len(lv.keys) for lv in self._levels) + len(self._disk)

    def nbytes(self) -> int:
        """About the bytes held in memory (the arrays and filters, plus ~100 a recent id)."""
        return sum(lv.keys.nbytes + lv.places.nbytes for lv in self._levels) + 100 * len(self._recent) \
            + self._disk.nbytes()

    # -- IdAssigner's interface ----------------------------------------------------------

    def assign(self, given: Any, messages: Sequence[Mapping[str, Any]], where: str) -> tuple[str, str | None]:
        """``(id, problem)`` exactly as :meth:`thresher.schema.IdAssigner.assign`."""
        problem = id_type_problem(given)
        if problem:
            return "", problem
        if given not in (None, ""):
            rid = str(given)
            key = digest(rid)
            place = self._find(key)
            if place is not None:
                return rid, duplicate_id_problem(rid, *self._unpack(place), self.file)
            self._add(key, self._pack(where, derived=False))
            return rid, None
        return self._derive(messages, where), None

    def _count(self, base: str) -> int:
        node: CompactIds | None = self
        while node is not None:
            if base in node._multi:
                return node._multi[base]
            node = node._parent
        place = self._find(digest(base))
        return 1 if place is not None and place & _DERIVED else 0

    def _derive(self, messages: Sequence[Mapping[str, Any]], where: str) -> str:
        base = content_id(messages)
        occ = self._count(base)
        rid = base if occ == 0 else f"{base}-{occ}"
        while self._find(digest(rid)) is not None:
            occ += 1
            rid = f"{base}-{occ}"
        if occ + 1 > 1:
            self._multi[base] = occ + 1
        self._add(digest(rid), self._pack(where, derived=rid == base))
        return rid

    def take_all(self, column: pl.Series, file: str, prefix: str = "row ", start: int = 1) -> bool:
        """As :meth:`thresher.schema.IdAssigner.take_all`: every id of ``column`` registered at
        once when none is null, empty, repeated or seen before; False (nothing kept) otherwise."""
        values = takeable_ids(column)
        if values is None:
            return False
        keys = np.array([digest(v) for v in values], dtype="S16")
        root = self._root()
        if any(k in root._recent for k in keys.tolist()) or (self is not root and any(k in self._recent for k in keys.tolist())):
            return False
        if any(level.hits(keys).any() for level in root._levels) or root._disk.hits(keys).any():
            return False
        old, self.file = self.file, file
        places = [self._pack(f"{prefix}{i}", derived=False) for i in range(start, start + len(keys))]
        self.file = old
        if self._parent is None:
            self._flush()
            self._levels.append(_Level(keys, np.array(places, dtype=np.int64)))
            self._flush()
        else:
            self._recent.update(zip(keys.tolist(), places))
        return True

    def overlay(self) -> CompactIds:
        """A trial that sees these ids but records its own apart (:meth:`commit` keeps them)."""
        trial = CompactIds()
        trial.file, trial._parent = self.file, self
        return trial

    def commit(self, trial: CompactIds) -> None:
        """Keep the ids a trial from :meth:`overlay` assigned."""
        self._multi.update(trial._multi)
        for key, place in trial._recent.items():
            self._add(key, place)

