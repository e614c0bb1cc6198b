"""Sources: resolve paths, globs, directories and built-in names into files, and read files into
`Document`s (or counted `Drop`s).

Formats: plain text and source code (one document per file, long files cut into pieces), HTML pages and notebooks
(their text: fronde.data.markup), Word, OpenDocument, PowerPoint, EPUB and PDF files (fronde.data.office), JSONL
(one record per line), JSON (a list of records or one record), Parquet (a column, streamed by record batch with
pyarrow), and gzip of the text formats. A record's field may hold text or a chat (`messages`: a list of {role,
content, ...}).
"""

from __future__ import annotations

import glob as globlib
import gzip
import io
import itertools
import json
import multiprocessing
import shutil
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from fronde.data import builtin, mail, office
from fronde.data.chat import normalize_messages
from fronde.data.chat_formats import row_chat
from fronde.data.clean import is_binary, iter_text_pieces, split_long, BINARY_SNIFF
from fronde.data.encoding import HEAD_BYTES, UTF8, Encoding, bom_encoding, decode, decode_as, detect
from fronde.data.config import DataConfig, SourceConfig
from fronde.data.documents import Document, Drop, SourceFile
from fronde.data.errors import DataError
from fronde.data.markup import NotebookError, SiteLines, html_text, notebook_text
from fronde.data.tables import find_column, read_table
from fronde.data.io import sha256_file

TEXT_EXTS = {
    "txt", "text", "md", "markdown", "rst", "org", "tex", "adoc",
    "py", "pyi", "pyx", "c", "h", "cc", "cpp", "cxx", "hpp", "hh", "java", "js", "mjs", "cjs", "ts", "tsx",
    "jsx", "go", "rs", "rb", "php", "cs", "swift", "kt", "kts", "scala", "sh", "bash", "zsh", "fish", "ps1",
    "sql", "r", "jl", "lua", "pl", "pm", "hs", "ml", "mli", "ex", "exs", "erl", "clj", "lisp", "el", "vim",
    "toml", "yaml", "yml", "ini", "cfg", "conf", "css", "scss", "xml", "proto", "cmake",
    "dart", "zig", "nim", "f90", "m", "mm", "v", "sv", "vhd", "tf", "graphql",
}
RECORD_EXTS = {"jsonl": "jsonl", "ndjson": "jsonl", "json": "json", "parquet": "parquet", "csv": "csv", "tsv": "csv"}
MARKUP_EXTS = {"html": "html", "htm": "html", "xhtml": "html", "ipynb": "ipynb"}  # text extracted: data/markup.py
OFFICE_EXTS = {"docx": "docx", "odt": "odt", "pptx": "pptx", "epub": "epub", "pdf": "pdf"}  # data/office.py
MAIL_EXTS = {"eml": "eml", "mbox": "mbox"}  # data/mail.py
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".tox", ".mypy_cache"}


