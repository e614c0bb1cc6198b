"""Decontamination: no training document may contain a passage of an evaluation's test problems.

A team's own corpus (a code dump from GitHub, a scrape of a maths forum) can hold the very problems its model is
later scored on, and a score on seen problems measures memory, not skill. As GPT-3, Llama and OLMo did, a document
that shares a 13-word passage with a test problem (the whole problem when it is shorter, from 8 words) is dropped as
`contaminated`, naming the test set. Words are split by fronde.data.words (runs of letters and digits,
lower-cased; a character alone in Chinese, Japanese, Thai, ...: 13 characters there), so spacing, punctuation and
case do not hide a copy. Problems shorter than 8 words ("What is 57 + 96?") are too generic to decide on and are not guarded.

The test texts come from the caller (fronde.tasks.decontamination_guard turns task specs into them): the data layer
knows text, not tasks.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fronde.data.words import words

NGRAM = 13
MIN_WORDS = 8


class Guard:
    """The n-grams of named test sets; `match(text)` names the first set a text shares one with."""

    def __init__(self, test_sets: dict[str, list[str]]) -> None:
        self.digest = hashlib.sha256(json.dumps(test_sets, sort_keys=True).encode()).hexdigest()  # the cache key's
        self.by_n: dict[int, dict[int, str]] = {}  # n -> hash of the n words -> test set name
        self.guarded = {name: 0 for name in test_sets}  # problems long enough to guard, per set
        for name, texts in test_sets.items():
            for text in texts:
                w = words(text)
                if len(w) < MIN_WORDS:
                    continue
                self.guarded[name] += 1
                n = min(NGRAM, len(w))
                grams = self.by_n.setdefault(n, {})
                for i in range(len(w) - n + 1):
                    grams.setdefault(hash(tuple(w[i:i + n])), name)

    def match(self, text: str) -> tuple[str, int] | None:
        """(test set, n) of the first shared passage, or None."""
        if not self.by_n:
            return None
        w = words(text)
        for n, grams in self.by_n.items():
            for i in range(len(w) - n + 1):
                name = grams.get(hash(tuple(w[i:i + n])))
                if name is not None:
                    return name, n
        return None

    def describe(self) -> dict[str, Any]:
        """What the manifest records: the sets, how many of their problems were guarded, the passage length."""
        return {"test_sets": self.guarded, "ngram_words": NGRAM, "min_words": MIN_WORDS}
