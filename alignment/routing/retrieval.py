"""Character n-gram TF-IDF retrieval: rank documents (doctor profiles) for a query (a case).

Works for Chinese without a word segmenter and for English alike. Text is lower-cased and its
whitespace dropped; a document's features are its character n-grams for n in
``[n_min, n_max]``, weighted by term frequency x smoothed inverse document frequency
(``idf = ln((1 + D) / (1 + df)) + 1``, as scikit-learn's default) and L2-normalised; the score of
a document is the cosine of its vector with the query's (n-grams unseen in the documents are
dropped). Ties keep the documents' order.

    index = TfidfIndex(["皮肤科主任医师，擅长湿疹", "骨科医师，擅长腰椎间盘突出症"])
    index.rank("手臂起湿疹，很痒")     # [0, 1]: document indices, best first
"""

from __future__ import annotations

import math
import re
from collections import Counter

_SPACE = re.compile(r"\s+")


def char_ngrams(text: str, n_min: int = 2, n_max: int = 3) -> Counter:
    """Counts of the character n-grams of ``text`` (lower-cased, whitespace removed)."""
    if not 1 <= n_min <= n_max:
        raise ValueError(f"need 1 <= n_min <= n_max, got {n_min}, {n_max}")
    s = _SPACE.sub("", text.lower())
    return Counter(s[i:i + n] for n in range(n_min, n_max + 1) for i in range(len(s) - n + 1))


class TfidfIndex:
    """TF-IDF vectors of a fixed set of documents; :meth:`scores` / :meth:`rank` for a query."""

    def __init__(self, documents: list[str], n_min: int = 2, n_max: int = 3):
        import numpy as np

        self.n_min, self.n_max = n_min, n_max
        grams = [char_ngrams(d, n_min, n_max) for d in documents]
        df = Counter(g for counts in grams for g in counts)
        self.vocab = {g: i for i, g in enumerate(sorted(df))}
        d = len(documents)
        self.idf = np.array([math.log((1 + d) / (1 + df[g])) + 1 for g in sorted(df)])
        self.matrix = np.zeros((d, len(self.vocab)))          # [D, V], rows L2-normalised
        for row, counts in enumerate(grams):
            for g, c in counts.items():
                self.matrix[row, self.vocab[g]] = c
        self.matrix *= self.idf
        norms = np.linalg.norm(self.matrix, axis=1, keepdims=True)
        self.matrix /= np.where(norms == 0, 1, norms)

    def vector(self, text: str):
        """The query's L2-normalised TF-IDF vector [V] (zeros when no n-gram is known)."""
        import numpy as np

        v = np.zeros(len(self.vocab))
        for g, c in char_ngrams(text, self.n_min, self.n_max).items():
            j = self.vocab.get(g)
            if j is not None:
                v[j] = c * self.idf[j]
        norm = np.linalg.norm(v)
        return v / norm if norm else v

    def scores(self, text: str) -> list[float]:
        """Cosine similarity of the query with every document, in document order."""
        return (self.matrix @ self.vector(text)).tolist()

    def rank(self, text: str) -> list[int]:
        """Document indices, best first (a stable sort: ties keep document order)."""
        scores = self.scores(text)
        return sorted(range(len(scores)), key=lambda i: -scores[i])
