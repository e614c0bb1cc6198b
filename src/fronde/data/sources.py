"""Sources: resolve paths, globs, directories and built-in names into files, and read files into
`Document`s (or counted `Drop`s).

Formats: plain text and source code (one document per file, long files cut into pieces; fronde.data.files, in any
encoding: fronde.data.encoding), HTML pages and notebooks (their text: fronde.data.markup), Word, OpenDocument,
PowerPoint, EPUB and PDF files (fronde.data.office), mailboxes (a message each: fronde.data.mail), files of records
(JSONL, JSON, CSV/TSV, Excel and OpenDocument spreadsheets, Parquet: fronde.data.records), and gzip of them.
"""

from __future__ import annotations

import glob as globlib
import itertools
import multiprocessing
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from xml.etree import ElementTree as ET

from fronde.data import archives, builtin, mail, office, wiki
from fronde.data.clean import split_long
from fronde.data.columnar import datasets_licence, datasets_skip
from fronde.data.config import DataConfig, SourceConfig
from fronde.data.documents import Document, Drop, SourceFile
from fronde.data.errors import DataError
from fronde.data.files import guarded, head_bytes, open_file, pieces, read_text_file, whole_text
from fronde.data.io import sha256_file
from fronde.data.markup import NotebookError, SiteLines, html_text, notebook_text
from fronde.data.ocr import IMAGE_EXTS, OcrError, check as check_ocr, read_image
from fronde.data.own_outputs import own_output, under_own_output
from fronde.data.records import read_arrow, read_csv, read_json, read_jsonl, read_parquet, read_spreadsheet
from fronde.data.subtitles import read_subtitles

TEXT_EXTS = {
    "txt", "text", "md", "markdown", "rst", "org", "tex", "adoc",
    "py", "pyi", "pyx", "c", "h", "cc", "cpp", "cxx", "hpp", "hh", "java", "js", "mjs", "cjs", "ts", "tsx",
    "jsx", "go", "rs", "rb", "php", "cs", "swift", "kt", "kts", "scala", "sh", "bash", "zsh", "fish", "ps1",
    "sql", "r", "jl", "lua", "pl", "pm", "hs", "ml", "mli", "ex", "exs", "erl", "clj", "lisp", "el", "vim",
    "toml", "yaml", "yml", "ini", "cfg", "conf", "css", "scss", "xml", "proto", "cmake",
    "dart", "zig", "nim", "f90", "m", "mm", "v", "sv", "vhd", "tf", "graphql",
}
RECORD_EXTS = {"jsonl": "jsonl", "ndjson": "jsonl", "json": "json", "parquet": "parquet", "arrow": "arrow",
               "csv": "csv", "tsv": "csv"}
MARKUP_EXTS = {"html": "html", "htm": "html", "xhtml": "html", "ipynb": "ipynb"}  # text extracted: data/markup.py
OFFICE_EXTS = {"docx": "docx", "odt": "odt", "pptx": "pptx", "epub": "epub", "pdf": "pdf", "rtf": "rtf",
               "doc": "doc", "ppt": "ppt", "odp": "odp"}  # office.py, legacy_office.py
MAIL_EXTS = {"eml": "eml", "mbox": "mbox"}  # data/mail.py
SUBTITLE_EXTS = {"srt": "srt", "vtt": "vtt"}  # data/subtitles.py
SHEET_EXTS = {"xlsx": "xlsx", "ods": "ods", "xls": "xls"}  # data/spreadsheet.py
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Office 97-2003's compound file
NEWER = {"doc": "docx", "ppt": "pptx", "xls": "xlsx"}
COMPRESSIONS = {"gz": "gzip", "bz2": "bz2"}
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".tox", ".mypy_cache"}


def file_format(path: Path) -> tuple[str | None, str]:
    """(format, compression: "gzip", "bz2" or "") from the name: text/jsonl/json/parquet/arrow/csv/xlsx/xls/ods/html/
    ipynb/docx/doc/odt/pptx/ppt/odp/epub/pdf/rtf/eml/mbox/srt/vtt/image, or None if unsupported (a MediaWiki dump,
    and what a .doc/.ppt/.xls really holds, are told by the content: legacy_format).
    Extensionless files (README, Makefile) count as text: binary sniffing guards the rest."""
    suffixes = [s.lower().lstrip(".") for s in path.suffixes]
    compressed = COMPRESSIONS.get(suffixes[-1], "") if suffixes else ""
    if compressed:
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    for table in (RECORD_EXTS, MARKUP_EXTS, OFFICE_EXTS, MAIL_EXTS, SUBTITLE_EXTS, SHEET_EXTS):
        if ext in table:
            return table[ext], compressed
    if ext in IMAGE_EXTS:
        return "image", compressed  # read only by a source with `ocr`
    if ext in TEXT_EXTS or not ext or not path.suffix[1:].isalnum():
        return "text", compressed
    return None, compressed


