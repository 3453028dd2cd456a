"""Vectorised text keys for dedup and decontamination: normalisation, exact hashes, n-gram hashes.

Texts are processed in batches so numpy does the per-character work: a batch of B texts is
concatenated into one array of code points (length L), and the hash of every window of ``n``
code points is a difference of prefix sums of a polynomial hash mod 2**64::

    P[t]  = sum_{s < t} c[s] * BASE**s            (numpy uint64 arithmetic wraps mod 2**64)
    H[i]  = (P[i + n] - P[i]) * BASE**(-i)       = sum_{j < n} c[i + j] * BASE**j

BASE is odd, so it has an inverse mod 2**64. Windows that cross a text boundary are masked out,
and every hash goes through splitmix64 so its bits are well mixed (the MinHash bins use the top
bits, the values the low bits). Exact keys use blake2b, which has no adversarial collisions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

_BASE = 0x100000001B3                      # FNV prime: odd, so invertible mod 2**64
_MASK64 = (1 << 64) - 1
_powers = np.ones(1, dtype=np.uint64)      # BASE**t, grown on demand
_inv_powers = np.ones(1, dtype=np.uint64)  # BASE**(-t)


def normalise_text(text: str) -> str:
    """Lower-case and remove all whitespace: the form every dedup and n-gram key is computed on."""
    return "".join(text.lower().split())


def exact_key(text: str) -> int:
    """64-bit blake2b of the normalised text (an exact-duplicate key), as a Python int."""
    digest = hashlib.blake2b(normalise_text(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def exact_keys(texts: list[str]) -> np.ndarray:
    """Exact keys of a batch: shape (B,), uint64."""
    return np.fromiter((exact_key(t) for t in texts), dtype=np.uint64, count=len(texts))


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, element-wise on a uint64 array (a bijection with good mixing)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _ensure_powers(length: int) -> None:
    global _powers, _inv_powers
    if len(_powers) >= length:
        return
    size = max(length, 2 * len(_powers))
    with np.errstate(over="ignore"):
        _powers = np.cumprod(np.full(size, _BASE, dtype=np.uint64), dtype=np.uint64)
        _powers = np.concatenate([np.ones(1, dtype=np.uint64), _powers[:-1]])
        inv = pow(_BASE, -1, 1 << 64)
        _inv_powers = np.cumprod(np.full(size, inv, dtype=np.uint64), dtype=np.uint64)
        _inv_powers = np.concatenate([np.ones(1, dtype=np.uint64), _inv_powers[:-1]])


@dataclass
class WindowHashes:
    """Hashes of every n-code-point window of a batch of texts.

    hashes: (W,) uint64, mixed; doc: (W,) int64, the index in the batch of each window's text.
    A text shorter than ``n`` contributes one window: the hash of the whole text.
    """

    hashes: np.ndarray
    doc: np.ndarray


def window_hashes(texts: list[str], n: int) -> WindowHashes:
    """Hash every window of ``n`` code points of each (already normalised) text in the batch."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    joined = "".join(texts)
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    total = len(codes)
    _ensure_powers(total + 1)
    prefix = np.zeros(total + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.cumsum(codes * _powers[:total], out=prefix[1:])
        ends = np.cumsum(lengths)
        starts = ends - lengths
        # full windows: start positions i with i + n <= end of the text that holds i
        doc_of_pos = np.repeat(np.arange(len(texts)), lengths)
        if total >= n:
            pos = np.arange(total - n + 1)
            full = doc_of_pos[pos] == doc_of_pos[pos + n - 1]
            pos = pos[full]
        else:
            pos = np.zeros(0, dtype=np.int64)
        win = (prefix[pos + n] - prefix[pos]) * _inv_powers[pos]
        doc = doc_of_pos[pos] if len(pos) else pos
        # texts shorter than n: one window over the whole text (empty text: hash of nothing)
        short = np.flatnonzero(lengths < n)
        if len(short):
            whole = (prefix[ends[short]] - prefix[starts[short]]) * _inv_powers[starts[short]]
            whole = whole + lengths[short].astype(np.uint64)  # so "" and "\0" differ
            win = np.concatenate([win, whole])
            doc = np.concatenate([doc, short])
        return WindowHashes(hashes=splitmix64(win), doc=doc.astype(np.int64))
