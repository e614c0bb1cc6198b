"""Small file helpers: content hashes, atomic writes, and JSONL files a user wrote.

Every file fronde's data layer produces is written to a temporary name in the same directory and
then `os.replace`d into place, so a reader (or a later run) never sees a half-written file.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import functools
import gzip
import hashlib
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HASH_BLOCK = 1 << 20


def sha256_file(path: str | Path, block: int = HASH_BLOCK, read: Callable[[int], None] | None = None) -> str:
    """Hex sha256 of a file, read in bounded blocks (never the whole file at once); `read(n)` after each block (a
    progress bar)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
            if read is not None:
                read(len(chunk))
    return h.hexdigest()


def free_bytes(path: str | Path) -> int:
    """Free bytes on the filesystem that holds `path` (or would: the nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.cache
def file_mode() -> int:
    """The mode a plain open() gives a new file here: 0666 less the umask (read once, from /proc where it is there:
    setting the umask to read it races other threads). mkstemp's 0600 would hide shards, checkpoints and models from
    the colleagues and the serving user (vLLM in a container, Ollama's daemon) who should read them; a private umask
    (077) still makes them private."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o22)
    os.umask(mask)
    return 0o666 & ~mask


def temp_beside(path: Path) -> tuple[int, str]:
    """A temp file in path's directory (os.replace into place is then atomic) with the mode of a plain file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, file_mode())
    return fd, tmp


FULL = {errno.ENOSPC: "os error 28)", errno.EDQUOT: "os error 122)", errno.EFBIG: "os error 27)"}


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Around writes under `path`: a full disk, a full quota or a file too big raise from write(), which names no
    file; raised again naming `path`, the user reads which disk filled. Rust writers' (safetensors) same errors
    become that OSError too. Every other error passes unchanged."""
    try:
        yield
    except Exception as e:
        if isinstance(e, OSError) and e.errno in FULL:
            code = e.errno
        else:
            code = next((c for c, rust in FULL.items() if rust in str(e)), None)
        if code is None or (isinstance(e, OSError) and e.filename):
            raise
        raise OSError(code, os.strerror(code), str(path)) from e


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same directory + fsync + os.replace."""
    with AtomicFile(path) as f:
        f.write(data)
        f.commit()


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
        fd, self.tmp = temp_beside(self.path)
        self.f = os.fdopen(fd, "wb")
        self.committed = False

    def write(self, data: bytes | memoryview) -> int:
        with writing(self.path):
            return self.f.write(data)

    def commit(self) -> None:
        with writing(self.path):
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()
            os.replace(self.tmp, self.path)
        self.committed = True

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            try:
                self.f.close()  # flushing into a full disk fails again: the temp file goes all the same
            except OSError:
                pass
            finally:
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