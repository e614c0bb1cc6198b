"""What counts as a word for near-duplicate detection and decontamination, in every script.

Both judge text by runs of words (MinHash shingles of 5 words; 13-word passages shared with a test problem). A word
is a run of letters, marks and digits (Unicode categories L, M, N, and the underscore), lower-cased; everything
else separates words. Chinese, Japanese, Thai, Lao, Khmer and Myanmar are written without spaces between words, so
there a run of letters is a whole clause or sentence: a Chinese page was a handful of "words", too few for a
MinHash signature, and was never near-deduplicated (nor could a test problem be found inside a longer passage). In
those scripts each character is a word of its own, so shingles and passages are character n-grams, as CCNet and
the Chinese web corpora use. ASCII text splits as it did when words were runs of non-separator bytes; elsewhere
punctuation (« », “ ”, 、 。) now separates words too.
"""

from __future__ import annotations

import unicodedata

import numpy as np

# Bump when what is a word changes: prepared data whose dedup or decontamination used the old words is redone
# (fronde.data.pipeline.cache_key).
WORDS_VERSION = 2

# Blocks of the scripts written without spaces between words: Thai, Lao, Myanmar (and its extensions), Khmer (and
# its symbols), CJK radicals, kana, CJK ideographs (and extension A, compatibility ideographs, the supplementary
# planes' extensions), half-width katakana.
_ALONE = [(0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x19E0, 0x19FF), (0x2E80, 0x2FDF),
          (0x3040, 0x30FF), (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xA9E0, 0xA9FF),
          (0xAA60, 0xAA7F), (0xF900, 0xFAFF), (0xFF66, 0xFF9F), (0x20000, 0x3FFFF)]
_KIND: np.ndarray | None = None  # per BMP code point: 0 separates words, 1 belongs to a word, 2 is a word alone


def _in_word(cp: int) -> bool:
    cat = unicodedata.category(chr(cp))
    return cat[0] in "LMN" or cat == "Pc"


def _kind(cp: int) -> int:
    return 0 if not _in_word(cp) else 2 if any(lo <= cp <= hi for lo, hi in _ALONE) else 1


def _kinds(cp: np.ndarray) -> np.ndarray:
    """Each code point's kind: a table for the BMP, built on first use (~10 ms in every worker process), and
    unicodedata for the rare code points above it (emoji, historic scripts, CJK extension B...)."""
    global _KIND
    if _KIND is None:
        _KIND = np.array([_in_word(c) for c in range(0x10000)], dtype=np.uint8)
        for lo, hi in _ALONE:
            _KIND[lo:min(hi, 0xFFFF) + 1] *= 2
    high = cp >= 0x10000
    if not high.any():
        return _KIND[cp]
    kind = _KIND[np.where(high, 0, cp)]
    rare, where = np.unique(cp[high], return_inverse=True)
    kind[high] = np.array([_kind(int(c)) for c in rare], dtype=np.uint8)[where]
    return kind


def code_points(text: str) -> np.ndarray:
    """The text's code points (a lone surrogate kept as one), index for index with the str."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def word_starts(cp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(in_word, starts): whether each code point belongs to a word, and where each word starts. Between a start
    and the next, the word's characters come first, then the separators."""
    kind = _kinds(cp)
    in_word = kind > 0
    alone = kind == 2
    continues = np.concatenate(([False], in_word[:-1] & ~alone[:-1]))  # the previous one is a word's, not alone
    return in_word, np.flatnonzero(in_word & (~continues | alone))


def words(text: str) -> list[str]:
    """The lower-cased words of a text."""
    lowered = text.lower()
    cp = code_points(lowered)
    if cp.size == 0:
        return []
    in_word, starts = word_starts(cp)
    if starts.size == 0:
        return []
    lengths = np.add.reduceat(in_word.astype(np.int64), starts)
    return [lowered[s:s + n] for s, n in zip(starts.tolist(), lengths.tolist())]
