"""Built-in corpora that need no download.

- `python-stdlib` (default): the running interpreter's standard library source, tests and
  site-packages excluded. Always present. PSF-2.0.
- `littre`: Émile Littré's French dictionary from Debian's `stardict-xmlittre` (StarDict format:
  `.idx` of headword/offset/size, gzip-compatible `.dict.dz`, Pango markup stripped). GPL-2.0+.
- `gcide`: the Collaborative International Dictionary of English (Webster 1913 + additions) from
  Debian's `dict-gcide` (dictd format: `.index` with base64 offsets, `.dict.dz`). GPL-2.0+.

Each dictionary entry is one document. The dictionaries are read in offset order in one
sequential pass over the compressed file.
"""

from __future__ import annotations

import gzip
import html
import os
import re
import struct
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fronde.data.documents import Document, Drop, SourceFile
from fronde.data.encoding import decode_as
from fronde.data.errors import DataError
from fronde.data.files import read_text_file
from fronde.data.io import sha256_file

STARDICT_DIR = Path("/usr/share/stardict/dic")
DICTD_DIR = Path("/usr/share/dictd")
# Where the dictionaries' files are on a machine without Debian's packages (copied there: docs/offline-gpu.md).
DIR_ENV = {"stardict-xmlittre": "FRONDE_STARDICT_DIR", "dict-gcide": "FRONDE_DICTD_DIR"}
# Directory names inside Lib/ that hold test suites and their data files, not library code.
STDLIB_EXCLUDE = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "__phello__"}

BUILTINS = ("python-stdlib", "littre", "gcide")
ALIASES = {"stdlib": "python-stdlib", "stardict-xmlittre": "littre", "xmlittre": "littre",
           "dict-gcide": "gcide", "webster1913": "gcide"}


@dataclass
class Builtin:
    name: str
    licence: str
    files: list[SourceFile]
    reader: Callable[[SourceFile, int], Iterator[Document | Drop]]


def is_builtin(spec: str) -> bool:
    return spec in BUILTINS or spec in ALIASES


def resolve(spec: str) -> Builtin:
    name = ALIASES.get(spec, spec)
    if name == "python-stdlib":
        return python_stdlib()
    if name == "littre":
        return littre()
    return gcide()


# --- python-stdlib -------------------------------------------------------------------------------

def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path | None = None) -> list[Path]:
    """Sorted .py files of the standard library, without test suites or installed packages
    (excluded directories are pruned, not walked: site-packages can be huge)."""
    root = root or stdlib_dir()
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in STDLIB_EXCLUDE and not d.startswith(".")]
        out += [Path(dirpath, f) for f in filenames if f.endswith(".py")]
    return sorted(out)


def python_stdlib() -> Builtin:
    files = []
    for p in stdlib_files():
        files.append(SourceFile(path=str(p), source="python-stdlib", licence="PSF-2.0", format="text",
                                sha256=sha256_file(p), bytes=p.stat().st_size))
    if not files:
        raise DataError(f"python-stdlib: no .py files under {stdlib_dir()} (is this a stripped Python?)")

    def reader(sf: SourceFile, max_chars: int) -> Iterator[Document | Drop]:
        return read_text_file(sf, max_chars, pii=False)

    return Builtin("python-stdlib", "PSF-2.0", files, reader)


# --- StarDict (Littré) ---------------------------------------------------------------------------

_TAG = re.compile(r"<[^>]+>")


def strip_markup(s: str) -> str:
    """Pango/HTML markup -> text: drop tags, unescape entities, trim trailing spaces."""
    s = html.unescape(_TAG.sub("", s))
    return "\n".join(line.rstrip() for line in s.split("\n")).strip()


def _need(path: Path, package: str, name: str) -> None:
    if not path.is_file():
        raise DataError(f"built-in corpus {name!r} needs Debian's {package} package ({path} is missing): "
                        f"sudo apt-get install {package} (or copy its files into a folder named by "
                        f"{DIR_ENV[package]})")


def _dict_dir(package: str, default: Path) -> Path:
    return Path(os.environ.get(DIR_ENV[package]) or default)


