"""Exact and near-duplicate removal (MinHash + LSH), streaming, in the order records arrive.

A record is an *exact* duplicate when its normalised text (lower-case, no whitespace) was seen
before, and a *near* duplicate when the MinHash estimate of the Jaccard similarity of its
character shingles with an earlier record reaches ``threshold``. "Earlier" is the global record
order (sources in recipe order, files in sorted order, lines in file order), and every earlier
record counts, removed or not, so the decisions do not depend on how records are batched: the
local build and the Ray build remove exactly the same records.

MinHash here is one-permutation hashing: each shingle hash falls into one of ``num_perm`` bins
(a power of two) by its high bits and keeps its low 32 bits; a bin keeps the minimum; empty bins borrow from the
next non-empty bin to the right (rotation densification, Shrivastava & Li 2014). LSH splits the
signature into ``bands`` bands of ``num_perm / bands`` rows; records sharing a band key are
candidates, and a candidate is a duplicate only when the full-signature estimate reaches the
threshold (so template-like but different records are not removed).

The key indexes are hash tables (keyindex.HashKeyIndex: one or two memory accesses per lookup at
any size; a binary search into 16 M sorted band keys, which a 1 M-consultation build makes, cost
~10x more). Memory per record: 24-48 bytes per distinct key (a table is between a quarter and
half full) - the exact key and up to ``bands`` band keys - + 4 * num_perm (the signature, kept for
verification). With the defaults (64 bins, 16 bands) that is at most ~1 KB per record, ~0.5 KB
typically (templated text shares band keys); the build report gives the measured figure. (A
sorted index would take 12 bytes per key, but each lookup is a binary search per run.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_recipes.transforms.keyindex import MISSING, SignatureStore, HashKeyIndex
from data_recipes.transforms.shingles import CodeBatch, encode_batch, exact_keys, splitmix64, window_hashes

KEEP, EXACT, NEAR = 0, 1, 2
_EMPTY = np.uint32(0xFFFFFFFF)
_ROTATION = np.uint32(0x9E3779B1)


def minhash_signatures(batch: CodeBatch, num_perm: int, shingle: int) -> np.ndarray:
    """One-permutation MinHash of each text's character shingles: (B, num_perm) uint32.

    A text shorter than ``shingle`` is one shingle.
    """
    if num_perm & (num_perm - 1):
        raise ValueError(f"num_perm must be a power of two, got {num_perm}")
    wh = window_hashes(batch, shingle)
    sig = np.full(len(batch) * num_perm, _EMPTY, dtype=np.uint32)
    shift = np.uint64(64 - (num_perm.bit_length() - 1))
    bins = (wh.hashes >> shift).astype(np.intp) if num_perm > 1 else np.zeros(len(wh.hashes), np.intp)
    np.minimum.at(sig, wh.doc * num_perm + bins, wh.hashes.astype(np.uint32))
    return _densify(sig.reshape(len(batch), num_perm))


def _densify(sig: np.ndarray) -> np.ndarray:
    """Fill each empty bin from the next non-empty bin to its right (circularly), + offset."""
    empty = sig == _EMPTY
    if not empty.any():
        return sig
    rows, k = sig.shape
    cols = np.arange(k, dtype=np.int32)
    # the next non-empty bin at or after each bin, within the row (2k: none) ...
    nxt = np.where(empty, np.int32(2 * k), cols)
    nxt = np.minimum.accumulate(nxt[:, ::-1], axis=1)[:, ::-1]
    # ... and past the row's end, circularly: the row's first non-empty bin, k further on
    nxt = np.where(nxt < k, nxt, nxt[:, :1] + np.int32(k))
    nxt = np.minimum(nxt, np.int32(2 * k - 1))  # a text always has >= 1 shingle; guard anyway
    r, c = np.nonzero(empty)
    to = nxt[r, c].astype(np.int64)
    filled = sig.copy()
    filled[r, c] = sig[r, to % k] + (to - c).astype(np.uint32) * _ROTATION
    return filled


_BAND_MIX = splitmix64(np.arange(1, 257, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)


def band_keys(sig: np.ndarray, bands: int) -> np.ndarray:
    """LSH band keys (B, bands) uint64: each band's rows hashed together with the band number."""
    rows = sig.shape[1] // bands
    banded = sig.reshape(len(sig), bands, rows).astype(np.uint64)
    with np.errstate(over="ignore"):
        keys = (banded * _BAND_MIX[:rows]).sum(axis=2, dtype=np.uint64)
        keys = keys + np.arange(bands, dtype=np.uint64) * np.uint64(0xD6E8FEB86659FD93)
    return splitmix64(keys)


