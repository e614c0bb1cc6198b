"""Incremental detokenisation with stop strings: text is released only when no stop string could still begin in
it, and never in the middle of a UTF-8 character."""

from __future__ import annotations

from fronde.data.tokenizer import Tokenizer


class TextStream:
    def __init__(self, tok: Tokenizer, stops: list[str]) -> None:
        self.tok, self.stops = tok, stops
        self.ids: list[int] = []
        self.text = ""  # final text released so far
        self.stopped = False
        self._holdback = max((len(s) for s in stops), default=1) - 1

    def push(self, token: int) -> str:
        """Add a token; return the newly released text (possibly empty). Sets `stopped` on a stop string."""
        self.ids.append(token)
        full = self.tok.decode(self.ids, skip_special_tokens=True)
        hits = [i for i in (full.find(s, max(0, len(self.text) - len(s))) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            return self._release(full[: min(hits)])
        if full.endswith("\ufffd"):  # an incomplete multi-byte character: wait for its other bytes
            return ""
        return self._release(full[: max(len(self.text), len(full) - self._holdback)])

    def flush(self) -> str:
        """At the end of generation: everything still held back."""
        if self.stopped:
            return ""
        return self._release(self.tok.decode(self.ids, skip_special_tokens=True))

    def _release(self, upto: str) -> str:
        new = upto[len(self.text):]
        self.text = upto
        return new


def text_offsets(tok: Tokenizer, ids: list[int], start: int = 0, skip: int = 0) -> list[int]:
    """Where each of ids[skip:] begins in decode(ids) (OpenAI's `text_offset`), counted from `start`; a token that
    ends inside a multi-byte character begins where that character does."""
    offsets = []
    for i in range(skip, len(ids)):
        prefix = tok.decode(ids[:i], skip_special_tokens=True)
        offsets.append(start + len(prefix.rstrip("\ufffd")))
    return offsets
