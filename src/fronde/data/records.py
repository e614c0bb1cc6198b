"""Files of records: JSON Lines, JSON, CSV/TSV exports, spreadsheets and Parquet -> a document a record, from its
text field (or its chat `messages`), each bad record counted and named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fronde.data import office, spreadsheet
from fronde.data.chat import normalize_messages
from fronde.data.chat_formats import row_chat
from fronde.data.clean import split_long
from fronde.data.columnar import ColumnarError, open_batches
from fronde.data.documents import Document, Drop, SourceFile
from fronde.data.encoding import HEAD_BYTES, text_lines
from fronde.data.errors import DataError
from fronde.data.files import (binary_drop, decoded_text, file_decoder, open_file, read_text_file,
                               seekable)
from fronde.data.tables import find_column, read_table


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
    with open_file(sf) as f:
        head = f.read(HEAD_BYTES)
        decoder = file_decoder(sf, head, len(head) < HEAD_BYTES, declared)
        f.seek(0)
        for lineno, line in enumerate(text_lines(f, decoder), 1):
            if not line.strip():
                continue  # blank lines separate nothing in JSONL; they are not records
            loc = f"{sf.path}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                yield Drop(sf.path, loc, "broken_record", f"invalid JSON: {e.msg} at column {e.colno}")
                continue
            yield from _json_record(sf, loc, rec, picker, max_chars, "\ufffd" in line, pii)


def read_json(sf: SourceFile, text_field: str, max_chars: int, pii: bool = True, declared: str | None = None
              ) -> Iterator[Document | Drop]:
    with open_file(sf) as f:
        text, bad = decoded_text(sf, f.read(), declared)
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
    with open_file(sf) as f:
        head = f.read(HEAD_BYTES)
        if (drop := binary_drop(sf, head, declared)) is not None:
            yield drop
            return
        decoder = file_decoder(sf, head, len(head) < HEAD_BYTES, declared)  # (read as text, it is noted the same)
        f.seek(0)
        header, records = read_table(text_lines(f, decoder),
                                     tsv=".tsv" in [x.lower() for x in Path(sf.path).suffixes[-2:]])  # (.gz, .bz2)
        col = find_column(header, text_field)
        if col is not None:
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


def read_spreadsheet(sf: SourceFile, text_field: str, max_chars: int, pii: bool = True, field_set: bool = False
                     ) -> Iterator[Document | Drop]:
    """An .xlsx or .ods workbook (fronde.data.spreadsheet): a document a row of each sheet whose header has the
    `text_field` column; a sheet without it is one document of tab-separated rows, or left out (and named in the
    manifest) when the user named the column."""
    with open_file(sf) as f:
        data = f.read()
    try:
        sheets = spreadsheet.READERS[sf.format](data)
    except office.OfficeError as e:
        yield Drop(sf.path, sf.path, "broken_record", f"{sf.format}: {e}")
        return
    without = []
    for name, rows in sheets:
        if not rows:
            continue
        (_, header), body = rows[0], rows[1:]
        col = find_column(header, text_field)
        if col is not None:
            sf.extra.setdefault("columns", {})[name] = header[col]
            for number, row in body:
                value = row[col] if col < len(row) else ""
                yield from _record_docs(sf, f"{sf.path}:{name}!{number}", value, None, max_chars, False, pii)
        elif field_set:
            without.append(name)
        else:
            text = "\n".join("\t".join(row) for _, row in rows)
            for k, piece in enumerate(split_long(text, max_chars)):
                yield Document(sf.path, f"{sf.path}:{name}" + (f"#{k}" if k else ""), text=piece, pii=pii)
    if without:
        sf.extra["sheets_without_column"] = without
        if len(without) == sum(1 for _, rows in sheets if rows):
            first = next(rows for _, rows in sheets if rows)[0][1]
            example = next((h for h in first if h.strip()), "text")
            raise DataError(f"{sf.path}: no sheet has a column {text_field!r} in its header row; the first has "
                            f"{', '.join(map(repr, first[:20]))} (set text_field, e.g. --text-field {example})")


def read_parquet(sf: SourceFile, text_field: str, max_chars: int, pii: bool = True) -> Iterator[Document | Drop]:
    yield from _read_columnar(sf, "parquet", text_field, max_chars, pii)


def read_arrow(sf: SourceFile, text_field: str, max_chars: int, pii: bool = True) -> Iterator[Document | Drop]:
    """An Arrow IPC file, e.g. a Hugging Face `datasets` dataset's data (fronde.data.columnar)."""
    yield from _read_columnar(sf, "arrow", text_field, max_chars, pii)


def _read_columnar(sf: SourceFile, kind: str, text_field: str, max_chars: int, pii: bool
                   ) -> Iterator[Document | Drop]:
    name = {"parquet": "Parquet", "arrow": "Arrow IPC"}[kind]
    picker = _FieldPicker(sf.path, text_field)
    with seekable(sf) as path:  # Parquet reads its footer first; Arrow is memory-mapped
        try:
            names, batches = open_batches(path, kind, pick=picker.pick)
        except ColumnarError as e:
            yield Drop(sf.path, sf.path, "broken_record", f"unreadable {name}: {e}")
            return
        yield from _column_docs(sf, batches, picker.pick(names), name, max_chars, pii)


def _column_docs(sf: SourceFile, batches: Iterator[Any], col: str, kind: str, max_chars: int, pii: bool
                 ) -> Iterator[Document | Drop]:
    """The documents of one column of a columnar file, record batch after record batch."""
    row = 0
    while True:
        try:  # a damaged page (bad compression, cut data, invalid UTF-8) stops the file, not the run
            batch = next(batches, None)
            values = batch.column(col).to_pylist() if batch is not None else []
        except Exception as e:  # pyarrow's OSError/ArrowInvalid, UnicodeDecodeError of a string column
            why = f"damaged {kind} data from row {row} ({str(e)[:200]}); the rows before were kept"
            yield Drop(sf.path, f"{sf.path}:row{row}", "broken_record", why)
            return
        if batch is None:
            return
        for value in values:
            yield from _record_docs(sf, f"{sf.path}:row{row}", value, None, max_chars, False, pii)
            row += 1
