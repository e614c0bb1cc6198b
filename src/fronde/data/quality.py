"""Quality filters for web-like text (`quality = "web"` on a source): the heuristics that decide, in Gopher
(MassiveText), C4 and FineWeb, which scraped pages are prose worth training on and which are menus, spam,
boilerplate, keyword lists or machine-made repetition. Each rule is a threshold from those papers; a document that
fails one is dropped as `low_quality`, the rule and its value named in the manifest.

Off by default and chosen per source: source code, dictionaries, tables and chat logs fail these rules by design
(a Python file has too few stop words and too many symbols), and a team's own documents rarely need them.
Stop words are English and French (fronde's two languages); a page in another language passes that rule only if
it happens to hold two of them, so use the filter on sources in those languages.
"""

from __future__ import annotations

import re
from collections import Counter

LANGUAGES = ("eng", "fra")  # whose stop words the rules know
STOP_WORDS = frozenset(
    "the be to of and that have with"  # Gopher's eight
    " le la les de des du et un une est que qui dans pour pas sur au".split()  # French
)
_WORD = re.compile(r"\w[\w'’-]*", re.UNICODE)
_BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "-", "*", "–", "·")
_ELLIPSES = ("...", "…")
_END_PUNCT = (".", "!", "?", '"', "'", "”", "’", "»", ":", ";", ")")


def _dup_fraction(items: list[str]) -> tuple[float, float]:
    """Fraction of items repeating an earlier one, and of characters in those repeats."""
    seen: set[str] = set()
    dup = dup_chars = total_chars = 0
    for item in items:
        total_chars += len(item)
        if item in seen:
            dup += 1
            dup_chars += len(item)
        seen.add(item)
    return (dup / len(items) if items else 0.0), (dup_chars / total_chars if total_chars else 0.0)


def _top_ngram_fraction(words: list[str], n: int) -> float:
    """Characters covered by the most frequent word n-gram, over all word characters (Gopher)."""
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0.0
    gram, count = grams.most_common(1)[0]
    if count < 2:
        return 0.0
    return count * sum(len(w) for w in gram) / max(1, sum(len(w) for w in words))


def _dup_ngram_fraction(words: list[str], n: int) -> float:
    """Characters of words inside n-grams that occur more than once (Gopher), over all word characters."""
    if len(words) < n:
        return 0.0
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    counts = Counter(grams)
    covered = [False] * len(words)
    for i, g in enumerate(grams):
        if counts[g] > 1:
            for j in range(i, i + n):
                covered[j] = True
    total = sum(len(w) for w in words)
    return sum(len(w) for w, c in zip(words, covered) if c) / max(1, total)


def web_quality(text: str) -> str | None:
    """None when the text passes every rule, else the first rule it fails, with its value."""
    words = _WORD.findall(text)
    n = len(words)
    if not 50 <= n <= 100_000:
        return f"{n} words (Gopher keeps 50 to 100,000)"
    mean_len = sum(len(w) for w in words) / n
    if not 3 <= mean_len <= 10:
        return f"mean word length {mean_len:.1f} (Gopher keeps 3 to 10)"
    symbols = text.count("#") + sum(text.count(e) for e in _ELLIPSES)
    if symbols / n > 0.1:
        return f"{symbols / n:.2f} hash or ellipsis symbols per word (Gopher keeps at most 0.1)"
    lowered = [w.lower() for w in words]
    if sum(w in STOP_WORDS for w in lowered) < 2:
        return ("fewer than 2 stop words (the, of, and, le, de, et...; quality=web knows English and French only): "
                "not running prose")
    alphabetic = sum(any(ch.isalpha() for ch in w) for w in words) / n
    if alphabetic < 0.8:
        return f"{alphabetic:.0%} of words with a letter (Gopher keeps 80% or more)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines:
        bullets = sum(line.startswith(_BULLETS) for line in lines) / len(lines)
        if bullets > 0.9:
            return f"{bullets:.0%} of lines start with a bullet (Gopher keeps at most 90%)"
        ellipsis = sum(line.endswith(_ELLIPSES) for line in lines) / len(lines)
        if ellipsis > 0.3:
            return f"{ellipsis:.0%} of lines end with an ellipsis (Gopher keeps at most 30%)"
        if len(lines) > 3:
            punct = sum(line.endswith(_END_PUNCT) for line in lines) / len(lines)
            if punct < 0.12:
                return f"{punct:.0%} of lines end with punctuation (FineWeb keeps 12% or more)"
            short = sum(len(line) < 30 for line in lines) / len(lines)
            if short > 0.67:
                return f"{short:.0%} of lines under 30 characters (FineWeb keeps at most 67%)"
        dup_lines, dup_line_chars = _dup_fraction(lines)
        if dup_lines > 0.3 or dup_line_chars > 0.2:
            return f"{dup_lines:.0%} of lines ({dup_line_chars:.0%} of characters) repeat earlier ones " \
                   "(Gopher keeps at most 30% / 20%)"
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    dup_par, dup_par_chars = _dup_fraction(paragraphs)
    if dup_par > 0.3 or dup_par_chars > 0.2:
        return f"{dup_par:.0%} of paragraphs ({dup_par_chars:.0%} of characters) repeat earlier ones " \
               "(Gopher keeps at most 30% / 20%)"
    for k, limit in ((2, 0.20), (3, 0.18), (4, 0.16)):
        top = _top_ngram_fraction(lowered, k)
        if top > limit:
            return f"the most frequent {k}-word sequence covers {top:.0%} of the text (Gopher keeps at most " \
                   f"{limit:.0%})"
    for k, limit in ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)):
        dup = _dup_ngram_fraction(lowered, k)
        if dup > limit:
            return f"{dup:.0%} of the text is in repeated {k}-word sequences (Gopher keeps at most {limit:.0%})"
    return None