@dataclass
class ResolvedSource:
    """A configured source, expanded into the files it stands for."""

    config: SourceConfig
    name: str
    licence: str
    pii: bool
    builtin: bool
    files: list[SourceFile]
    text_field: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why) left out of a walk
    text_field_set: bool = False  # named by the user (a CSV without that column is then an error, not text)
    reader: Callable[[SourceFile, int], Iterator[Document | Drop]] | None = None


def expand_source(spec: str) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files named by a path, a directory (walked recursively) or a glob, in sorted order."""
    p = Path(spec).expanduser()
    if any(ch in spec for ch in "*?["):
        matches = [Path(m) for m in sorted(globlib.glob(str(p), recursive=True))]
        if not matches:
            raise DataError(f"source {spec!r}: the glob matches no file")
        files: list[Path] = []
        skipped: list[tuple[str, str]] = []
        root = _glob_root(p)
        seen: dict[Path, str | None] = {}
        for m in matches:
            if why := under_own_output(m, root, seen):
                skipped.append((str(m), why))
            elif m.is_dir():
                if m != root and (why := own_output(m)):
                    skipped.append((f"{m}/", why))
                    continue
                f, s = _walk(m)
                files += f
                skipped += s
            elif why := datasets_skip(m):
                skipped.append((str(m), why))
            else:
                files.append(m)
        return files, skipped
    if p.is_dir():
        return _walk(p)
    if p.is_file():
        return [p], []
    raise DataError(f"source {spec!r} does not exist (not a file, directory, glob or built-in corpus; "
                    f"built-ins: {', '.join(builtin.BUILTINS)})")


def _glob_root(pattern: Path) -> Path:
    """The folder a glob starts from: its parts before the first wildcard."""
    parts = list(itertools.takewhile(lambda part: not any(ch in part for ch in "*?["), pattern.parts))
    return Path(*parts) if parts else Path(".")


def _walk(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    pruned: list[Path] = []  # folders fronde wrote (fronde.data.own_outputs): one skipped entry each
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel):
            continue
        if any(path.is_relative_to(d) for d in pruned):
            continue
        if path.is_dir() and (why := own_output(path)):
            pruned.append(path)
            skipped.append((f"{path}/", why))  # (a folder: the "/" tells it from a file in the listing)
            continue
        if not path.is_file():
            continue
        fmt, _ = file_format(path)
        if why := datasets_skip(path):
            skipped.append((str(path), why))
        elif fmt is None and archives.archive_kind(path.name) is None:
            skipped.append((str(path), f"unsupported extension {path.suffix!r}"))
        else:
            files.append(path)
    return files, skipped


def resolve_sources(config: DataConfig) -> list[ResolvedSource]:
    """Expand every configured source into files and hash them (sha256, streamed)."""
    resolved: list[ResolvedSource] = []
    for sc in config.sources:
        force_pii = config.pii if config.pii is not None else None
        if builtin.is_builtin(sc.path):
            b = builtin.resolve(sc.path)
            pii = sc.pii if sc.pii is not None else (force_pii if force_pii is not None else False)
            name = sc.name or b.name
            for f in b.files:
                f.source = name
                if sc.licence:
                    f.licence = sc.licence
            resolved.append(ResolvedSource(sc, name, sc.licence or b.licence, pii, True, b.files,
                                           "text", reader=b.reader))
            continue
        if sc.ocr:
            check_ocr(sc.ocr)  # before hashing a big archive: Tesseract or a language model may be missing
        paths, skipped = expand_source(sc.path)
        name = sc.name or sc.path
        # a datasets folder carries its own: the Hub card's licence, kept in dataset_info.json
        licence = sc.licence or datasets_licence(paths) or config.licence
        pii = sc.pii if sc.pii is not None else (force_pii if force_pii is not None else True)
        files: list[SourceFile] = []
        for p in paths:
            if (kind := archives.archive_kind(p.name)) is not None:
                files += _archive_files(str(p), kind, sc, name, licence, skipped)
                continue
            fmt, gz = file_format(p)
            if fmt == "image" and not sc.ocr:
                skipped.append((str(p), "an image: read it with OCR (::ocr=fra, Tesseract's language codes)"))
                continue
            if fmt is None or (fmt in ("html", "ipynb") and not sc.extract):
                fmt = "text"  # named explicitly: try it; binary sniffing will catch a non-text file
            sf = SourceFile(path=str(p), source=name, licence=licence, format=fmt, compressed=gz,
                            sha256=sha256_file(p), bytes=p.stat().st_size)
            files.append(_sniffed(sf))
        named = sc.text_field is not None or config.text_field != "text"
        resolved.append(ResolvedSource(sc, name, licence, pii, False, files, sc.text_field or config.text_field,
                                       skipped, text_field_set=named))
    if not any(r.files for r in resolved):
        specs = ", ".join(repr(s.path) for s in config.sources)
        raise DataError(f"empty corpus: {specs} contain no readable file "
                        "(supported: text/code files, .html, .ipynb, .docx, .doc, .odt, .pptx, .ppt, .odp, .epub, "
                        ".pdf, .rtf, .eml, .mbox, .srt, .vtt, .jsonl, .json, .csv, .tsv, .xlsx, .xls, .ods, .parquet, "
                        ".arrow "
                        "and their .gz; images with ocr=)")
    return resolved


def read_markup_file(sf: SourceFile, max_chars: int, pii: bool = True, site: SiteLines | None = None,
                     declared: str | None = None) -> Iterator[Document | Drop]:
    """An HTML page's visible text or a notebook's cells (fronde.data.markup), cut into pieces of `max_chars`;
    `site` holds the lines of the source's earlier pages (repeated ones are dropped and counted in the manifest)."""
    if isinstance(got := whole_text(sf, declared), Drop):
        yield got
        return
    raw, bad = got
    try:
        if sf.format == "html":
            text, repeated = html_text(raw, site)
            if repeated:
                sf.extra["repeated_lines_dropped"] = repeated
        else:
            text = notebook_text(raw)
    except NotebookError as e:
        yield Drop(sf.path, sf.path, "broken_record", f"notebook: {e}")
        return
    yield from pieces(sf, text, max_chars, "no visible text (or a redirect page)" if sf.format == "html" else
                       "no non-empty cell", bad, pii)