def read_stardict_index(idx: bytes) -> list[tuple[str, int, int]]:
    """(headword, offset, size) for each entry of a StarDict .idx (32-bit big-endian offsets)."""
    out = []
    pos = 0
    while pos < len(idx):
        end = idx.index(b"\0", pos)
        word = idx[pos:end].decode("utf-8", "replace")
        off, size = struct.unpack_from(">II", idx, end + 1)
        out.append((word, off, size))
        pos = end + 9
    return out


def _unique_by_offset(entries: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Several headwords (spelling variants) can share one article: keep it once, first name wins."""
    seen: dict[tuple[int, int], tuple[str, int, int]] = {}
    for e in entries:
        seen.setdefault((e[1], e[2]), e)
    return sorted(seen.values(), key=lambda e: e[1])


def _read_entries(dict_path: Path, entries: list[tuple[str, int, int]], location: str,
                  render: Callable[[str, str], str]) -> Iterator[Document | Drop]:
    with gzip.open(dict_path, "rb") as f:
        pos = 0
        for word, off, size in entries:
            if off < pos:  # gzip cannot seek backwards; an article inside the previous one repeats it
                yield Drop(location, f"{location}:{word}", "duplicate", "article overlaps the previous one")
                continue
            f.seek(off)
            raw = f.read(size)
            pos = off + size
            body, bad = decode_as(raw, "utf-8")
            text = render(word, body)
            loc = f"{location}:{word}"
            if text.strip():
                yield Document(location, loc, text=text, bad_utf8=bad, pii=False)
            else:
                yield Drop(location, loc, "empty", "empty dictionary entry")


def _dictionary(name: str, package: str, fmt: str, dict_path: Path, idx_path: Path,
                entries: Callable[[], list[tuple[str, int, int]]], render: Callable[[str, str], str]) -> Builtin:
    """A Debian dictionary as a built-in corpus: both files hashed into the manifest, one document per article."""
    _need(dict_path, package, name)
    _need(idx_path, package, name)
    licence = "GPL-2.0-or-later"
    sf = SourceFile(path=str(dict_path), source=name, licence=licence, format=fmt,
                    sha256=sha256_file(dict_path), bytes=dict_path.stat().st_size,
                    extra={"index": str(idx_path), "index_sha256": sha256_file(idx_path)})

    def reader(sf: SourceFile, max_chars: int) -> Iterator[Document | Drop]:
        yield from _read_entries(dict_path, _unique_by_offset(entries()), sf.path, render)

    return Builtin(name, licence, [sf], reader)


def littre(directory: Path | None = None) -> Builtin:
    directory = directory or _dict_dir("stardict-xmlittre", STARDICT_DIR)
    idx_path = directory / "XMLittre.idx"
    return _dictionary("littre", "stardict-xmlittre", "stardict", directory / "XMLittre.dict.dz", idx_path,
                       lambda: read_stardict_index(idx_path.read_bytes()),
                       lambda word, body: f"{word}\n{strip_markup(body)}")


# --- dictd (GCIDE / Webster 1913) ----------------------------------------------------------------

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(_B64)}


def dictd_b64(s: str) -> int:
    """dictd's index numbers: big-endian base 64 with the alphabet above."""
    n = 0
    for c in s:
        n = n * 64 + _B64_VALUE[c]
    return n


def read_dictd_index(text: str) -> list[tuple[str, int, int]]:
    out = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            out.append((parts[0], dictd_b64(parts[1]), dictd_b64(parts[2])))
    return out


def gcide(directory: Path | None = None) -> Builtin:
    directory = directory or _dict_dir("dict-gcide", DICTD_DIR)
    idx_path = directory / "gcide.index"

    def entries() -> list[tuple[str, int, int]]:
        listed = read_dictd_index(idx_path.read_text(encoding="utf-8", errors="replace"))
        return [e for e in listed if not e[0].startswith("00-")]  # database header pseudo-entries

    return _dictionary("gcide", "dict-gcide", "dictd", directory / "gcide.dict.dz", idx_path, entries,
                       lambda word, body: body.strip())
