"""Text cleaning: bytes -> well-formed NFC text with `\n` newlines and no control characters.

Decoding is incremental (bounded blocks) so a huge single-line file is never held as bytes *and*
text at once; long texts are cut into documents of at most `max_chars` at a newline or space, so
every later stage works on bounded pieces.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

READ_BLOCK = 1 << 20  # bytes per read; peak memory stays O(max_chars + READ_BLOCK)
BINARY_SNIFF = 8000  # like git: a NUL byte in the first 8000 bytes means "binary"

# C0 controls except \t and \n (\r is turned into \n first), DEL, C1 controls, and the BOM / zero
# width no-break space, which carries no text and confuses tokenizers.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")
_NEWLINES = re.compile("\r\n?|[\u2028\u2029\x85]")


class _ReplaceCounter:
    """A codecs error handler that replaces bad bytes with U+FFFD and counts how often it did."""

    NAME = "fronde-count-replace"

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, err: UnicodeError) -> tuple[str, int]:
        assert isinstance(err, UnicodeDecodeError)
        self.count += 1
        return "\ufffd", err.end


_COUNTER = _ReplaceCounter()
codecs.register_error(_ReplaceCounter.NAME, _COUNTER)
COUNT_REPLACE = _ReplaceCounter.NAME  # the `errors=` of a decoder whose replacements iter_text_pieces must see


@dataclass(slots=True)
class CleanStats:
    control_chars: int = 0
    nfc_changed: int = 0


def clean_text(text: str, stats: CleanStats | None = None) -> str:
    """NFC, `\\n` newlines, no control characters. Cheap checks first: most text needs nothing."""
    if "\r" in text or "\u2028" in text or "\u2029" in text or "\x85" in text:
        text = _NEWLINES.sub("\n", text)
    if _CONTROL.search(text):
        text, n = _CONTROL.subn("", text)
        if stats is not None:
            stats.control_chars += n
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
        if stats is not None:
            stats.nfc_changed += 1
    return text


def _cut_point(text: str, limit: int) -> int:
    """Where to end a piece of at most `limit` chars: after the last newline, else space, in its
    second half; otherwise hard at `limit` (a single 'word' longer than half a document)."""
    for sep in ("\n", " "):
        i = text.rfind(sep, limit // 2, limit)
        if i >= 0:
            return i + 1
    return limit


def split_long(text: str, max_chars: int) -> Iterator[str]:
    """Cut an in-memory text into pieces of at most `max_chars` (see `_cut_point`)."""
    start = 0
    while len(text) - start > max_chars:
        cut = _cut_point(text[start:start + max_chars], max_chars)
        yield text[start:start + cut]
        start += cut
    if start < len(text):
        yield text[start:] if start else text


def is_binary(head: bytes) -> bool:
    return b"\x00" in head[:BINARY_SNIFF]


def iter_text_pieces(f: BinaryIO, max_chars: int, block: int = READ_BLOCK, head: bytes = b"",
                     encoding: str = "utf-8", decoder=None) -> Iterator[tuple[str, bool]]:
    """Stream a byte file as decoded text pieces of at most `max_chars`, each with a flag saying
    whether bytes invalid in `encoding` were replaced in (or next to) it. `head` is bytes already read from `f`;
    `decoder` (errors=COUNT_REPLACE) replaces the plain incremental decoder of `encoding`.

    Only O(max_chars + block) characters are alive at once, whatever the file size.
    """
    decoder = decoder or codecs.getincrementaldecoder(encoding)(errors=COUNT_REPLACE)
    pending = ""
    bad = False
    data = head or f.read(block)
    while True:
        final = not data
        before = _COUNTER.count
        pending += decoder.decode(data, final=final)
        block_bad = _COUNTER.count > before
        bad = bad or block_bad
        while len(pending) > max_chars:
            cut = _cut_point(pending, max_chars)
            yield pending[:cut], bad
            pending = pending[cut:]
            bad = block_bad  # the bad bytes may sit in the remainder too
        if final:
            break
        data = f.read(block)
    if pending:
        yield pending, bad
