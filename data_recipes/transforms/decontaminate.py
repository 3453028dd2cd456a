"""Decontamination: drop training rows that share a long n-gram with an evaluation set.

The eval side is small (the evaluation files a recipe names), so all its n-gram hashes are held
in one sorted uint64 array (8 bytes per eval n-gram). A training row is contaminated when any of
its normalised n-character windows (whitespace removed, ASCII lower-cased) equals one of the
eval set's, or when the row is shorter than n and equals an eval text exactly. Characters, not
words, so Chinese and English are treated alike: 50 characters is about one sentence of
Chinese or 8-10 English words.
"""

from __future__ import annotations

import numpy as np

from data_recipes.transforms.shingles import CodeBatch, encode_batch, window_hashes


class EvalNgramIndex:
    """The set of n-gram hashes of the evaluation texts."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._parts: list[np.ndarray] = []
        self._keys = np.zeros(0, dtype=np.uint64)
        self.texts = 0

    def add(self, texts: list[str]) -> None:
        """Add a batch of evaluation texts."""
        if texts:
            self._parts.append(window_hashes(encode_batch(texts), self.n).hashes)
            self.texts += len(texts)

    def freeze(self) -> "EvalNgramIndex":
        """Sort the collected hashes; call once after the last :meth:`add`."""
        self._keys = np.unique(np.concatenate([self._keys, *self._parts]))
        self._parts = []
        return self

    @property
    def nbytes(self) -> int:
        return self._keys.nbytes

    def __len__(self) -> int:
        return len(self._keys)

    def contaminated(self, texts: list[str]) -> np.ndarray:
        """(B,) bool: which training texts share an n-gram with the evaluation texts."""
        return self.contaminated_codes(encode_batch(texts))

    def contaminated_codes(self, batch: CodeBatch) -> np.ndarray:
        """:meth:`contaminated` for texts already normalised into a :class:`CodeBatch`."""
        hit = np.zeros(len(batch), dtype=bool)
        if not len(self._keys) or not len(batch):
            return hit
        wh = window_hashes(batch, self.n)
        pos = np.minimum(np.searchsorted(self._keys, wh.hashes), len(self._keys) - 1)
        found = self._keys[pos] == wh.hashes
        hit[wh.doc[found]] = True
        return hit
