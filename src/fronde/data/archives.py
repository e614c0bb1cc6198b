"""Zip and tar archives as sources: each member a file of the corpus, read without extracting the archive.

Data is handed over as archives: an `export.zip` from a document system, a shared drive's folder zipped, a
`corpus.tar.gz` from a lab. A member is read as a file of its own format would be (a `.docx` in a zip as a Word
file), named `archive.zip!dir/file.docx` in the manifest, with its own sha256 (that of its bytes: the same as the
extracted file's, so `fronde runs --trained-on` finds it either way) and size. What is not read is listed as
skipped with the reason: unsupported formats, archives inside archives (extract those first), members over
MAX_MEMBER_BYTES once inflated (a zip bomb), links and devices. A member may itself be gzipped or bzipped.

Zip members are read by random access; a compressed tar is a single stream, so its members are listed and hashed
in one pass, and the last opened tar stays open: members read in archive order cost one more pass in all.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import BinaryIO

from fronde.data.errors import DataError

ZIP_SUFFIXES = (".zip",)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MAX_MEMBER_BYTES = 4 << 30  # inflated; past any real document, short of filling a disk
HASH_BLOCK = 1 << 20


def archive_kind(name: str) -> str | None:
    """"zip" or "tar" from a file name, None for a file that is not an archive."""
    lower = name.lower()
    if lower.endswith(ZIP_SUFFIXES):
        return "zip"
    if lower.endswith(TAR_SUFFIXES):
        return "tar"
    return None


class _Open:
    """The last tar opened, kept open: its members are read in archive order, each a forward seek. Per process: a
    forked worker must not read through its parent's file descriptor (they share its offset)."""

    key: tuple[int, str] | None = None
    tar: tarfile.TarFile | None = None


def _tar(path: str) -> tarfile.TarFile:
    key = (os.getpid(), path)
    if _Open.key != key:
        if _Open.tar is not None and _Open.key is not None and _Open.key[0] == key[0]:
            _Open.tar.close()
        _Open.tar, _Open.key = tarfile.open(path, "r:*"), key
    assert _Open.tar is not None
    return _Open.tar


def _inner(name: str) -> str:
    """The member's own compression: "gzip", "bz2" or ""."""
    lower = name.lower()
    return "gzip" if lower.endswith(".gz") else "bz2" if lower.endswith(".bz2") else ""


def open_member(path: str, kind: str, name: str) -> BinaryIO:
    """A member's bytes (inflated when the member is itself gzipped or bzipped)."""
    try:
        if kind == "zip":
            raw: BinaryIO = zipfile.ZipFile(path).open(name)  # (the member keeps the archive's file open)
        else:
            member = _tar(path).extractfile(name)
            if member is None:
                raise DataError(f"{path}!{name}: not a regular file in the archive")
            raw = member  # type: ignore[assignment]
    except (zipfile.BadZipFile, tarfile.TarError, KeyError) as e:
        raise DataError(f"{path}!{name}: cannot open this archive member ({e}); was the archive changed while "
                        "reading?") from None
    inner = _inner(name)
    if inner == "gzip":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if inner == "bz2":
        return bz2.BZ2File(raw)  # type: ignore[return-value]
    return raw


def members(path: str, kind: str, unread: Callable[[str], str | None]
            ) -> Iterator[tuple[str, int, str, str | None]]:
    """(name, inflated size, sha256 of its bytes or "", why it is skipped or None) of every member, in archive
    order; `unread(name)` says why a member is not read (its format), and only the others are hashed (a tar in the
    same pass). Sizes of members that are themselves compressed are their stored bytes."""
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if not info.is_dir():
                        why = _skip(info.filename, info.file_size, info.flag_bits & 1) or unread(info.filename)
                        yield info.filename, info.file_size, *_hashed(path, info.filename, why, z.open)
            return
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                if not m.isdir():
                    why = (None if m.isfile() else "a link or special file in the archive") or \
                        _skip(m.name, m.size, False) or unread(m.name)
                    yield m.name, m.size, *_hashed(path, m.name, why, lambda _: tar.extractfile(m))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: unreadable archive ({type(e).__name__}: {e}); check the file, or extract it and "
                        "give the folder") from None


def _hashed(path: str, name: str, why: str | None, open_: Callable) -> tuple[str, str | None]:
    """(sha256 of the member's bytes, why) for a member to read; a member whose data is damaged (a bad CRC, cut
    short) is skipped, not read."""
    if why is not None:
        return "", why
    h = hashlib.sha256()
    try:
        with open_(name) as f:
            while chunk := f.read(HASH_BLOCK):
                h.update(chunk)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error, RuntimeError) as e:
        return "", f"damaged member ({type(e).__name__}: {e})"
    return h.hexdigest(), None


def _skip(name: str, size: int, encrypted: bool) -> str | None:
    if encrypted:
        return "an encrypted member (extract it with its password first)"
    if size > MAX_MEMBER_BYTES:
        return f"inflates to {size:,} bytes (over {MAX_MEMBER_BYTES:,}: a zip bomb?)"
    if archive_kind(name) is not None:
        return "an archive inside an archive: extract it first"
    return None


def member_path(path: str, name: str) -> str:
    """How a member is named in manifests and messages: `archive.zip!dir/file.txt`."""
    return f"{path}!{PurePosixPath(name)}"
