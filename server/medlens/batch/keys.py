"""Remembering which sources were seen, in 8 bytes a source.

Resume and de-duplication must remember every source of a corpus that may hold 100 M of them;
as Python strings that is tens of GB, as a set of ints still ~6 GB. A `SourceKeys` keeps a 64-bit
key per source (blake2b of the text; a collision needs ~4 billion sources) in a sorted NumPy
array, plus a small set of recent keys merged into it in bulk.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np

MERGE_EVERY = 1 << 20  # recent keys held in a set before they are merged into the sorted array


def source_key(source: str) -> int:
    return int.from_bytes(hashlib.blake2b(source.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class SourceKeys:
    """A set of sources by key: `add` says whether a source is new, `in` whether it was seen."""

    def __init__(self, sources: Iterable[str] = ()) -> None:
        self._sorted = np.zeros(0, dtype=np.uint64)
        self._recent: set[int] = set()
        for source in sources:
            self.add(source)

    def __len__(self) -> int:
        return int(self._sorted.size) + len(self._recent)

    def __contains__(self, source: str) -> bool:
        return self._has(source_key(source))

    def _has(self, key: int) -> bool:
        if key in self._recent:
            return True
        i = int(np.searchsorted(self._sorted, np.uint64(key)))
        return i < self._sorted.size and int(self._sorted[i]) == key

    def add(self, source: str) -> bool:
        """Remember `source`; True when it was not seen before."""
        key = source_key(source)
        if self._has(key):
            return False
        self._recent.add(key)
        if len(self._recent) >= MERGE_EVERY:
            self._merge()
        return True

    def _merge(self) -> None:
        recent = np.sort(np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent)))
        self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, recent), recent)
        self._recent.clear()

    def split(self, sources: Iterable[str]) -> tuple[list[str], list[str]]:
        """(sources not in the set, sources in it), each in the given order."""
        new, seen = [], []
        for source in sources:
            (seen if source in self else new).append(source)
        return new, seen
