"""Incremental detokenisation with stop strings: text is released only when no stop string could still begin in
it, and never in the middle of a UTF-8 character."""

from __future__ import annotations

import codecs

from tokenizers import decoders

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


class TextOffsets:
    """OpenAI's `text_offset` of tokens as they come: where each begins in the text decoded so far, counted from
    `start`; a token that ends inside a multi-byte character begins where that character does. Linear in the
    tokens for byte-level BPE tokenizers (fronde's, GPT-2's, Llama 3's), whose tokens are bytes; for others every
    prefix is decoded (quadratic, exact)."""

    def __init__(self, tok: Tokenizer, start: int = 0) -> None:
        self.tok, self.start, self.chars = tok, start, start
        self.byte_level = isinstance(tok.hf.decoder, decoders.ByteLevel)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.ids: list[int] = []  # the other decoders' prefix

    def push(self, ids: list[int]) -> list[int]:
        """The offsets of `ids`, which follow every token pushed before."""
        offsets = []
        if self.byte_level:
            for piece in _token_bytes(self.tok, ids):
                offsets.append(self.chars)
                self.chars += len(self.decoder.decode(piece))
            return offsets
        for token in ids:
            prefix = self.tok.decode(self.ids, skip_special_tokens=True)
            offsets.append(self.start + len(prefix.rstrip("\ufffd")))
            self.ids.append(token)
        return offsets


def text_offsets(tok: Tokenizer, ids: list[int], start: int = 0, skip: int = 0) -> list[int]:
    """TextOffsets of ids[skip:] in decode(ids), in one call."""
    return TextOffsets(tok, start).push(ids)[skip:]


def _token_bytes(tok: Tokenizer, ids: list[int]) -> list[bytes]:
    """Each token's bytes as decode(skip_special_tokens=True) renders them, for a byte-level decoder."""
    added = tok.hf.get_added_tokens_decoder()
    out = []
    for i in ids:
        if i in added:
            out.append(b"" if added[i].special else added[i].content.encode())
        else:
            out.append(bytes(_BYTE_OF[c] for c in tok.hf.id_to_token(i)))
    return out


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE maps each byte to a printable character; this is the way back."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


_BYTE_OF = _byte_level_alphabet()
