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


# Code points str.split() treats as whitespace, beyond those <= 32
_WIDE_SPACES = np.array([0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F,
                         0x205F, 0x3000], dtype=np.uint32)


@dataclass
class CodeBatch:
    """A batch of normalised texts as one array: codes (L,) uint32, starts and lengths (B,) int64.

    Normalisation: whitespace removed, ASCII upper case lowered (what dedup and n-gram keys
    compare on; it is done on the array because str.lower() costs ~3 us per CJK utterance).
    """

    codes: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)


def encode_batch(texts: list[str]) -> CodeBatch:
    """Normalise and concatenate a batch of texts (see :class:`CodeBatch`)."""
    raw_lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    keep = (codes > 32) & ~np.isin(codes, _WIDE_SPACES)
    upper = (codes >= 65) & (codes <= 90)
    codes = np.where(upper, codes + np.uint32(32), codes)[keep]
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    ends = np.cumsum(raw_lengths)
    lengths = kept_before[ends] - kept_before[ends - raw_lengths]
    return CodeBatch(codes=codes, starts=np.cumsum(lengths) - lengths, lengths=lengths)


def normalise_text(text: str) -> str:
    """The normalised form of one text (for tests and display; the batch code works on arrays)."""
    batch = encode_batch([text])
    return batch.codes.tobytes().decode("utf-32-le")


def concat_batches(batches: list[CodeBatch]) -> CodeBatch:
    """One CodeBatch holding the texts of several, in order."""
    lengths = np.concatenate([b.lengths for b in batches])
    return CodeBatch(codes=np.concatenate([b.codes for b in batches]), starts=np.cumsum(lengths) - lengths,
                     lengths=lengths)


def exact_keys(batch: CodeBatch) -> np.ndarray:
    """64-bit blake2b of each normalised text: (B,) uint64 exact-duplicate keys."""
    data = memoryview(batch.codes).cast("B")
    starts = (4 * batch.starts).tolist()
    ends = (4 * (batch.starts + batch.lengths)).tolist()
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(data[a:b], digest_size=8).digest() for a, b in zip(starts, ends)])
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)


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


def mix64(x: np.ndarray) -> np.ndarray:
    """A cheap in-place mixer for window hashes: multiply by an odd constant, fold the high
    bits down. The polynomial hash's low bits depend on few input bits; after this the low 32
    bits (MinHash values) and the high bits (MinHash bins) are both well spread."""
    np.multiply(x, np.uint64(0x9E3779B97F4A7C15), out=x)
    np.bitwise_xor(x, x >> np.uint64(29), out=x)
    return x


def window_hashes(batch: CodeBatch, n: int) -> WindowHashes:
    """Hash every window of ``n`` code points of each normalised text in the batch."""
    lengths, starts = batch.lengths, batch.starts
    total = len(batch.codes)
    _ensure_powers(total + 1)
    prefix = np.zeros(total + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.multiply(batch.codes, _powers[:total], out=prefix[1:])
        np.cumsum(prefix[1:], out=prefix[1:])
        # the hash of the window starting at every position (contiguous slices, no gathers) ...
        n_win = max(total - n + 1, 0)
        win = prefix[n:] - prefix[:n_win]
        np.multiply(win, _inv_powers[:n_win], out=win)
        # ... of which a window is kept when it ends inside the text it starts in: drop the
        # last n - 1 start positions of every text (all positions of a shorter text)
        cut = np.minimum(lengths, n - 1)
        bad = np.repeat(starts + lengths - cut, cut) + (np.arange(cut.sum()) - np.repeat(np.cumsum(cut) - cut, cut))
        valid = np.ones(n_win, dtype=bool)
        valid[bad[bad < n_win]] = False
        win = win[valid]
        doc = np.repeat(np.arange(len(lengths)), np.maximum(lengths - n + 1, 0))
        # texts shorter than n: one window over the whole text (empty text: hash of nothing)
        short = np.flatnonzero(lengths < n)
        if len(short):
            start = starts[short]
            whole = (prefix[start + lengths[short]] - prefix[start]) * _inv_powers[start]
            whole = whole + lengths[short].astype(np.uint64)  # so "" and "\0" differ
            win = np.concatenate([win, whole])
            doc = np.concatenate([doc, short])
        return WindowHashes(hashes=mix64(win), doc=doc)
