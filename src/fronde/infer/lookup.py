"""Prompt lookup: draft tokens for speculative decoding copied from the sequence itself (vLLM's `ngram` method).

A model that answers from its context (a tool call that repeats the question's numbers, an answer that repeats the
tool's result, code edited in place, a summary quoting its source) writes runs of tokens that already appear
earlier. When the last few tokens occurred before, the tokens that followed them then are a cheap guess at what
comes next; the engine checks the guess in one forward (fronde.infer.engine) and keeps what the model would have
written anyway. No draft model and no training: any fronde model can use it.
"""

from __future__ import annotations

from collections.abc import Iterable


class PromptLookup:
    """One sequence's n-grams by their latest earlier end, kept as tokens are appended."""

    def __init__(self, tokens: Iterable[int], min_n: int = 2, max_n: int = 4) -> None:
        self.sizes = range(max_n, min_n - 1, -1)  # the longest match first: it predicts best
        self.seq: list[int] = []
        self.ends: dict[tuple[int, ...], int] = {}  # n-gram -> where its latest occurrence (before the last) ends
        self.extend(tokens)

    def append(self, token: int) -> None:
        # the n-grams ending at the current end become "earlier" ones once a token follows them
        end = len(self.seq)
        for n in self.sizes:
            if end >= n:
                self.ends[tuple(self.seq[end - n : end])] = end
        self.seq.append(token)

    def extend(self, tokens: Iterable[int]) -> None:
        for t in tokens:
            self.append(t)

    def propose(self, k: int) -> list[int]:
        """Up to k tokens that followed the latest earlier occurrence of the longest matching suffix; [] when none."""
        if k <= 0:
            return []
        end = len(self.seq)
        for n in self.sizes:
            if end >= n and (at := self.ends.get(tuple(self.seq[end - n :]))) is not None:
                return self.seq[at : at + k]
        return []
