"""Small file helpers: content hashes, atomic writes, and JSONL files a user wrote.

Every file fronde's data layer produces is written to a temporary name in the same directory and
then `os.replace`d into place, so a reader (or a later run) never sees a half-written file.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HASH_BLOCK = 1 << 20


def sha256_file(path: str | Path, block: int = HASH_BLOCK) -> str:
    """Hex sha256 of a file, read in bounded blocks (never the whole file at once)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same directory + fsync + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


class AtomicFile:
    """A binary file opened under a temp name; `commit()` fsyncs and renames it into place.

    Leaving the `with` block without `commit()` (e.g. on an exception) deletes the temp file, so an
    interrupted writer leaves nothing behind under the final name.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.f = os.fdopen(fd, "wb")
        self.committed = False

    def write(self, data: bytes | memoryview) -> int:
        return self.f.write(data)

    def commit(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.path)
        self.committed = True

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.f.close()
            Path(self.tmp).unlink(missing_ok=True)


def jsonl_rows(path: str | Path, error: Callable[[str], Exception]) -> Iterator[tuple[int, Any]]:
    """(line number, decoded value) of every non-blank line of a JSONL file (gzipped if its name ends in .gz). A line
    that is not UTF-8 or not JSON raises `error("FILE:LINE: what is wrong")`: each caller's own error type, which its
    command prints as one line. Windows tools' byte-order marks are honoured (UTF-8 with one, UTF-16, UTF-32)."""
    for n, line in _text_lines(path, error):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
        yield n, value


def _text_lines(path: str | Path, error: Callable[[str], Exception]) -> Iterator[tuple[int, str]]:
    """A UTF-8 (or, with a byte-order mark or UTF-16's zero bytes, UTF-16/32) file's numbered lines; bytes that
    are not raise `error`, naming the encoding the line reads as."""
    from fronde.data.encoding import bom_encoding, bomless_utf16, guess, text_lines

    gz, n, name = str(path).endswith(".gz"), 0, "utf-8-sig"
    try:
        with (gzip.open if gz else open)(path, "rb") as f:
            head = f.read(8000)
            f.seek(0)
            name = bom_encoding(head) or (bomless_utf16(head) if b"\x00" in head else None) or name
            for n, line in enumerate(text_lines(f, codecs.getincrementaldecoder(name)()), 1):
                yield n, line
    except (EOFError, OSError, zlib.error) as e:  # (UnicodeDecodeError is a ValueError)
        if not gz or not (type(e) is OSError or isinstance(e, (EOFError, zlib.error, gzip.BadGzipFile))):
            raise  # a missing or unreadable file is not damaged data
        raise error(f"{path}: gzip data damaged or cut short after line {n} ({str(e) or type(e).__name__}); "
                    "fix or re-export the file") from None
    except UnicodeDecodeError as e:
        if name.startswith("utf-8"):
            hint = guess(bytes(e.object)).name
            raise error(f"{path}:{n + 1}: not valid UTF-8 (it reads as {hint}: convert the file, e.g. iconv -f "
                        f"{hint} -t utf-8)") from None
        raise error(f"{path}:{n + 1}: not valid {name} ({e.reason})") from None