def read_office_file(sf: SourceFile, max_chars: int, pii: bool = True, ocr: str | None = None
                     ) -> Iterator[Document | Drop]:
    """A Word, OpenDocument, PowerPoint, EPUB, RTF or PDF file's text (fronde.data.office), or an image's read by
    OCR (fronde.data.ocr), cut into `max_chars` pieces. `ocr`: Tesseract's languages, for scanned PDF pages."""
    with open_file(sf) as f:
        data = f.read()
    try:
        if sf.format == "image":
            text, running = read_image(data, ocr or "eng"), 0  # (sources resolve images only with `ocr`)
            sf.extra["ocr_pages"] = 1
        elif sf.format == "pdf":
            text, running, counts = office.pdf_pages(data, ocr)
            sf.extra.update({k: v for k, v in counts.items() if v})
        else:
            text, running = office.READERS[sf.format](data)  # cleaned later, as every document
        if running:
            sf.extra["repeated_lines_dropped"] = running
    except (office.OfficeError, OcrError) as e:
        yield Drop(sf.path, sf.path, "broken_record", f"{sf.format}: {e}")
        return
    if sf.format != "pdf":
        empty = "no text"
    elif ocr:
        empty = "no text layer, and no page image OCR could read"
    else:
        empty = "no text layer (a scan? read it with OCR: ::ocr=fra, Tesseract's language codes)"
    yield from pieces(sf, text, max_chars, empty, False, pii)


def _archive_files(path: str, kind: str, sc: SourceConfig, source: str, licence: str,
                   skipped: list[tuple[str, str]]) -> list[SourceFile]:
    """The members of a zip or tar to read, as files of the corpus (fronde.data.archives); the others skipped."""
    files: list[SourceFile] = []

    def unread(member: str) -> str | None:
        fmt = file_format(PurePosixPath(member))[0]  # type: ignore[arg-type]
        if fmt is None:
            return f"unsupported extension {PurePosixPath(member).suffix!r}"
        return "an image: read it with OCR (::ocr=fra, Tesseract's language codes)" if fmt == "image" and \
            not sc.ocr else None

    try:
        listed = list(archives.members(path, kind, unread))
    except DataError as e:  # not an archive, or cut short: named, and the other files are read
        skipped.append((path, str(e).removeprefix(f"{path}: ")))
        return files
    for member, size, sha, why in listed:
        if why is not None:
            skipped.append((archives.member_path(path, member), why))
            continue
        fmt = file_format(PurePosixPath(member))[0]  # type: ignore[arg-type]
        fmt = "text" if fmt in ("html", "ipynb") and not sc.extract else fmt
        files.append(_sniffed(SourceFile(path=archives.member_path(path, member), source=source, licence=licence,
                                         format=fmt or "text", compressed=kind, sha256=sha, bytes=size,
                                         archive=path, member=member)))
    return files


