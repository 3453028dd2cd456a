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


NO_MATCH, EXACT_MATCH, NEAR_MATCH, WINDOW_MATCH = 0, 1, 2, 3
MATCH_KINDS = {EXACT_MATCH: "exact", NEAR_MATCH: "near", WINDOW_MATCH: "window"}


class EvalSetIndex:
    """The patient messages of a recipe's eval sets (``outputs.eval``), for decontaminating every
    training output against them (all splits, unlike ``decontaminate:``).

    A training text overlaps an eval case when its normalised text (whitespace removed, ASCII
    lower-cased) equals one of the case's messages (``exact``), or their MinHash estimate of
    Jaccard similarity over ``shingle``-character shingles reaches ``threshold`` (``near``, the
    dedup machinery of dedup.py: one-permutation MinHash, LSH bands, verified on the whole
    signature), or they share a window of ``ngram_chars`` characters (``window``, which also
    finds an eval message quoted inside a longer text; a message shorter than the window only
    matches whole). The eval side is small: its keys are sorted arrays, one case per key.
    """

    def __init__(self, threshold: float = 0.8, num_perm: int = 64, bands: int = 16, shingle: int = 5,
                 ngram_chars: int = 50) -> None:
        if num_perm % bands:
            raise ValueError(f"num_perm={num_perm} is not a multiple of bands={bands}")
        self.threshold, self.num_perm, self.bands = threshold, num_perm, bands
        self.shingle, self.n = shingle, ngram_chars
        self.cases: list[tuple[str, str]] = []          # case number -> (eval set, case id)
        self._texts: list[str] = []
        self._owners: list[int] = []
        self._frozen = False

    def add(self, eval_set: str, case_id: str, texts: list[str]) -> None:
        """Add one case's patient messages."""
        self._texts += texts
        self._owners += [len(self.cases)] * len(texts)
        self.cases.append((eval_set, case_id))

    def freeze(self) -> "EvalSetIndex":
        """Build the sorted key arrays; call once after the last :meth:`add`."""
        from data_recipes.transforms.dedup import band_keys, minhash_signatures
        from data_recipes.transforms.shingles import exact_keys

        owners = np.asarray(self._owners, dtype=np.int64)
        batch = encode_batch(self._texts)
        self._exact = _first_per_key(exact_keys(batch), owners)
        self._signatures = minhash_signatures(batch, self.num_perm, self.shingle) if len(batch) else \
            np.zeros((0, self.num_perm), dtype=np.uint32)
        bkeys = band_keys(self._signatures, self.bands) if len(batch) else np.zeros((0, self.bands), np.uint64)
        self._bands = _first_per_key(bkeys.ravel(), np.repeat(np.arange(len(batch)), self.bands))
        self._message_owner = owners
        wh = window_hashes(batch, self.n)
        self._windows = _first_per_key(wh.hashes, owners[wh.doc])
        self._frozen = True
        return self

    @property
    def messages(self) -> int:
        return len(self._texts)

    def exact_cases(self, keys: np.ndarray) -> np.ndarray:
        """Case numbers of texts whose exact keys (shingles.exact_keys) equal an eval message's; -1 else."""
        return _lookup(self._exact, keys)

    def match_codes(self, batch: CodeBatch) -> tuple[np.ndarray, np.ndarray]:
        """Per text of ``batch``: (case number or -1 (B,) int64, match kind (B,) uint8)."""
        from data_recipes.transforms.dedup import band_keys, minhash_signatures
        from data_recipes.transforms.shingles import exact_keys

        assert self._frozen, "EvalSetIndex.freeze() first"
        case = np.full(len(batch), -1, dtype=np.int64)
        kind = np.zeros(len(batch), dtype=np.uint8)
        if not len(batch) or not self.cases:
            return case, kind
        hit = _lookup(self._exact, exact_keys(batch))
        case[hit >= 0], kind[hit >= 0] = hit[hit >= 0], EXACT_MATCH
        todo = np.flatnonzero(case < 0)
        if len(todo):
            sub = CodeBatch(batch.codes, batch.starts[todo], batch.lengths[todo])
            sigs = minhash_signatures(_compact(sub), self.num_perm, self.shingle)
            cand = _lookup(self._bands, band_keys(sigs, self.bands))          # (T, bands) message ids
            r, b = np.nonzero(cand >= 0)
            if len(r):
                m = cand[r, b]
                est = np.count_nonzero(self._signatures[m] == sigs[r], axis=1) / self.num_perm
                good = est >= self.threshold
                rows, owners = todo[r[good]], self._message_owner[m[good]]
                case[rows[::-1]], kind[rows] = owners[::-1], NEAR_MATCH          # first hit wins
        todo = np.flatnonzero(case < 0)
        if len(todo):
            wh = window_hashes(_compact(CodeBatch(batch.codes, batch.starts[todo], batch.lengths[todo])), self.n)
            hit = _lookup(self._windows, wh.hashes)
            found = hit >= 0
            rows = todo[wh.doc[found]]
            case[rows[::-1]], kind[rows] = hit[found][::-1], WINDOW_MATCH
        return case, kind


def _first_per_key(keys: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and the value of each key's first occurrence."""
    distinct, first = np.unique(keys, return_index=True)
    return distinct, np.asarray(vals)[first].astype(np.int64)


def _lookup(table: tuple[np.ndarray, np.ndarray], keys: np.ndarray) -> np.ndarray:
    """Values of ``keys`` (any shape) in a (sorted keys, values) table; -1 where absent."""
    sorted_keys, vals = table
    out = np.full(keys.shape, -1, dtype=np.int64)
    if not len(sorted_keys):
        return out
    flat = keys.ravel()
    pos = np.minimum(np.searchsorted(sorted_keys, flat), len(sorted_keys) - 1)
    found = sorted_keys[pos] == flat
    out.ravel()[found] = vals[pos[found]]
    return out


def _compact(batch: CodeBatch) -> CodeBatch:
    """A CodeBatch whose texts are stored contiguously in order (a selection of another's texts)."""
    lengths = batch.lengths.astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    idx = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(batch.starts - starts, lengths)
    return CodeBatch(batch.codes[idx], starts, lengths)
