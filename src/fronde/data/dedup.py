"""Deduplication: exact (sha256 of the cleaned content) and near-duplicate (MinHash LSH).

Near duplicates are judged on word shingles (`shingle_words` consecutive words, words as fronde.data.words
splits them: in Chinese, Japanese or Thai a shingle is 5 characters). Shingles are hashed with a stable 32-bit
polynomial hash computed in numpy, never Python's salted `hash()`, so the same corpus gives the same decisions on
every run. The MinHash signatures and the choice of LSH bands are
`datasketch`'s; the index of band keys is fronde's `BandIndex` (8 bytes a key, against datasketch's ~3 KB a
document of Python objects). The first document seen is kept; a later one that shares an LSH band with an earlier
kept one is dropped, as MinHashLSH.query would find it.
Documents too short to judge (fewer than `MIN_SHINGLES` shingles) are only exact-deduplicated.
"""

from __future__ import annotations

import hashlib

import numpy as np

from fronde.data.documents import Document
from fronde.data.words import code_points, word_starts

MIN_SHINGLES = 8
_P = 0x01000193  # FNV prime (odd, hence invertible modulo 2**64)
_P_INV = pow(_P, -1, 1 << 64)
_MASK = np.uint64(0xFFFFFFFF)
_BATCH = 8192  # shingles per MinHash update: bounds the (batch x num_perm) temporary to ~8 MB


def _identity(x: int) -> int:
    return x


def word_hashes(text: str) -> np.ndarray:
    """A stable hash per word (fronde.data.words: lower-cased, a character alone in scripts without spaces),
    computed without a Python loop.

    poly(word) = sum(cp[i] * P**(i - start)) mod 2**64 over its code points, via prefix powers of P and of its
    inverse: every product wraps modulo 2**64, which is exactly the arithmetic we want. Then splitmix64's finaliser
    mixes it, and the top 32 bits are kept: a one-character word's polynomial is its code point, whose top bits are
    all zero (every Chinese character, and "a" and "1", hashed alike before the mixing).
    """
    cp = code_points(text.lower())
    if cp.size == 0:
        return np.empty(0, dtype=np.uint64)
    in_word, starts = word_starts(cp)
    if starts.size == 0:
        return np.empty(0, dtype=np.uint64)
    pw, inv = _powers(cp.size)
    with np.errstate(over="ignore"):
        terms = np.where(in_word, cp.astype(np.uint64) * pw, np.uint64(0))
        x = np.add.reduceat(terms, starts) * inv[starts]  # each run: from its word start to the next word start
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
        return x >> np.uint64(32)


_POWERS: list[np.ndarray] = [np.ones(0, dtype=np.uint64), np.ones(0, dtype=np.uint64)]


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P**i and P**-i for i < n, computed once for the longest document so far (two cumprods a document were a
    third of the hashing time)."""
    if len(_POWERS[0]) < n:
        size = max(n, 1 << 16, 2 * len(_POWERS[0]))
        with np.errstate(over="ignore"):
            _POWERS[0] = np.cumprod(np.full(size, _P, dtype=np.uint64)) * np.uint64(_P_INV)
            _POWERS[1] = np.cumprod(np.full(size, _P_INV, dtype=np.uint64)) * np.uint64(_P)
    return _POWERS[0][:n], _POWERS[1][:n]


def shingle_hashes(text: str, k: int) -> np.ndarray:
    """Unique 32-bit hashes of the text's k-word shingles."""
    w = word_hashes(text)
    if len(w) < k:
        return np.empty(0, dtype=np.uint64)
    n = len(w) - k + 1
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            h = (h * np.uint64(_P) + w[j:j + n]) & _MASK
    return np.unique(h)