def file_format(path: Path) -> tuple[str | None, bool]:
    """(format, gzip?) from the name: text/jsonl/json/parquet/csv/html/ipynb/docx/odt/pptx/epub/pdf/eml/mbox, or
    None if unsupported.
    Extensionless files (README, Makefile) count as text: binary sniffing guards the rest."""
    suffixes = [s.lower().lstrip(".") for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == "gz"
    if compressed:
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext in RECORD_EXTS:
        return RECORD_EXTS[ext], compressed
    if ext in MARKUP_EXTS:
        return MARKUP_EXTS[ext], compressed
    if ext in OFFICE_EXTS:
        return OFFICE_EXTS[ext], compressed
    if ext in MAIL_EXTS:
        return MAIL_EXTS[ext], compressed
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
        for m in matches:
            if m.is_dir():
                f, s = _walk(m)
                files += f
                skipped += s
            else:
                files.append(m)
        return files, skipped
    if p.is_dir():
        return _walk(p)
    if p.is_file():
        return [p], []
    raise DataError(f"source {spec!r} does not exist (not a file, directory, glob or built-in corpus; "
                    f"built-ins: {', '.join(builtin.BUILTINS)})")


def _walk(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel):
            continue
        if not path.is_file():
            continue
        fmt, _ = file_format(path)
        if fmt is None:
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
        paths, skipped = expand_source(sc.path)
        name = sc.name or sc.path
        licence = sc.licence or config.licence
        pii = sc.pii if sc.pii is not None else (force_pii if force_pii is not None else True)
        files: list[SourceFile] = []
        for p in paths:
            fmt, gz = file_format(p)
            if fmt is None or (fmt in ("html", "ipynb") and not sc.extract):
                fmt = "text"  # named explicitly: try it; binary sniffing will catch a non-text file
            st = p.stat()
            files.append(SourceFile(path=str(p), source=name, licence=licence, format=fmt, compressed=gz,
                                    sha256=sha256_file(p), bytes=st.st_size))
        named = sc.text_field is not None or config.text_field != "text"
        resolved.append(ResolvedSource(sc, name, licence, pii, False, files, sc.text_field or config.text_field,
                                       skipped, text_field_set=named))
    if not any(r.files for r in resolved):
        specs = ", ".join(repr(s.path) for s in config.sources)
        raise DataError(f"empty corpus: {specs} contain no readable file "
                        f"(supported: text/code files, .html, .ipynb, .docx, .odt, .pptx, .epub, .pdf, .eml, .mbox, "
                        ".jsonl, .json, .csv, .tsv, .parquet and their .gz)")
    return resolved


def _open(sf: SourceFile) -> BinaryIO:
    return gzip.open(sf.path, "rb") if sf.compressed else open(sf.path, "rb")  # type: ignore[return-value]


def _noted(sf: SourceFile, enc: Encoding) -> Encoding:
    """Record in the file's manifest entry how it was decoded, when that was not plain UTF-8."""
    if enc != UTF8:
        sf.extra.update(enc.manifest_entry())
    return enc


def _binary(sf: SourceFile, head: bytes) -> Drop | None:
    """A drop for a binary file: NUL bytes without a UTF-16/32 byte-order mark."""
    if bom_encoding(head) is None and is_binary(head):
        return Drop(sf.path, sf.path, "binary", "NUL byte in the first 8000 bytes (and no UTF-16 byte-order mark)")
    return None


def _decoded(sf: SourceFile, data: bytes, declared: str | None) -> tuple[str, bool]:
    text, bad, enc = decode(data, declared)
    _noted(sf, enc)
    return text, bad


def read_markup_file(sf: SourceFile, max_chars: int, pii: bool = True, site: SiteLines | None = None,
                     declared: str | None = None) -> Iterator[Document | Drop]:
    """An HTML page's visible text or a notebook's cells (fronde.data.markup), cut into pieces of `max_chars`;
    `site` holds the lines of the source's earlier pages (repeated ones are dropped and counted in the manifest)."""
    with _open(sf) as f:
        data = f.read()
    if (drop := _binary(sf, data)) is not None:
        yield drop
        return
    raw, bad = _decoded(sf, data, declared)
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
    yield from _pieces(sf, text, max_chars, "no visible text (or a redirect page)" if sf.format == "html" else
                       "no non-empty cell", bad, pii)


def read_office_file(sf: SourceFile, max_chars: int, pii: bool = True) -> Iterator[Document | Drop]:
    """A Word, OpenDocument, PowerPoint, EPUB or PDF file's text (fronde.data.office), cut into `max_chars` pieces."""
    with _open(sf) as f:
        data = f.read()
    try:
        text, running = office.READERS[sf.format](data)  # cleaned later, as every document
        if running:
            sf.extra["repeated_lines_dropped"] = running
    except office.OfficeError as e:
        yield Drop(sf.path, sf.path, "broken_record", f"{sf.format}: {e}")
        return
    yield from _pieces(sf, text, max_chars, "no text layer (a scan? OCR it first)" if sf.format == "pdf" else
                       "no text", False, pii)


def _pieces(sf: SourceFile, text: str, max_chars: int, empty: str, bad: bool, pii: bool) -> Iterator[Document | Drop]:
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
    with _open(sf) as f:
        head = f.read(BINARY_SNIFF)
        if (drop := _binary(sf, head)) is not None:
            yield drop
            return
        head += f.read(max(0, HEAD_BYTES - len(head))) if len(head) == BINARY_SNIFF else b""
        enc = _noted(sf, detect(head, len(head) < HEAD_BYTES, declared))
        k = -1
        for k, (piece, bad) in enumerate(iter_text_pieces(f, max_chars, head=head, encoding=enc.name)):
            loc = sf.path if k == 0 else f"{sf.path}#{k}"
            yield Document(sf.path, loc, text=piece, bad_utf8=bad, pii=pii)
        if k < 0:
            yield Drop(sf.path, sf.path, "empty", "empty file")


class _FieldPicker:
    """Chooses a file's text field at its first record: the configured one, else `messages` (or ShareGPT's
    `conversations`) when the default `text` is absent; a missing field there is a configuration error, not data."""

    def __init__(self, path: str, wanted: str) -> None:
        self.path, self.wanted, self.field = path, wanted, None

    def pick(self, keys: list[str]) -> str:
        if self.field is None:
            if self.wanted in keys:
                self.field = self.wanted
            elif self.wanted == "text" and ("messages" in keys or "conversations" in keys):
                self.field = "messages" if "messages" in keys else "conversations"
            else:
                raise DataError(f"{self.path}: no field {self.wanted!r} in its first record; fields present: "
                                f"{', '.join(map(repr, keys)) or 'none'} (set text_field, e.g. "
                                f"--text-field {keys[0] if keys else 'text'})")
        return self.field


def _record_docs(sf: SourceFile, loc: str, value: Any, record: dict[str, Any] | None, max_chars: int,
                 bad: bool, pii: bool) -> Iterator[Document | Drop]:
    """A record's field value -> documents (text cut into pieces) or a counted drop."""
    if value is None or (isinstance(value, (str, list)) and not value):
        yield Drop(sf.path, loc, "empty", "empty field")
    elif isinstance(value, str):
        for k, piece in enumerate(split_long(value, max_chars)):
            yield Document(sf.path, loc if k == 0 else f"{loc}#{k}", text=piece, bad_utf8=bad, pii=pii)
    elif isinstance(value, list):
        sharegpt = all(isinstance(t, dict) and "from" in t for t in value)  # {"from": "human", "value": ...} turns
        try:
            if sharegpt:
                extra = {k: record[k] for k in ("system", "tools") if record and k in record}
                messages, tools, _ = row_chat({**extra, "conversations": value}, answered=False)
            else:
                messages, tools = normalize_messages(value), record.get("tools") if record else None
        except ValueError as e:
            yield Drop(sf.path, loc, "broken_record", f"bad chat messages: {e}")
            return
        yield Document(sf.path, loc, messages=messages, tools=tools if isinstance(tools, list) else None,
                       bad_utf8=bad, pii=pii)
    else:
        yield Drop(sf.path, loc, "broken_record", f"field holds {type(value).__name__}, not text or messages")


def _json_record(sf: SourceFile, loc: str, rec: Any, picker: _FieldPicker, max_chars: int, bad: bool,
                 pii: bool) -> Iterator[Document | Drop]:
    """One decoded JSON record: an object with the text field, else a counted, named drop."""
    if not isinstance(rec, dict):
        yield Drop(sf.path, loc, "broken_record", f"a JSON {type(rec).__name__}, not an object")
    elif picker.field is not None and picker.field not in rec:
        yield Drop(sf.path, loc, "missing_field", f"no field {picker.field!r}; has {sorted(rec)}")
    else:
        yield from _record_docs(sf, loc, rec[picker.pick(list(rec))], rec, max_chars, bad, pii)


def read_jsonl(sf: SourceFile, text_field: str, max_chars: int, pii: bool = True, declared: str | None = None
               ) -> Iterator[Document | Drop]:
    """One record per line. JSON Lines is UTF-8, but exports from Windows tools carry a byte-order mark (and are
    UTF-16 when they do as Notepad's "Unicode"), or are in the machine's code page: decoded as text files are."""
    picker = _FieldPicker(sf.path, text_field)
    with _open(sf) as f:
        head = f.read(HEAD_BYTES)
    enc = _noted(sf, detect(head, len(head) < HEAD_BYTES, declared))
    with _open(sf) as f:
        wide = enc.name in ("utf-16", "utf-32")  # their newlines are not b"\n": split the decoded text instead
        for lineno, raw in enumerate(io.TextIOWrapper(f, enc.name, errors="replace") if wide else f, 1):
            if not raw.strip():
                continue  # blank lines separate nothing in JSONL; they are not records
            loc = f"{sf.path}:{lineno}"
            line, bad = (raw, "\ufffd" in raw) if wide else decode_as(raw, enc.name)
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                yield Drop(sf.path, loc, "broken_record", f"invalid JSON: {e.msg} at column {e.colno}")
                continue
            yield from _json_record(sf, loc, rec, picker, max_chars, bad, pii)


def read_json(sf: SourceFile, text_field: str, max_chars: int, pii: bool = True, declared: str | None = None
              ) -> Iterator[Document | Drop]:
    with _open(sf) as f:
        text, bad = _decoded(sf, f.read(), declared)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        yield Drop(sf.path, sf.path, "broken_record", f"invalid JSON: {e.msg} at line {e.lineno}")
        return
    records = doc if isinstance(doc, list) else [doc]
    picker = _FieldPicker(sf.path, text_field)
    for i, rec in enumerate(records):
        loc = f"{sf.path}[{i}]" if isinstance(doc, list) else sf.path
        yield from _json_record(sf, loc, rec, picker, max_chars, bad, pii)


def read_csv(sf: SourceFile, text_field: str, max_chars: int, pii: bool = True, declared: str | None = None,
             field_set: bool = False) -> Iterator[Document | Drop]:
    """A .csv/.tsv export: a document a row, from its `text_field` column (fronde.data.tables). Without that column
    and with no `text_field` set by the user, the file is read as a text file."""
    with _open(sf) as f:
        head = f.read(HEAD_BYTES)
    if (drop := _binary(sf, head)) is not None:
        yield drop
        return
    enc = detect(head, len(head) < HEAD_BYTES, declared)
    with _open(sf) as f:
        header, records = read_table(io.TextIOWrapper(f, enc.name, errors="replace", newline=""),
                                     tsv=sf.path.lower().removesuffix(".gz").endswith(".tsv"))
        col = find_column(header, text_field)
        if col is not None:
            _noted(sf, enc)
            sf.extra["column"] = header[col]
            for line, row in records:
                loc = f"{sf.path}:{line}"
                if isinstance(row, str):
                    yield Drop(sf.path, loc, "broken_record", row)
                elif col >= len(row):
                    yield Drop(sf.path, loc, "missing_field", f"{len(row)} fields: no column {header[col]!r} "
                                                              f"(field {col + 1})")
                else:
                    yield from _record_docs(sf, loc, row[col], None, max_chars, "\ufffd" in row[col], pii)
            return
    if field_set:
        raise DataError(f"{sf.path}: no column {text_field!r} in its header; columns: "
                        f"{', '.join(map(repr, header[:20])) or 'none'} (set text_field, e.g. --text-field "
                        f"{header[0] if header else 'text'})")
    sf.extra["read_as"] = f"text: no {text_field!r} column"
    yield from read_text_file(sf, max_chars, pii, declared)


@contextmanager
def _seekable(sf: SourceFile) -> Iterator[str]:
    """A path to the file's bytes that a reader can seek in: the file, or a gzipped one inflated to a temp file (in
    bounded chunks)."""
    if not sf.compressed:
        yield sf.path
        return
    with tempfile.TemporaryDirectory(prefix="fronde-") as tmp:
        path = str(Path(tmp) / Path(sf.path).name.removesuffix(".gz"))
        with _open(sf) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield path


def read_mail(sf: SourceFile, max_chars: int, pii: bool = True) -> Iterator[Document | Drop]:
    """An .eml message or an .mbox mailbox: a document a message (fronde.data.mail); attachments and the lines of
    quoted replies and signatures dropped are counted in the file's manifest entry."""
    with _open(sf) as f:
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


def read_parquet(sf: SourceFile, text_field: str, max_chars: int, pii: bool = True) -> Iterator[Document | Drop]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise DataError(f"{sf.path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    with _seekable(sf) as path:  # Parquet reads its footer first
        try:
            pf = pq.ParquetFile(path)
        except Exception as e:  # pyarrow raises ArrowInvalid and friends
            yield Drop(sf.path, sf.path, "broken_record", f"unreadable Parquet: {e}")
            return
        picker = _FieldPicker(sf.path, text_field)
        col = picker.pick(pf.schema_arrow.names)
        row = 0
        for batch in pf.iter_batches(batch_size=1024, columns=[col]):
            for value in batch.column(0).to_pylist():
                yield from _record_docs(sf, f"{sf.path}:row{row}", value, None, max_chars, False, pii)
                row += 1


def _office_items(sf: SourceFile, max_chars: int) -> tuple[list[Document | Drop], dict[str, Any]]:
    """One document file read in a worker process: its items, and what the read added to the file's manifest entry."""
    return list(read_office_file(sf, max_chars)), sf.extra


def _read_ahead(files: list[SourceFile], max_chars: int, workers: int) -> Iterator[list[Document | Drop]]:
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
            pending.append(pool.submit(_office_items, sf, max_chars))
        for sf in files:
            items, extra = pending.popleft().result()
            sf.extra.update(extra)
            if (following := next(queue, None)) is not None:
                pending.append(pool.submit(_office_items, following, max_chars))
            yield items
    finally:
        pool.shutdown(cancel_futures=True)


READ_AHEAD_MIN_FILES = 8  # fewer Word/PDF files than this are read in this process: starting workers costs ~1 s


def iter_source(src: ResolvedSource, max_chars: int, workers: int = 1) -> Iterator[tuple[SourceFile, Document | Drop]]:
    """Every document or drop of a source, tagged with its file, honouring `max_documents`. Word, OpenDocument and
    PDF files (PDF text extraction takes ~15-25 ms a page) are read by `workers` processes when there are many."""
    site = SiteLines()  # one site per source: its pages share a header and a footer
    documents = [sf for sf in src.files if sf.format in office.READERS] if src.reader is None else []
    ahead = _read_ahead(documents, max_chars, workers) \
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
        elif sf.format in MAIL_EXTS.values():
            items = read_mail(sf, max_chars)
        elif sf.format in ("html", "ipynb"):
            items = read_markup_file(sf, max_chars, site=site, declared=src.config.encoding)
        elif sf.format in office.READERS:
            items = iter(next(ahead)) if ahead is not None else read_office_file(sf, max_chars)
        else:
            items = read_text_file(sf, max_chars, declared=src.config.encoding)
        for item in items:
            if limit is not None and n >= limit:
                return
            if isinstance(item, Document):
                item.pii = src.pii
                item.web = src.config.quality == "web"
                item.langs = tuple(src.config.lang) if src.config.lang else None
                item.weight = src.config.weight
            n += 1
            yield sf, item