@dataclass
class DedupKeys:
    """What dedup needs of a batch: exact keys (B,) uint64 and signatures (B, num_perm) or None."""

    exact: np.ndarray
    signatures: np.ndarray | None


def dedup_keys(texts: list[str], near: bool, num_perm: int = 64, shingle: int = 5) -> DedupKeys:
    """Compute the keys of a batch (the parallel part: Ray workers run this)."""
    batch = encode_batch(texts)
    sigs = minhash_signatures(batch, num_perm, shingle) if near and texts else None
    return DedupKeys(exact=exact_keys(batch), signatures=sigs)


def first_occurrence(index: HashKeyIndex, keys: np.ndarray) -> np.ndarray:
    """(B,) bool: True where a key occurs for the first time (not in ``index``, not earlier in
    the batch). The new keys are inserted (value: position in the batch), so the next batch sees them."""
    new = index.lookup(keys) == MISSING
    position = np.flatnonzero(new)
    new[position] = insert_first(index, keys[new], position) == position   # the first occurrence wins
    return new


def insert_first(index: HashKeyIndex, keys: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """Insert keys missing from ``index``, each with the value of its first occurrence in the
    batch; returns, per key, the value the index now holds for it (what a lookup would return,
    found without a second pass over the table)."""
    distinct, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    held = vals[first]
    index.insert_distinct(distinct, held.astype(np.uint32))
    return held[inverse.ravel()]


class Deduplicator:
    """Streaming exact + near-duplicate decisions over batches in global order.

    ``scope`` per record salts the keys: records only match records of the same scope (the
    source index for ``scope: within_source``, 0 for ``across_sources``).
    """

    def __init__(self, exact: bool = True, near: bool = True, threshold: float = 0.8,
                 num_perm: int = 64, bands: int = 16) -> None:
        if near and num_perm % bands:
            raise ValueError(f"num_perm={num_perm} is not a multiple of bands={bands}")
        self.exact, self.near = exact, near
        self.threshold, self.num_perm, self.bands = threshold, num_perm, bands
        self._exact_index = HashKeyIndex()
        self._band_index = HashKeyIndex()
        self._signatures = SignatureStore(num_perm)
        self.records_seen = 0

    @property
    def nbytes(self) -> int:
        return self._exact_index.nbytes + self._band_index.nbytes + self._signatures.nbytes

    def check(self, keys: DedupKeys, scope: np.ndarray) -> np.ndarray:
        """Decisions for one batch, (B,) uint8: KEEP, EXACT or NEAR."""
        n = len(keys.exact)
        decision = np.full(n, KEEP, dtype=np.uint8)
        self.records_seen += n
        if not n:
            return decision
        salt = splitmix64(scope.astype(np.uint64) + np.uint64(0x51ED))
        if self.exact:
            decision[first_occurrence(self._exact_index, keys.exact ^ salt) == 0] = EXACT
        if self.near and keys.signatures is not None:
            todo = np.flatnonzero(decision == KEEP)
            if len(todo):
                near = self._near(keys.signatures[todo], salt[todo])
                decision[todo[near]] = NEAR
        return decision

    def _near(self, sigs: np.ndarray, salt: np.ndarray) -> np.ndarray:
        """(B,) bool for a batch of signatures; stores them and their new band keys."""
        ids = self._signatures.append(sigs)
        bkeys = band_keys(sigs, self.bands) ^ salt[:, None]
        cand = self._band_index.lookup(bkeys).astype(np.int64)          # (B, bands) record ids
        missing = cand == int(MISSING)
        # keys not in the index go in now, the first record of this batch holding a key winning;
        # that record is the candidate of the later ones
        mids = np.broadcast_to(ids[:, None], bkeys.shape)[missing]
        holder = insert_first(self._band_index, bkeys[missing], mids)
        cand[missing] = np.where(holder < mids, holder, -1)
        similar = np.zeros(len(sigs), dtype=bool)
        r, b = np.nonzero(cand >= 0)
        if len(r):
            # each (record, candidate) pair once: a record often shares several bands with one candidate
            pair = np.unique((r.astype(np.int64) << 32) | cand[r, b])
            r, c = pair >> 32, pair & 0xFFFFFFFF
            # the share of equal bins (count / num_perm: what .mean gives, without a float array)
            est = np.count_nonzero(self._signatures.get(c) == sigs[r], axis=1) / sigs.shape[1]
            similar[r[est >= self.threshold]] = True
        return similar
