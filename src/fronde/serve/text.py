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


def text_offsets(tok: Tokenizer, ids: list[int], start: int = 0, skip: int = 0) -> list[int]:
    """Where each of ids[skip:] begins in decode(ids) (OpenAI's `text_offset`), counted from `start`; a token that
    ends inside a multi-byte character begins where that character does. Linear in len(ids) for byte-level BPE
    tokenizers (fronde's, GPT-2's, Llama 3's): a prompt's offsets are computed on the server's event loop."""
    pieces = _token_bytes(tok, ids)
    if pieces is None:  # another decoder: decode every prefix (quadratic, exact)
        return [start + len(tok.decode(ids[:i], skip_special_tokens=True).rstrip("\ufffd"))
                for i in range(skip, len(ids))]
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offsets, chars = [], start
    for i, piece in enumerate(pieces):
        if i >= skip:
            offsets.append(chars)
        chars += len(decoder.decode(piece))
    return offsets


def _token_bytes(tok: Tokenizer, ids: list[int]) -> list[bytes] | None:
    """Each token's bytes as decode(skip_special_tokens=True) renders them, or None if the decoder is not
    byte-level (then a token's text is not a function of the token alone)."""
    if not isinstance(tok.hf.decoder, decoders.ByteLevel):
        return None
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