def _sniffed(sf: SourceFile) -> SourceFile:
    """The file with the format its first bytes say when its name does not tell: a MediaWiki dump among .xml
    files, and what a .doc, .ppt or .xls really holds."""
    name = (sf.member or sf.path).lower()
    if sf.format == "text" and name.endswith((".xml", ".xml.gz", ".xml.bz2")) and wiki_dump(sf):
        sf.format = "mediawiki"
    elif sf.format in NEWER:
        sf.format = legacy_format(head_bytes(sf, 512), sf.format)
    return sf


def legacy_format(head: bytes, fmt: str) -> str:
    """What a .doc, .ppt or .xls file really is, from its first bytes: an Office 97-2003 compound file, else what
    such names also hold (Word's RTF, a newer file renamed, an HTML table saved by a web app as .xls, or plain text
    as old READMEs named .doc)."""
    if head.startswith(OLE_MAGIC):
        return fmt
    if head.startswith(b"{\\rtf"):
        return "rtf"
    if head.startswith(b"PK\x03\x04"):
        return NEWER[fmt]
    if b"<html" in head.lower() or b"<table" in head.lower() or head.lstrip().lower().startswith(b"<!doctype html"):
        return "html"
    return "text"  # (binary sniffing drops what is not)


def wiki_dump(sf: SourceFile) -> bool:
    """Whether an .xml file is a MediaWiki export (its root element, in its first 4 KB)."""
    return b"<mediawiki" in head_bytes(sf, 4096)


def read_mediawiki(sf: SourceFile, max_chars: int, pii: bool = True) -> Iterator[Document | Drop]:
    """A MediaWiki dump: a document an article (fronde.data.wiki); redirects and other namespaces counted."""
    counts = {"redirects_skipped": 0, "pages_other_namespaces": 0}
    with open_file(sf) as f:
        try:
            for page, drop in wiki.iter_pages(f):
                if page.namespace != "0" or page.redirect:
                    counts["redirects_skipped" if page.namespace == "0" else "pages_other_namespaces"] += 1
                    continue
                loc = f"{sf.path}:{page.title}"
                text = wiki.article(page, drop)
                if not text:
                    yield Drop(sf.path, loc, "empty", "no text once templates and tables are left out")
                    continue
                for k, piece in enumerate(split_long(text, max_chars)):
                    yield Document(sf.path, loc if k == 0 else f"{loc}#{k}", text=piece, pii=pii)
        except ET.ParseError as e:
            yield Drop(sf.path, sf.path, "broken_record", f"MediaWiki dump: not well-formed XML ({e}); the pages "
                                                          "before it were read")
        finally:
            sf.extra.update({k: v for k, v in counts.items() if v})


def read_mail(sf: SourceFile, max_chars: int, pii: bool = True) -> Iterator[Document | Drop]:
    """An .eml message or an .mbox mailbox: a document a message (fronde.data.mail); attachments and the lines of
    quoted replies and signatures dropped are counted in the file's manifest entry."""
    with open_file(sf) as f:
        messages = [(sf.path, mail.read_eml(f))] if sf.format == "eml" else \
            ((f"{sf.path}:message{i}", m) for i, m in enumerate(mail.iter_mbox(f), 1))
        for loc, m in messages:
            sf.extra["attachments_skipped"] = sf.extra.get("attachments_skipped", 0) + m.attachments
            sf.extra["reply_lines_dropped"] = sf.extra.get("reply_lines_dropped", 0) + m.reply_lines
            if not m.text:
                yield Drop(sf.path, loc, "empty", "no text of its own (attachments or quoted text only)")
                continue
            for k, piece in enumerate(split_long(m.text, max_chars)):
                yield Document(sf.path, loc if k == 0 else f"{loc}#{k}", text=piece, pii=pii)


