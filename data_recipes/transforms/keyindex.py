"""Compact, append-only key indexes for streaming dedup (numpy; no per-record Python objects).

:class:`SortedKeyIndex` maps uint64 keys to uint32 values (the first value inserted per key).
It is a small log-structured merge tree: each batch is one sorted run, and runs are merged
whenever the newest is at least half as long as the one before it, so there are O(log n) runs
and lookups are a few vectorised binary searches. Cost: 12 bytes per distinct key (8 for the
key, 4 for the value), twice that transiently while the two largest runs merge.

:class:`SignatureStore` keeps one fixed-width uint32 row per record (MinHash signatures) in
chunks of 64k rows, so growing it never copies what is already stored.
"""

from __future__ import annotations

import numpy as np

MISSING = np.uint32(0xFFFFFFFF)


class SortedKeyIndex:
    """uint64 key -> uint32 value; first insert wins. Batches are looked up and inserted whole."""

    def __init__(self) -> None:
        self._keys: list[np.ndarray] = []
        self._vals: list[np.ndarray] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in zip(self._keys, self._vals))

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Values for ``keys`` (any shape, uint64); MISSING where a key is absent."""
        flat = keys.ravel()
        out = np.full(flat.shape, MISSING, dtype=np.uint32)
        for run_keys, run_vals in zip(self._keys, self._vals):
            pos = np.searchsorted(run_keys, flat)
            pos_clipped = np.minimum(pos, len(run_keys) - 1)
            hit = (pos < len(run_keys)) & (run_keys[pos_clipped] == flat)
            out[hit] = run_vals[pos_clipped[hit]]
        return out.reshape(keys.shape)

    def insert_new(self, keys: np.ndarray, vals: np.ndarray) -> None:
        """Insert keys that are NOT in the index yet (the caller looked them up first).

        Within the batch the first occurrence of a key wins.
        """
        keys, first = np.unique(keys.ravel(), return_index=True)
        if not len(keys):
            return
        self._keys.append(keys)
        self._vals.append(vals.ravel()[first].astype(np.uint32))
        self._size += len(keys)
        while len(self._keys) > 1 and 2 * len(self._keys[-1]) >= len(self._keys[-2]):
            self._merge_last_two()

    def _merge_last_two(self) -> None:
        new_k, new_v = self._keys.pop(), self._vals.pop()
        old_k, old_v = self._keys.pop(), self._vals.pop()
        # linear merge: where each new key lands among the old ones, shifted by its own rank
        dest_new = np.searchsorted(old_k, new_k) + np.arange(len(new_k))
        keys = np.empty(len(old_k) + len(new_k), dtype=np.uint64)
        vals = np.empty(len(keys), dtype=np.uint32)
        is_new = np.zeros(len(keys), dtype=bool)
        is_new[dest_new] = True
        keys[dest_new], vals[dest_new] = new_k, new_v
        keys[~is_new], vals[~is_new] = old_k, old_v
        self._keys.append(keys)
        self._vals.append(vals)


class SignatureStore:
    """Rows of ``width`` uint32 addressed by a running record number (0, 1, 2, ...)."""

    CHUNK = 1 << 16

    def __init__(self, width: int) -> None:
        self.width = width
        self._chunks: list[np.ndarray] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._chunks)

    def append(self, rows: np.ndarray) -> np.ndarray:
        """Store rows (B, width); returns their record numbers (B,)."""
        ids = np.arange(self._size, self._size + len(rows), dtype=np.int64)
        done = 0
        while done < len(rows):
            offset = self._size % self.CHUNK
            if offset == 0:
                self._chunks.append(np.empty((self.CHUNK, self.width), dtype=np.uint32))
            take = min(self.CHUNK - offset, len(rows) - done)
            self._chunks[-1][offset:offset + take] = rows[done:done + take]
            self._size += take
            done += take
        return ids

    def get(self, ids: np.ndarray) -> np.ndarray:
        """Rows for record numbers ``ids`` (N,) -> (N, width)."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self.width), dtype=np.uint32)
        chunk_of = ids // self.CHUNK
        for c in np.unique(chunk_of):
            sel = chunk_of == c
            out[sel] = self._chunks[c][ids[sel] % self.CHUNK]
        return out