class BandIndex:
    """The LSH band keys seen so far, answering "does any of these keys exist?".

    datasketch's MinHashLSH keeps, per band, a dict of bucket -> set of document ids: about 3 KB of Python objects
    a document, so 10M documents would need ~30 GB. Dropping a document needs only to know that an earlier one
    shares a band, so this keeps 64-bit band keys in sorted numpy arrays of doubling sizes (an LSM tree: a new run
    merges with the smaller ones, O(log n) amortised), 8 bytes a key, plus a small set of the newest keys.
    """

    def __init__(self, buffer_keys: int = 1 << 16) -> None:
        self._buffer: set[int] = set()
        self._buffer_keys = buffer_keys
        self._levels: list[np.ndarray] = []  # sorted, unique; sizes decrease along the list

    def contains_any(self, keys: np.ndarray) -> bool:
        if not self._buffer.isdisjoint(keys.tolist()):
            return True
        for level in self._levels:
            pos = np.searchsorted(level, keys).clip(max=len(level) - 1)
            if (level[pos] == keys).any():
                return True
        return False

    def add(self, keys: np.ndarray) -> None:
        self._buffer.update(keys.tolist())
        if len(self._buffer) >= self._buffer_keys:
            run = np.fromiter(self._buffer, dtype=np.uint64, count=len(self._buffer))
            run.sort()
            self._buffer.clear()
            while self._levels and len(self._levels[-1]) <= len(run):
                run = np.union1d(self._levels.pop(), run)
            self._levels.append(run)


def band_keys(hashvalues: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per LSH band of a MinHash signature (blake2b of the band's values, salted by the band's
    index): equal bands give equal keys; different ones collide with probability ~2**-64, and a false collision
    could only drop a document, never keep a duplicate."""
    raw = np.ascontiguousarray(hashvalues[: bands * rows]).tobytes()
    width = rows * hashvalues.itemsize
    return np.frombuffer(b"".join(hashlib.blake2b(raw[i * width:(i + 1) * width], digest_size=8,
                                                  salt=i.to_bytes(2, "little")).digest() for i in range(bands)),
                         dtype=np.uint64)


class Deduplicator:
    """Stateful filter: `check(doc)` returns None (keep) or the drop kind."""

    def __init__(self, exact: bool = True, near: bool = True, threshold: float = 0.85, num_perm: int = 128,
                 shingle_words: int = 5) -> None:
        self.exact = exact
        self.near = near
        self.num_perm = num_perm
        self.shingle_words = shingle_words
        self._seen: set[bytes] = set()
        self.index: BandIndex | None = None
        if near:
            from datasketch import MinHash, MinHashLSH

            self._MinHash = MinHash
            lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)  # for its choice of bands x rows only
            self.bands, self.rows = lsh.b, lsh.r
            self.index = BandIndex()
            # One template signature: copying its permutations is much cheaper than regenerating them.
            self._template = MinHash(num_perm=num_perm, seed=1, hashfunc=_identity)

    def minhash(self, text: str):  # -> datasketch.MinHash | None
        """The MinHash signature of a text, or None when it is too short to judge."""
        h = shingle_hashes(text, self.shingle_words)
        if len(h) < MIN_SHINGLES:
            return None
        m = self._template.copy()
        values = h.tolist()
        for i in range(0, len(values), _BATCH):
            m.update_batch(values[i:i + _BATCH])
        return m

    def keys(self, text: str) -> np.ndarray | None:
        """A text's LSH band keys (None: near-dedup off, or too short to judge). Pure: worker processes compute
        them for many documents at once, and `decide` takes them in order."""
        if self.index is None:
            return None
        m = self.minhash(text)
        return None if m is None else band_keys(m.hashvalues, self.bands, self.rows)

    def decide(self, digest: bytes, keys: np.ndarray | None) -> str | None:
        """Keep (None) or the drop kind, for the next document in corpus order; a kept one joins the index."""
        if self.exact:
            key = digest[:16]
            if key in self._seen:
                return "duplicate"
            self._seen.add(key)
        if keys is not None and self.index is not None:
            if self.index.contains_any(keys):
                return "near_duplicate"
            self.index.add(keys)
        return None

    def check(self, doc: Document) -> str | None:
        digest = doc.digest or doc.compute_digest()
        if self.exact and digest[:16] in self._seen:
            return "duplicate"  # no signature needed
        return self.decide(digest, self.keys(doc.plain_text()))
