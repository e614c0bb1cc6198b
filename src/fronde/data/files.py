"""One input file's bytes as text: opened (gzip or not), told from a binary file, decoded in its encoding
(fronde.data.encoding, recorded in its manifest entry), and cut into documents of bounded size."""

from __future__ import annotations

import bz2
import gzip
import io
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from fronde.data.archives import open_member
from fronde.data.clean import BINARY_SNIFF, COUNT_REPLACE, is_binary, iter_text_pieces, split_long
from fronde.data.documents import Document, Drop, SourceFile
from fronde.data.encoding import HEAD_BYTES, UTF8, Encoding, StreamDecoder, bom_encoding, bomless_utf16, decode


def open_path(path: str | Path, compression: str) -> BinaryIO:
    """A file's bytes, inflated when it is compressed ("gzip", "bz2")."""
    if compression == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if compression == "bz2":
        return bz2.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


# gzip's, bz2's, zipfile's (a bad CRC) and tarfile's errors for data damaged or cut short
_INFLATE_ERRORS = (EOFError, OSError, zlib.error, zipfile.BadZipFile, tarfile.TarError)


class _UpToDamage(io.RawIOBase):
    """A compressed file's inflated bytes, ending where its data is damaged or cut short (a partial download, a bad
    disk): every reader then sees a plain end of file and keeps what came before; the damage is noted on the file."""

    def __init__(self, inner: BinaryIO, sf: SourceFile) -> None:
        self.inner, self.sf = inner, sf

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        return self.inner.seek(pos, whence)

    def tell(self) -> int:
        return self.inner.tell()

    def readinto(self, b) -> int:
        try:
            data = self.inner.read(len(b))
        except _INFLATE_ERRORS as e:
            self.sf.damage = str(e) or type(e).__name__
            return 0
        b[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def open_file(sf: SourceFile) -> BinaryIO:
    """The file's bytes (an archive member's), inflated when it is compressed (up to any damage: _UpToDamage)."""
    f = open_member(sf.archive, sf.compressed, sf.member) if sf.member else open_path(sf.path, sf.compressed)
    return io.BufferedReader(_UpToDamage(f, sf), 1 << 16) if sf.compressed else f  # type: ignore[return-value]


def head_bytes(sf: SourceFile, size: int) -> bytes:
    """A file's first bytes, inflated; b"" when they cannot be read (reading the file later names why)."""
    try:
        with open_file(sf) as f:
            return f.read(size)
    except _INFLATE_ERRORS:
        return b""


def guarded(sf: SourceFile, items: Iterator[Document | Drop]) -> Iterator[Document | Drop]:
    """A file's items, then, when its compressed data was found damaged or cut short, a `broken_record` naming it
    (the documents before the damage are kept): the run goes on instead of stopping on a gzip error."""
    sf.damage = ""
    yield from items
    if sf.damage:
        yield Drop(sf.path, sf.path, "broken_record", f"{sf.compressed} data damaged or cut short ({sf.damage}); the "
                                                      "text before the damage was kept")


def note_encoding(sf: SourceFile, enc: Encoding) -> Encoding:
    """Record in the file's manifest entry how it was decoded, when that was not plain UTF-8."""
    if enc != UTF8:
        sf.extra.update(enc.manifest_entry())
    return enc


def binary_drop(sf: SourceFile, head: bytes, declared: str | None = None) -> Drop | None:
    """A drop for a binary file: NUL bytes, and neither a UTF-16/32 byte-order mark, nor the zero-byte pattern of
    UTF-16 text without one, nor a UTF-16/32 encoding declared by the source."""
    if not is_binary(head) or bom_encoding(head) is not None or bomless_utf16(head) is not None:
        return None
    if declared is not None and declared.startswith(("utf-16", "utf-32")):  # (a codec name: SourceConfig's)
        return None
    return Drop(sf.path, sf.path, "binary", "NUL byte in the first 8000 bytes, and not UTF-16 text (set the "
                                           "source's encoding= if it is text)")


def file_decoder(sf: SourceFile, head: bytes, complete: bool, declared: str | None, errors: str = "replace"
                 ) -> StreamDecoder:
    """The decoder of a file whose first bytes are `head` (the whole file when `complete`), its encoding recorded
    in the file's manifest entry, now or when it is decided late (fronde.data.encoding.StreamDecoder)."""
    decoder = StreamDecoder(head, complete, declared, errors, on_decide=lambda enc: note_encoding(sf, enc))
    note_encoding(sf, decoder.encoding)
    return decoder


def whole_text(sf: SourceFile, declared: str | None) -> tuple[str, bool] | Drop:
    """A whole file's text and whether bytes invalid in its encoding were replaced, or the drop of a binary file."""
    with open_file(sf) as f:
        data = f.read()
    if (drop := binary_drop(sf, data, declared)) is not None:
        return drop
    return decoded_text(sf, data, declared)


def decoded_text(sf: SourceFile, data: bytes, declared: str | None) -> tuple[str, bool]:
    text, bad, enc = decode(data, declared)
    note_encoding(sf, enc)
    return text, bad


def pieces(sf: SourceFile, text: str, max_chars: int, empty: str, bad: bool, pii: bool) -> Iterator[Document | Drop]:
    """A file's extracted text as documents of at most `max_chars`, or an `empty` drop saying why."""
    if not text.strip():
        yield Drop(sf.path, sf.path, "empty", empty)
        return
    for k, piece in enumerate(split_long(text, max_chars)):
        yield Document(sf.path, sf.path if k == 0 else f"{sf.path}#{k}", text=piece, bad_utf8=bad, pii=pii)


def read_text_file(sf: SourceFile, max_chars: int, pii: bool = True, declared: str | None = None
                   ) -> Iterator[Document | Drop]:
    """One document per file (pieces of at most `max_chars` for big files); NUL bytes -> binary. Its encoding is
    decided on its first MiB (fronde.data.encoding), `declared` the source's own statement."""
    with open_file(sf) as f:
        head = f.read(BINARY_SNIFF)
        if (drop := binary_drop(sf, head, declared)) is not None:
            yield drop
            return
        head += f.read(max(0, HEAD_BYTES - len(head))) if len(head) == BINARY_SNIFF else b""
        decoder = file_decoder(sf, head, len(head) < HEAD_BYTES, declared, COUNT_REPLACE)
        k = -1
        for k, (piece, bad) in enumerate(iter_text_pieces(f, max_chars, head=head, decoder=decoder)):
            loc = sf.path if k == 0 else f"{sf.path}#{k}"
            yield Document(sf.path, loc, text=piece, bad_utf8=bad, pii=pii)
        if k < 0:
            yield Drop(sf.path, sf.path, "empty", "empty file")


@contextmanager
def seekable(sf: SourceFile) -> Iterator[str]:
    """A path to the file's bytes that a reader can seek in: the file, or a gzipped one inflated to a temp file (in
    bounded chunks)."""
    if not sf.compressed:
        yield sf.path
        return
    with tempfile.TemporaryDirectory(prefix="fronde-") as tmp:
        path = str(Path(tmp) / Path(sf.path).stem)  # (without its .gz or .bz2)
        with open_file(sf) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield path
