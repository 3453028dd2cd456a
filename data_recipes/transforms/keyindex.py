"""Append-only key indexes for streaming dedup (numpy; no per-record Python objects).

:class:`HashKeyIndex` (what the build uses) maps uint64 keys to uint32 values (the first value
inserted per key) in an open-addressing hash table with linear probing, looked up and filled a
whole batch at a time with numpy; a key's home slot is the top bits of key * 2**64/phi. The
table doubles when it is half full, so a lookup costs one or two random memory accesses at any size: about 0.1-0.3 us per key at 16 M keys, where a binary
search into a sorted 16 M-key array costs ~1.5 us (the 1 M-consultation build makes 16 M
MinHash band keys). Cost: 12 bytes per slot, 24-48 bytes per key; x1.5 transiently while it grows.

:class:`SortedKeyIndex` is the compact alternative (12 bytes per key, lookups O(log n) binary
searches): a small log-structured merge tree: each batch is one sorted run, and runs are merged
whenever the newest is at least half as long as the one before it, so there are O(log n) runs.
Twice the memory transiently while the two largest runs merge.

:class:`SignatureStore` keeps one fixed-width uint32 row per record (MinHash signatures) in
chunks of 64k rows, so growing it never copies what is already stored.
"""

from __future__ import annotations

import numpy as np

MISSING = np.uint32(0xFFFFFFFF)


def first_per_key(keys: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys (sorted) and, for each, the value of its first occurrence (uint32)."""
    keys, first = np.unique(keys.ravel(), return_index=True)
    return keys, vals.ravel()[first].astype(np.uint32)


class HashKeyIndex:
    """uint64 key -> uint32 value; first insert wins. Batches are looked up and inserted whole.

    An empty slot holds the value MISSING (stored values are record numbers or 0, never MISSING)."""

    MIN_BITS = 12

    def __init__(self) -> None:
        self._bits = self.MIN_BITS
        self._keys = np.zeros(1 << self._bits, dtype=np.uint64)
        self._vals = np.full(1 << self._bits, MISSING, dtype=np.uint32)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return self._keys.nbytes + self._vals.nbytes

    def _home(self, keys: np.ndarray) -> np.ndarray:
        """Home slots: the top bits of key * 2**64/phi (Fibonacci hashing spreads even small keys)."""
        with np.errstate(over="ignore"):
            return ((keys * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - self._bits)).astype(np.int64)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Values for ``keys`` (any shape, uint64); MISSING where a key is absent."""
        flat = keys.ravel()
        out = np.full(flat.shape, MISSING, dtype=np.uint32)
        todo = np.arange(len(flat))
        pos = self._home(flat)
        mask = (1 << self._bits) - 1
        while len(todo):
            vals = self._vals[pos]
            hit = self._keys[pos] == flat[todo]
            found = hit & (vals != MISSING)
            out[todo[found]] = vals[found]
            more = ~hit & (vals != MISSING)          # an occupied slot of another key: probe on
            todo, pos = todo[more], (pos[more] + 1) & mask
        return out.reshape(keys.shape)

    def insert_new(self, keys: np.ndarray, vals: np.ndarray) -> None:
        """Insert keys the caller found missing; a key repeated in the batch keeps its first value."""
        self.insert_distinct(*first_per_key(keys, vals))

    def insert_distinct(self, keys: np.ndarray, vals: np.ndarray) -> None:
        """Insert distinct keys (uint64) the caller found missing, with their values (uint32)."""
        if not len(keys):
            return
        if 2 * (self._size + len(keys)) > len(self._keys):
            self._grow(self._size + len(keys))
        self._place(keys, vals)
        self._size += len(keys)

    def _place(self, keys: np.ndarray, vals: np.ndarray) -> None:
        """Write distinct new keys into empty slots (linear probing; one key per slot and round)."""
        pos = self._home(keys)
        mask = (1 << self._bits) - 1
        while len(keys):
            cand = np.flatnonzero(self._vals[pos] == MISSING)
            # of the keys that reached the same empty slot, one takes it (the last write; keys are
            # distinct, so exactly one reads back its own key); the rest probe on
            self._keys[pos[cand]] = keys[cand]
            won = cand[self._keys[pos[cand]] == keys[cand]]
            self._vals[pos[won]] = vals[won]
            left = np.ones(len(keys), dtype=bool)
            left[won] = False
            keys, vals, pos = keys[left], vals[left], (pos[left] + 1) & mask   # their slots are taken now

    def _grow(self, size: int) -> None:
        """Re-insert every key into a table at most half full after ``size`` keys."""
        used = self._vals != MISSING
        keys, vals = self._keys[used], self._vals[used]
        while 2 * size > (1 << self._bits):
            self._bits += 1
        self._keys = np.zeros(1 << self._bits, dtype=np.uint64)
        self._vals = np.full(1 << self._bits, MISSING, dtype=np.uint32)
        self._place(keys, vals)


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
        keys, vals = first_per_key(keys, vals)
        if not len(keys):
            return
        self._keys.append(keys)
        self._vals.append(vals)
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
        """Bytes of the rows stored. (The newest chunk's unwritten rows are not counted: a chunk is
        ``np.empty``, an untouched mapping, so its pages become resident only as rows are written.)"""
        return self._size * self.width * 4

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