def _office_items(sf: SourceFile, max_chars: int, ocr: str | None) -> tuple[list[Document | Drop], dict[str, Any]]:
    """One document file read in a worker process: its items, and what the read added to the file's manifest entry."""
    return list(guarded(sf, read_office_file(sf, max_chars, ocr=ocr))), sf.extra


def _read_ahead(files: list[SourceFile], max_chars: int, workers: int, ocr: str | None
                ) -> Iterator[list[Document | Drop]]:
    """The items of each file, in order, read by `workers` processes a few files ahead of the consumer (so memory
    holds a bounded window of results, whatever the number of files)."""
    # Forked on Linux: a worker starts in milliseconds. Spawned, each would import the parent's __main__ first (for
    # the `fronde` command, every module it has: seconds of CPU each, as much as the PDFs took). The workers run pure
    # Python (pypdf, zipfile, XML), so the parent's threads and devices are not touched.
    method = "fork" if sys.platform == "linux" else "spawn"
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    try:
        pending: deque[Future] = deque()
        queue = iter(files)
        for sf in itertools.islice(queue, 4 * workers):
            pending.append(pool.submit(_office_items, sf, max_chars, ocr))
        for sf in files:
            items, extra = pending.popleft().result()
            sf.extra.update(extra)
            if (following := next(queue, None)) is not None:
                pending.append(pool.submit(_office_items, following, max_chars, ocr))
            yield items
    finally:
        pool.shutdown(cancel_futures=True)


READ_AHEAD_MIN_FILES = 8  # fewer Word/PDF files than this are read in this process: starting workers costs ~1 s


def iter_source(src: ResolvedSource, max_chars: int, workers: int = 1) -> Iterator[tuple[SourceFile, Document | Drop]]:
    """Every document or drop of a source, tagged with its file, honouring `max_documents`. Word, OpenDocument and
    PDF files (PDF text extraction takes ~15-25 ms a page, OCR ~0.7 s) and images read by OCR are read by `workers`
    processes when there are many."""
    site = SiteLines()  # one site per source: its pages share a header and a footer
    documents = [sf for sf in src.files if sf.format in office.READERS or sf.format == "image"] \
        if src.reader is None else []
    ahead = _read_ahead(documents, max_chars, workers, src.config.ocr) \
        if workers > 1 and len(documents) >= READ_AHEAD_MIN_FILES else None
    with closing(ahead) if ahead is not None else nullcontext():
        yield from _items(src, max_chars, site, ahead, src.config.max_documents)


def _items(src: ResolvedSource, max_chars: int, site: SiteLines, ahead: Iterator[list[Document | Drop]] | None,
           limit: int | None) -> Iterator[tuple[SourceFile, Document | Drop]]:
    n = 0
    for sf in src.files:
        if src.reader is not None:
            items: Iterator[Document | Drop] = src.reader(sf, max_chars)
        elif sf.format == "jsonl":
            items = read_jsonl(sf, src.text_field, max_chars, declared=src.config.encoding)
        elif sf.format == "json":
            items = read_json(sf, src.text_field, max_chars, declared=src.config.encoding)
        elif sf.format == "csv":
            items = read_csv(sf, src.text_field, max_chars, declared=src.config.encoding,
                             field_set=src.text_field_set)
        elif sf.format == "parquet":
            items = read_parquet(sf, src.text_field, max_chars)
        elif sf.format == "arrow":
            items = read_arrow(sf, src.text_field, max_chars)
        elif sf.format in SHEET_EXTS.values():
            items = read_spreadsheet(sf, src.text_field, max_chars, field_set=src.text_field_set)
        elif sf.format in MAIL_EXTS.values():
            items = read_mail(sf, max_chars)
        elif sf.format in SUBTITLE_EXTS.values():
            items = read_subtitles(sf, max_chars, declared=src.config.encoding)
        elif sf.format == "mediawiki":
            items = read_mediawiki(sf, max_chars)
        elif sf.format in ("html", "ipynb"):
            items = read_markup_file(sf, max_chars, site=site, declared=src.config.encoding)
        elif sf.format in office.READERS or sf.format == "image":
            items = iter(next(ahead)) if ahead is not None else read_office_file(sf, max_chars, ocr=src.config.ocr)
        else:
            items = read_text_file(sf, max_chars, declared=src.config.encoding)
        for item in guarded(sf, items):
            if limit is not None and n >= limit:
                return
            if isinstance(item, Document):
                item.pii = src.pii
                item.web = src.config.quality == "web"
                item.langs = tuple(src.config.lang) if src.config.lang else None
                item.weight = src.config.weight
            n += 1
            yield sf, item
